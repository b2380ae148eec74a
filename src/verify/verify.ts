import type { Catalog, ForeignKey, UniqueIndex } from '../catalog/types.js';
import { preferParallel, readOnly, type Db } from '../db.js';
import type { Rule } from '../rules/types.js';
import { foreignKeyDdl, uniqueDdl } from './ddl.js';
import { expectedConstraints } from './expected.js';
import { matchForeignKey, matchUnique } from './match.js';
import { NameAllocator } from './names.js';
import { normalizeKeys } from './normalize.js';
import type { ExpectedUnique, Verdict } from './types.js';
import { foreignKeyViolations, uniqueViolations } from './violations.js';

export interface VerifyOptions {
  expect: string[];
  expectFk: string[];
  discover: boolean;
  lockTimeout: string;
  statementTimeoutMs: number;
  /** false: leave `violations` null — each count is a full pass over the table (repair's hint shows none). */
  countViolations?: boolean;
}

/** Every expected constraint's verdict, then every INVALID unique index nobody expected. */
export async function verifyConstraints(
  db: Db,
  catalog: Catalog,
  rules: Rule[],
  options: VerifyOptions,
): Promise<Verdict[]> {
  const expected = expectedConstraints(catalog, rules, options);
  const uniques = expected.filter((e): e is ExpectedUnique => e.kind === 'unique');
  const { keys, indexes } = await normalizeKeys(db, uniques, options.statementTimeoutMs);
  const violations = (counter: () => Promise<number>) =>
    options.countViolations === false ? Promise.resolve(null) : counter();
  return readOnly(db, options.statementTimeoutMs, async (tx) => {
    await preferParallel(tx); // violations are counted by the checks' own whole-table aggregates
    // Partitions get an index each, possibly in schemas of their own.
    const partitionSchemas = [...catalog.partitionRoot.keys()].map((p) => p.slice(0, p.indexOf('.')));
    const schemas = [...catalog.schemas, ...expected.map((e) => e.table.schema), ...partitionSchemas];
    const names = await NameAllocator.load(tx, [...new Set(schemas)]);
    const verdicts: Verdict[] = [];
    const seenIndexes = new Set<UniqueIndex>();
    for (const e of expected) {
      if (e.kind === 'unique') {
        const key = keys.get(e)!;
        const m = matchUnique(e, key, indexes);
        if (m.found) seenIndexes.add(m.found as UniqueIndex);
        const ddl = uniqueDdl(db, catalog, e, key, m.status, m.found as UniqueIndex | null, options.lockTimeout, names);
        verdicts.push({
          kind: 'unique',
          table: e.table.id,
          columns: key.parts,
          where: key.predicate,
          status: m.status,
          detail: [m.detail, ...ddl.warnings].join('; '),
          violations: m.status === 'ok' ? 0 : await violations(() => uniqueViolations(tx, e, key)),
          ddl: ddl.statements,
          found: m.found ? m.found.name : null,
          source: e.source,
          warnings: ddl.warnings,
        });
      } else {
        const m = matchForeignKey(catalog, e);
        const ddl = foreignKeyDdl(db, e, m.status, m.found as ForeignKey | null, options.lockTimeout, names);
        verdicts.push({
          kind: 'foreign-key',
          table: e.table.id,
          columns: e.columns,
          where: null,
          status: m.status,
          detail: [m.detail, ...ddl.warnings].join('; '),
          references: `${e.parent.id}(${e.parentColumns.join(', ')})`,
          violations: m.status === 'ok' ? 0 : await violations(() => foreignKeyViolations(tx, e)),
          ddl: ddl.statements,
          found: m.found ? m.found.name : null,
          source: e.source,
          warnings: ddl.warnings,
        });
      }
    }
    for (const table of catalog.tables.filter((t) => catalog.schemas.includes(t.schema))) {
      for (const index of table.uniqueIndexes.filter((i) => !i.valid && !seenIndexes.has(i))) {
        // Not compared with anything: the index's own text is its form.
        const key = {
          parts: index.parts,
          predicate: index.predicate,
          forms: index.parts,
          predicateForm: index.predicate,
        };
        const e = {
          kind: 'unique' as const,
          table,
          key: [],
          where: null,
          nullsNotDistinct: index.nullsNotDistinct,
          source: 'catalog',
        };
        const ddl = uniqueDdl(db, catalog, e, key, 'invalid', index, options.lockTimeout, names);
        verdicts.push({
          kind: 'unique',
          table: table.id,
          columns: index.parts,
          where: index.predicate,
          status: 'invalid',
          detail:
            `index ${index.name} is INVALID (indisvalid = false): a failed CREATE UNIQUE INDEX CONCURRENTLY ` +
            'leaves one behind; it costs writes and enforces nothing reliably',
          violations: await violations(() => uniqueViolations(tx, e, key)),
          ddl: ddl.statements,
          found: index.name,
          source: 'catalog',
          warnings: ddl.warnings,
        });
      }
    }
    return verdicts;
  });
}

/** The migration file: what each step is for, then the statements, runnable with psql as is. */
export function migrationText(verdicts: Verdict[], database: string): string {
  const lines = [
    `-- rowdoctor verify-constraints migration for ${database}`,
    '-- Lock-safe: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, so run this file',
    '-- statement by statement (psql -f file.sql, without -1 / --single-transaction).',
    '',
  ];
  for (const v of verdicts.filter((x) => x.ddl.length)) {
    const references = v.references ? ` -> ${v.references}` : '';
    const where = v.where ? ` WHERE ${v.where}` : '';
    lines.push(`-- ${v.kind} ${v.table}(${v.columns.join(', ')})${references}${where}: ${v.status} — ${v.detail}`);
    if (v.violations)
      lines.push(
        `-- ${v.violations} row(s) violate it today: ` +
          'this step fails until they are repaired (rowdoctor repair --apply).',
      );
    lines.push(...v.ddl.map((s) => `${s};`), '');
  }
  if (lines.length === 4) lines.push('-- Nothing to do: every expected constraint is in place.');
  return lines.join('\n');
}
