import { expect } from 'vitest';
import type { TestDb } from './db.js';
import { tableStats, type TableStats } from './conservation.js';

/** Per user table: its row count and the sum of each numeric column. */
export type Ledger = TableStats;
export const ledger = tableStats;

/**
 * Nothing was lost by the runs `runIds` (default: every run in the database) since `before`: for every user table, the rows there now
 * plus the rows those runs deleted into their backup are the rows that were there before, and so
 * is every numeric column's sum — except columns the runs updated (re-pointed keys, markers).
 */
export async function expectNothingLost(db: TestDb, before: Ledger, runIds?: string[]): Promise<void> {
  const now = await ledger(db);
  const [{ repaired }] = (await db.query("select to_regclass('rowdoctor_backup.tables') is not null as repaired")) as [
    { repaired: boolean },
  ];
  runIds ??= repaired
    ? (await db.query<{ id: string }>('select run_id as id from rowdoctor_backup.runs')).map((r) => r.id)
    : [];
  const backups = repaired
    ? await db.query<{ t: string; backup: string }>(`
    select format('%I.%I', table_schema, table_name) as t, format('rowdoctor_backup.%I', backup_table) as backup
      from rowdoctor_backup.tables`)
    : [];
  const backupOf = new Map(backups.map((b) => [b.t, b.backup]));
  for (const [table, was] of Object.entries(before)) {
    const is = now[table] ?? { rows: 0, sums: {} };
    const backup = backupOf.get(table);
    let deleted = 0;
    const deletedSums: Record<string, string> = {};
    const updated = new Set<string>();
    if (backup) {
      const cols = Object.keys(was.sums);
      const sums = cols.map(
        (c) => `coalesce(sum(${ident(c)}) filter (where _rd_op = 'delete'), 0)::text as ${ident(c)}`,
      );
      const [row] = await db.query<Record<string, string>>(
        `select ${['(count(*) filter (where _rd_op = $$delete$$))::text as "#rows"', ...sums].join(', ')}
           from ${backup} where _rd_run = any($1)`,
        [runIds],
      );
      const { '#rows': rows, ...rest } = row!;
      deleted = Number(rows);
      Object.assign(deletedSums, rest);
      const changed = await db.query<{ c: string }>(
        `select distinct unnest(_rd_columns) as c from ${backup} where _rd_run = any($1) and _rd_op = 'update'`,
        [runIds],
      );
      for (const { c } of changed) updated.add(c);
    }
    expect(is.rows + deleted, `${table}: rows now + rows deleted into the backup`).toBe(was.rows);
    for (const [c, sum] of Object.entries(was.sums)) {
      if (updated.has(c)) continue;
      const total = add(is.sums[c] ?? '0', deletedSums[c] ?? '0');
      expect(total, `${table}.${c}: sum now + sum deleted into the backup`).toBe(add(sum, '0'));
    }
  }
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Exact for whole numbers (bigint sums); fractional sums are compared to 9 places. */
function add(a: string, b: string): string {
  const whole = (s: string) => /^-?\d+(\.0*)?$/.test(s);
  if (whole(a) && whole(b)) return String(BigInt(a.replace(/\..*$/, '')) + BigInt(b.replace(/\..*$/, '')));
  return (Number(a) + Number(b)).toFixed(9);
}
