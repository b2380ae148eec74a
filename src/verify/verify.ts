import { indexPartColumn, type Catalog, type ForeignKey, type UniqueIndex } from '../catalog/types.js';
import { preferParallel, readOnly, type Db } from '../db.js';
import type { Rule } from '../rules/types.js';
import { foreignKeyDdl, uniqueDdl } from './ddl.js';
import { fixFor } from './migration.js';
import { expectedConstraints } from './expected.js';
import { matchForeignKey, matchUnique } from './match.js';
import { NameAllocator } from './names.js';
import { normalizeKeys } from './normalize.js';
import type { ExpectedUnique, Verdict } from './types.js';
import { foreignKeyViolations, uniqueViolations } from './violations.js';
import { notValidForeignKeys } from './not-valid-keys.js';
import { indexKey } from '../rules/discover.js';

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
    const seenForeignKeys = new Set<ForeignKey>();
    for (const e of expected) {
      if (e.kind === 'unique') {
        const key = keys.get(e)!;
        const m = matchUnique(e, key, indexes);
        if (m.found) seenIndexes.add(m.found as UniqueIndex);
        const ddl = uniqueDdl(db, catalog, e, key, m.status, m.found as UniqueIndex | null, options.lockTimeout, names);
        verdicts.push({
          kind: 'unique',
          table: e.table.id,
          // Column names unquoted, as everywhere in the output; expressions as the server prints them.
          columns: key.parts.map((p) => indexPartColumn(e.table, p) ?? p),
          where: key.predicate,
          status: m.status,
          detail: [m.detail, ...ddl.warnings].join('; '),
          violations: m.status === 'ok' ? 0 : await violations(() => uniqueViolations(tx, e, key)),
          ddl: ddl.statements,
          found: m.found ? m.found.name : null,
          source: e.source,
          warnings: ddl.warnings,
          fix: fixFor({ source: e.source, table: e.table, columns: key.parts, where: key.predicate }),
        });
      } else if (e.typed) {
        // A type column decides which table a row names: no foreign key can say that, so none is proposed.
        const typeTest = `${e.typed.typeColumn} = '${e.typed.type.replace(/'/g, "''")}'`;
        verdicts.push({
          kind: 'foreign-key',
          table: e.table.id,
          columns: e.columns,
          where: typeTest,
          status: 'unenforceable',
          detail:
            `a ${e.typed.kind} reference (rows where ${typeTest}): no foreign key can express it; ` +
            'rowdoctor checks it in scan and follows it in every repair',
          references: `${e.parent.id}(${e.parentColumns.join(', ')})`,
          violations: await violations(() => foreignKeyViolations(tx, e)),
          ddl: [],
          found: null,
          source: e.source,
          warnings: [],
          fix: 'rowdoctor repair with an orphaned-rows rule, or by hand',
        });
      } else {
        const m = matchForeignKey(catalog, e);
        if (m.found) seenForeignKeys.add(m.found as ForeignKey);
        const ddl = foreignKeyDdl(db, e, m.status, m.found as ForeignKey | null, options.lockTimeout, names);
        verdicts.push({
          kind: 'foreign-key',
          table: e.table.id,
          columns: e.columns,
          where: null,
          status: m.status,
          detail: [m.detail, ...ddl.warnings].join('; '),
          references: `${e.parent.id}(${e.parentColumns.join(', ')})`,
          violations:
            m.status === 'ok' ? 0 : await violations(() => foreignKeyViolations(tx, e, m.found as ForeignKey | null)),
          ddl: ddl.statements,
          found: m.found ? m.found.name : null,
          source: e.source,
          warnings: ddl.warnings,
          fix: fixFor({
            source: e.source,
            table: e.table,
            columns: e.columns,
            refs: { table: e.parent, columns: e.parentColumns },
          }),
        });
      }
    }
    for (const table of catalog.tables.filter((t) => catalog.schemas.includes(t.schema))) {
      for (const index of table.uniqueIndexes.filter((i) => !i.valid && !seenIndexes.has(i))) {
        // Not compared with anything: the index's own text is its form; rebuilt with its own
        // collations and operator classes (elements), counted under its own equality (indexKey).
        const key = {
          parts: index.elements,
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
          columns: index.parts.map((p) => indexPartColumn(table, p) ?? p),
          where: index.predicate,
          status: 'invalid',
          detail:
            `index ${index.name} is INVALID (indisvalid = false): a failed CREATE UNIQUE INDEX CONCURRENTLY ` +
            'leaves one behind; it costs writes and enforces nothing reliably',
          violations: await violations(() => uniqueViolations(tx, e, key, indexKey(index))),
          ddl: ddl.statements,
          found: index.name,
          source: 'catalog',
          warnings: ddl.warnings,
          fix: fixFor({ source: 'catalog', table, columns: index.parts, where: index.predicate }),
        });
      }
    }
    verdicts.push(...(await notValidForeignKeys(tx, db, catalog, seenForeignKeys, options, names, violations)));
    return verdicts;
  });
}

export { migrationText } from './migration.js';
