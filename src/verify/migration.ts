import { indexPartColumn, type Table } from '../catalog/types.js';
import { dottedName } from '../rules/to-config.js';
import type { Verdict } from './types.js';

export interface MigrationOptions {
  /** Write the DDL of inferred references as statements to run, not commented out for review. */
  includeInferred?: boolean;
}

/**
 * The migration file: what each step is for, then its statements, runnable with psql as is.
 * A step never breaks the application's writes unasked: one that would fail today (rows violate
 * it: an index build would leave an INVALID index, a foreign key would stay NOT VALID and reject
 * the application's inserts) and one for a reference only inferred from a name are written
 * commented out, each with what to do first. The drop of an INVALID index goes with its rebuild:
 * where the rebuild is held back, so is the drop (contract, verify-constraints) — an INVALID index
 * still refuses the duplicates it has seen, and scripts may name it.
 */
export function migrationText(verdicts: Verdict[], database: string, options: MigrationOptions = {}): string {
  const lines = [
    `-- rowdoctor verify-constraints migration for ${database}`,
    '-- Lock-safe: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, so run this file',
    '-- statement by statement (psql -f file.sql, without -1 / --single-transaction).',
    '',
  ];
  for (const v of verdicts.filter((x) => x.ddl.length)) {
    lines.push(
      `-- ${v.kind} ${v.table}(${v.columns.join(', ')})${v.references ? ` -> ${v.references}` : ''}` +
        `${v.where ? ` WHERE ${v.where}` : ''}: ${v.status} — ${v.detail}`,
    );
    const inferred = v.source === 'inferred' && !options.includeInferred;
    if (inferred)
      lines.push(
        '-- REVIEW: inferred from a column name, not declared. Commented out: a foreign key the application does',
        '-- not expect rejects its inserts. Uncomment once you are sure, or rerun with --include-inferred.',
      );
    if (v.violations)
      lines.push(`-- ${v.violations} row(s) violate it today, so it is commented out until they are fixed: ${v.fix}`);
    lines.push(...statementLines(v, options), '');
  }
  if (lines.length === 4) lines.push('-- Nothing to do: every expected constraint is in place.');
  return lines.join('\n');
}

/**
 * A verdict's statements as the migration writes them: held ones (rows violate it today, or it is
 * only inferred) commented out, the drop of what it replaces with them — all but SET.
 */
export function statementLines(v: Verdict, options: MigrationOptions = {}): string[] {
  const held = (v.source === 'inferred' && !options.includeInferred) || (v.violations ?? 0) > 0;
  return v.ddl.map((s) => (held && !/^SET /.test(s) ? `-- ${s};` : `${s};`));
}

/** What a verdict's violations are about: the table and columns, and the parent or the index's predicate. */
export interface FixTarget {
  source: string;
  table: Table;
  /** Column names, or index parts (expressions) for a unique key. */
  columns: string[];
  refs?: { table: Table; columns: string[] };
  where?: string | null;
}

/** What fixes the rows that violate a missing constraint, said for where the expectation came from. */
export function fixFor(t: FixTarget): string {
  if (t.source.endsWith(' rule')) return 'rowdoctor repair --apply (your rule declares them), then uncomment.';
  return (
    `nothing declares this ${t.refs ? 'reference' : 'key'}, so rowdoctor repair does not touch it. Declare it ` +
    `under rules: in rowdoctor.yml — ${ruleText(t)} — run rowdoctor repair --apply, then uncomment.`
  );
}

/** The rule to declare, on one line. A unique index counts soft-deleted rows unless its predicate says not to. */
function ruleText({ table, columns, refs, where }: FixTarget): string {
  const name = dottedName(table.schema, table.name);
  if (refs)
    return flow({
      check: 'orphaned-rows',
      table: name,
      ...(columns.length === 1 ? { column: columns[0] } : { columns }),
      references: { table: dottedName(refs.table.schema, refs.table.name), columns: refs.columns },
      repair: 'delete',
    });
  const key = columns.map((p) => indexPartColumn(table, p) ?? { expr: p });
  return flow({ check: 'duplicate-rows', table: name, key, ...(where ? { where } : {}), includeSoftDeleted: true });
}

/** A YAML flow map on one line (a comment line in SQL): plain names bare, anything else as JSON, which YAML reads. */
function flow(map: Record<string, unknown>): string {
  const value = (v: unknown) => (typeof v === 'string' && /^[A-Za-z_][\w.-]*$/.test(v) ? v : JSON.stringify(v));
  return `{${Object.entries(map)
    .map(([k, v]) => `${k}: ${value(v)}`)
    .join(', ')}}`;
}
