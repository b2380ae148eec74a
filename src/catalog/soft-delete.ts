import type { Column, SoftDeleteMarker } from './types.js';

/** Marker names recognised by default, in order of preference (contract §soft-delete-conflicts). */
export const DEFAULT_MARKERS = ['deleted_at', 'deletedAt', 'archived_at', 'is_deleted', 'isDeleted', 'deleted'];

export interface SoftDeleteSettings {
  /** Names to look for; replaces the defaults. Empty: no table has a marker unless named per table. */
  columns: string[];
  /** Per-table override: a column name, or false for "this table has no soft delete". */
  tables: Map<string, string | false>;
}

export function markerFor(tableId: string, columns: Column[], settings: SoftDeleteSettings): SoftDeleteMarker | null {
  // Per-table overrides are keyed "schema.table", or a bare table name for any schema.
  const override = settings.tables.get(tableId) ?? settings.tables.get(tableId.slice(tableId.indexOf('.') + 1));
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
