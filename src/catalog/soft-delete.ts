import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { isAlive, isDeleted, tableRef } from '../sql/build.js';
import { guarded } from './guarded.js';
import type { Assumption, Column, SoftDeleteMarker, Table } from './types.js';

/** Marker names recognised by default, in order of preference (contract §soft-delete-conflicts). */
export const DEFAULT_MARKERS = ['deleted_at', 'deletedAt', 'archived_at', 'is_deleted', 'isDeleted', 'deleted'];

export interface SoftDeleteSettings {
  /** Names to look for; replaces the defaults. Empty: no table has a marker unless named per table. */
  columns: string[];
  /** Per-table override: a column name, or false for "this table has no soft delete". */
  tables: Map<string, string | false>;
}

/** The marker the config names for this table: a column name, false for none, undefined when it is silent. */
function overrideFor(tableId: string, settings: SoftDeleteSettings): string | false | undefined {
  // Per-table overrides are keyed "schema.table", or a bare table name for any schema.
  return settings.tables.get(tableId) ?? settings.tables.get(tableId.slice(tableId.indexOf('.') + 1));
}

export function markerFor(tableId: string, columns: Column[], settings: SoftDeleteSettings): SoftDeleteMarker | null {
  const override = overrideFor(tableId, settings);
  if (override === false) return null;
  const names = override ? [override] : settings.columns;
  for (const name of names) {
    const col = columns.find((c) => c.name === name);
    if (!col) continue;
    if (col.baseType === 'bool') return { column: col.name, kind: 'boolean' };
    if (col.category === 'D') return { column: col.name, kind: 'timestamp' };
  }
  return null;
}

/**
 * A marker found by its name alone is kept only where the table looks soft-deleting: some row is
 * live, or no row is there yet to say otherwise. A column set on every row (an outbox's or a
 * tombstone table's "deletedAt": when the row was deleted elsewhere) is no marker — taking it for
 * one would call every row deleted, hiding its orphans and inventing conflicts. A marker the config
 * names for the table is taken as declared. Each verdict is returned as an assumption.
 */
export async function weighMarkers(db: Db | Tx, tables: Table[], settings: SoftDeleteSettings): Promise<Assumption[]> {
  const assumptions: Assumption[] = [];
  for (const table of tables) {
    const marker = table.softDelete;
    if (!marker || overrideFor(table.id, settings)) continue;
    // Is any row live, is any row marked? Each stops at its first row. Unanswerable: kept, as named.
    const answer = await guarded<{ live: boolean; marked: boolean; failed?: string }>(
      db,
      async () =>
        (
          await sql<{ live: boolean; marked: boolean }>`
            select exists (select 1 from ${tableRef(table)} t where ${isAlive(marker, 't')}) as live,
                   exists (select 1 from ${tableRef(table)} t where ${isDeleted(marker, 't')}) as marked`.execute(db)
        ).rows[0]!,
      (e) => ({ live: true, marked: true, failed: e.message }),
    );
    const { live, marked } = answer;
    if (answer.failed !== undefined) {
      const evidence = `could not be checked (${answer.failed}): assumed from the name`;
      assumptions.push({ kind: 'soft-delete-marker', table: table.id, column: marker.column, evidence });
      continue;
    }
    const set = marker.kind === 'timestamp' ? 'set' : 'true';
    if (!live && marked) table.softDelete = null;
    assumptions.push({
      kind: !live && marked ? 'not-a-soft-delete-marker' : 'soft-delete-marker',
      table: table.id,
      column: marker.column,
      evidence: !live
        ? marked
          ? `every row has ${marker.column} ${set}: it records something else, not a deletion`
          : 'the table is empty: assumed from the name'
        : marked
          ? `some rows live, some with ${marker.column} ${set}`
          : `no row has ${marker.column} ${set} yet: assumed from the name`,
    });
  }
  return assumptions;
}

/**
 * Does a partial index predicate leave soft-deleted rows out? True when one of its top-level AND
 * terms is "marker is not set" in one of the forms the server deparses it to.
 */
export function predicateExcludesDeleted(predicate: string | null, marker: SoftDeleteMarker): boolean {
  if (!predicate) return false;
  // pg_get_expr quotes a name when it must, keywords included ("end", "order"), which a pattern
  // cannot tell: both spellings are accepted, and both can only mean this column.
  const spellings = [...new Set([quoteIdentIfNeeded(marker.column), `"${marker.column.replace(/"/g, '""')}"`])];
  const alive = spellings.flatMap((col) =>
    marker.kind === 'timestamp'
      ? [`${col} IS NULL`]
      : [
          `NOT ${col}`,
          `${col} = false`,
          `${col} IS FALSE`,
          `${col} IS NOT TRUE`,
          `NOT ${col} IS TRUE`,
          `${col} <> true`,
        ],
  );
  return topLevelConjuncts(predicate).some((term) => alive.includes(term));
}

/** Split `((a) AND (b AND c))` into its top-level AND terms, without their outer parentheses. */
export function topLevelConjuncts(expr: string): string[] {
  const s = stripParens(expr.trim());
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quote) {
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (depth === 0 && s.startsWith(' AND ', i)) {
      terms.push(s.slice(start, i));
      start = i + 5;
    }
  }
  terms.push(s.slice(start));
  return terms.flatMap((t) => {
    const inner = stripParens(t.trim());
    return inner !== t.trim() && / AND /.test(inner) ? topLevelConjuncts(inner) : [inner];
  });
}

function stripParens(s: string): string {
  while (s.startsWith('(') && s.endsWith(')') && matchingParen(s, 0) === s.length - 1) s = s.slice(1, -1).trim();
  return s;
}

function matchingParen(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

/** The server's quote_ident rule: lower-case letters, digits and _ need no quotes (keywords aside). */
export function quoteIdentIfNeeded(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export function softDeleteSettings(
  config: false | { columns?: string[]; tables?: Record<string, string | false | { column: string }> } | undefined,
): SoftDeleteSettings {
  if (config === false) return { columns: [], tables: new Map() };
  const tables = new Map<string, string | false>();
  for (const [table, v] of Object.entries(config?.tables ?? {}))
    tables.set(table, typeof v === 'object' ? v.column : v);
  return { columns: config?.columns ?? DEFAULT_MARKERS, tables };
}
