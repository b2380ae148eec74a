import type { Assumption, Column, Table } from '../catalog/types.js';
import type { Rule } from '../rules/types.js';

/** Column names taken for a table's creation time (contract), in order of preference. */
export const CREATED_AT_NAMES = [
  'created_at',
  'createdAt',
  'inserted_at',
  'insertedAt',
  'created',
  'date_created',
  'creation_date',
];

export type TimeKind = 'date' | 'timestamp' | 'timestamptz';

/** The column the diagnosis dates damaged rows by, and how its values are read. */
export interface CreationColumn {
  column: string;
  kind: TimeKind;
  /** true: named by the rule's `createdAt:`; false: found by its name (an assumption). */
  declared: boolean;
}

/** date, timestamp or timestamptz (through domains), else null. */
export function timeKind(column: Column): TimeKind | null {
  const kinds: Record<string, TimeKind> = { date: 'date', timestamp: 'timestamp', timestamptz: 'timestamptz' };
  return kinds[column.baseType] ?? null;
}

/** The rule's creation time: its declared `createdAt`, else a column with one of the names, else null. */
export function creationColumn(rule: Rule): CreationColumn | null {
  if (rule.check === 'soft-delete-conflicts') return null;
  const declared = rule.createdAt;
  if (declared) {
    const c = rule.table.columns.find((x) => x.name === declared);
    const kind = c && timeKind(c);
    return kind ? { column: declared, kind, declared: true } : null;
  }
  for (const name of CREATED_AT_NAMES) {
    const c = rule.table.columns.find((x) => x.name === name);
    const kind = c && timeKind(c);
    if (kind) return { column: name, kind, declared: false };
  }
  return null;
}

/** Creation times found by name for these rules: one assumption per table and column. */
export function creationAssumptions(rules: Rule[]): Assumption[] {
  const seen = new Map<string, Assumption>();
  for (const rule of rules) {
    const found = creationColumn(rule);
    if (!found || found.declared) continue;
    const type = rule.table.columns.find((c) => c.name === found.column)!.type;
    seen.set(`${rule.table.id}\u0000${found.column}`, {
      kind: 'creation-time',
      table: rule.table.id,
      column: found.column,
      evidence: `named ${found.column} (${type}): the diagnosis dates damaged rows by it`,
    });
  }
  return [...seen.values()];
}

/** What would give a table without a creation time its diagnosis, for the text output. */
export function creationHint(table: Table): string {
  const candidates = table.columns.filter(
    (c) => timeKind(c) !== null && c.name !== table.softDelete?.column && !c.generated,
  );
  return candidates.length
    ? `no creation time: declare createdAt: ${candidates[0]!.name} on the rule (or name a column created_at)`
    : `no creation time: a created_at timestamptz column in ${table.id} ` +
        '(or createdAt: <column> on the rule) enables it';
}
