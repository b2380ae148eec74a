import { sql, type RawBuilder } from 'kysely';
import { indexPartColumn, type Catalog, type ForeignKey, type Table, type UniqueIndex } from '../catalog/types.js';
import type { Db } from '../db.js';
import { tableRef, tableName } from '../sql/build.js';
import type { NameAllocator } from './names.js';
import type { NormalizedKey } from './normalize.js';
import type { ExpectedForeignKey, ExpectedUnique, Status } from './types.js';

/**
 * Lock-safe DDL, quoted by the same kysely code that quotes every executed statement. Index
 * builds are CONCURRENTLY (so they cannot run inside a transaction block: the migration is a
 * list of statements, not a transaction); foreign keys are added NOT VALID, then validated.
 */
export interface Ddl {
  statements: string[];
  warnings: string[];
}

const text = (db: Db, q: RawBuilder<unknown>) => q.compile(db).sql;

export function uniqueDdl(
  db: Db,
  catalog: Catalog,
  e: ExpectedUnique,
  key: NormalizedKey,
  status: Status,
  found: UniqueIndex | null,
  lockTimeout: string,
  names: NameAllocator,
): Ddl {
  if (status === 'ok') return { statements: [], warnings: [] };
  const table = e.table;
  const warnings: string[] = [];
  const partitionKey = table.partitionKey;
  if (table.partitioned) {
    const missing = partitionKey.filter((c) => c === null || !key.parts.some((p) => indexPartColumn(table, p) === c));
    if (missing.length) {
      return {
        statements: [],
        warnings: [
          `cannot be enforced: a unique index on partitioned table ${table.id} must include its partition key ` +
            `(${partitionKey.map((c) => c ?? '<expression>').join(', ')})`,
        ],
      };
    }
  }
  const statements = [text(db, sql`SET lock_timeout = ${sql.lit(lockTimeout)}`)];
  // An INVALID index — the expected one or a mismatched one — is dropped first: CREATE … IF NOT
  // EXISTS would keep it, and next to its replacement it costs every write and enforces nothing
  // reliably. The expected one is rebuilt as what it was — a plain unique index as a plain index, a
  // constraint as that constraint, under its own name — so scripts that name it (DROP INDEX …) still
  // work; a mismatched one's replacement gets a name of its own.
  const broken = found && !found.valid && (status === 'invalid' || status === 'mismatch') && !table.partitioned;
  const rebuilt = broken && status === 'invalid' ? found : null;
  const name = rebuilt ? rebuilt.name : names.allocate(table, key.parts, 'key');
  if (broken) statements.push(dropStatement(db, table, found));
  // A valid mismatched index may be what the application relies on (an ON CONFLICT target, a
  // foreign key's referenced key): it is left in place, for the operator to drop once it is not.
  if (found && found.valid && status === 'mismatch')
    warnings.push(
      `${found.name} is left in place: drop it (DROP INDEX CONCURRENTLY, or the constraint) once nothing relies on it`,
    );
  // The index's ON clause, key, INCLUDE columns, NULL semantics and predicate, as the verdict normalised them.
  const nulls = e.nullsNotDistinct ? sql` NULLS NOT DISTINCT` : sql``;
  const where = key.predicate ? sql` WHERE ${sql.raw(key.predicate)}` : sql``;
  const include = rebuilt?.include.length ? sql` INCLUDE (${sql.raw(rebuilt.include.join(', '))})` : sql``;
  const body = (on: RawBuilder<unknown>) => sql`${on} (${sql.raw(key.parts.join(', '))})${include}${nulls}${where}`;
  if (!table.partitioned) {
    statements.push(
      text(db, sql`CREATE UNIQUE INDEX CONCURRENTLY ${sql.id(name)} ${body(sql`ON ${tableName(table)}`)}`),
    );
    const eligible = !key.predicate && key.parts.every((p) => indexPartColumn(table, p) !== null);
    const constraint = rebuilt ? rebuilt.constraint : eligible ? name : null;
    const kind = rebuilt?.primary ? sql`PRIMARY KEY` : sql`UNIQUE`;
    if (constraint)
      statements.push(
        text(
          db,
          sql`ALTER TABLE ${tableRef(table)} ADD CONSTRAINT ${sql.id(constraint)} ${kind} USING INDEX ${sql.id(name)}`,
        ),
      );
    return { statements, warnings };
  }
  // Partitioned: CONCURRENTLY is impossible on the parent. Its index is created ON ONLY the parent
  // (instant, INVALID until complete) — or an INVALID one that is already there is completed — then
  // each partition's index is built CONCURRENTLY and attached; the parent's becomes valid with the last.
  const parentIndex = status === 'invalid' && found ? found.name : names.allocate(table, key.parts, 'key');
  if (!(status === 'invalid' && found))
    statements.push(
      text(db, sql`CREATE UNIQUE INDEX ${sql.id(parentIndex)} ${body(sql`ON ONLY ${tableName(table)}`)}`),
    );
  for (const [partition, root] of catalog.partitionRoot) {
    if (root !== table.id) continue;
    const [schema, pname] = [partition.slice(0, partition.indexOf('.')), partition.slice(partition.indexOf('.') + 1)];
    const pindex = names.allocate({ schema, name: pname }, key.parts, 'key');
    statements.push(
      text(db, sql`CREATE UNIQUE INDEX CONCURRENTLY ${sql.id(pindex)} ${body(sql`ON ${sql.id(schema, pname)}`)}`),
    );
    statements.push(
      text(db, sql`ALTER INDEX ${sql.id(table.schema, parentIndex)} ATTACH PARTITION ${sql.id(schema, pindex)}`),
    );
  }
  warnings.push(
    'a partition that already has an index attached to this parent index needs no new one: remove its two lines',
  );
  return { statements, warnings };
}

