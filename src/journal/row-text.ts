import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';

/**
 * The settings that change how a row prints as text. Undo's after-image is md5(row::text) (see
 * repair/backup.ts), so undo compares under the settings the repair recorded it with: a session in
 * another TimeZone would print every timestamptz differently and see conflicts everywhere.
 */
const ROW_TEXT_SETTINGS = ['TimeZone', 'DateStyle', 'IntervalStyle', 'extra_float_digits', 'bytea_output'] as const;

export type RowTextSettings = Record<string, string>;

/** The session's row-text settings, recorded with a repair run. */
export async function rowTextSettings(db: Db | Tx): Promise<RowTextSettings> {
  const { rows } = await sql<{ name: string; value: string }>`
    select name, current_setting(name) as value
      from unnest(${[...ROW_TEXT_SETTINGS]}::text[]) as s(name)`.execute(db);
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

/** Take a run's recorded row-text settings for the rest of this session (runs of older versions recorded none). */
export async function useRowTextSettings(db: Db, recorded: RowTextSettings | undefined): Promise<void> {
  for (const name of ROW_TEXT_SETTINGS) {
    const value = recorded?.[name];
    if (value !== undefined) await sql`select set_config(${name}, ${value}, false)`.execute(db);
  }
}