/**
 * How an INVALID index goes: CONCURRENTLY when it is a plain index; one a constraint owns cannot be
 * dropped on its own, so the constraint goes (a brief lock, under the migration's lock_timeout).
 */
function dropStatement(db: Db, table: Table, index: UniqueIndex): string {
  if (index.constraint)
    return text(db, sql`ALTER TABLE ${tableRef(table)} DROP CONSTRAINT IF EXISTS ${sql.id(index.constraint)}`);
  return text(db, sql`DROP INDEX CONCURRENTLY IF EXISTS ${sql.id(table.schema, index.name)}`);
}

export function foreignKeyDdl(
  db: Db,
  e: ExpectedForeignKey,
  status: Status,
  found: ForeignKey | null,
  lockTimeout: string,
  names: NameAllocator,
): Ddl {
  if (status === 'ok') return { statements: [], warnings: [] };
  const warnings: string[] = [];
  const parentKey = e.parent.uniqueIndexes.some(
    (i) =>
      i.valid &&
      !i.predicate &&
      i.columns.length === e.parentColumns.length &&
      i.columns.every((c) => c !== null && e.parentColumns.includes(c)),
  );
  if (!parentKey)
    warnings.push(
      `${e.parent.id}(${e.parentColumns.join(', ')}) has no plain unique constraint; ` +
        'a foreign key needs one there first',
    );
  const lock = text(db, sql`SET lock_timeout = ${sql.lit(lockTimeout)}`);
  // A NOT ENFORCED key cannot be validated (PostgreSQL 18 refuses); made ENFORCED, it is validated
  // in the same statement, under a lock that holds writes for the scan (no NOT VALID step exists).
  const complete = found?.enforced === false ? sql`ALTER CONSTRAINT ${sql.id(found.name)} ENFORCED` : null;
  if (status === 'invalid' && found)
    return {
      statements: [
        lock,
        text(db, sql`ALTER TABLE ${tableRef(e.table)} ${complete ?? sql`VALIDATE CONSTRAINT ${sql.id(found.name)}`}`),
      ],
      warnings,
    };
  const name = names.allocate(e.table, e.columns, 'fkey');
  // Added NOT VALID (a brief lock, no scan), then validated under a lock that lets writes through.
  const columns = sql.join(e.columns.map((c) => sql.id(c)));
  const parentColumns = sql.join(e.parentColumns.map((c) => sql.id(c)));
  const fk = sql`FOREIGN KEY (${columns}) REFERENCES ${tableName(e.parent)} (${parentColumns}) NOT VALID`;
  return {
    statements: [
      lock,
      text(db, sql`ALTER TABLE ${tableRef(e.table)} ADD CONSTRAINT ${sql.id(name)} ${fk}`),
      text(db, sql`ALTER TABLE ${tableRef(e.table)} VALIDATE CONSTRAINT ${sql.id(name)}`),
    ],
    warnings,
  };
}
