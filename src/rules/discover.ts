import type { Catalog, Column, Table, UniqueIndex } from '../catalog/types.js';
import { predicateExcludesDeleted } from '../catalog/soft-delete.js';
import { sqlFragment } from '../sql/fragment.js';
import { parseKeep } from './defaults.js';
import type { DuplicateRule, KeyPart, OrphanRule, Rule, SoftDeleteRule } from './types.js';
import { typedPairs } from './typed-names.js';

/**
 * Rules the catalog implies, with no config (contract §"Where checks come from", item 3):
 * INVALID unique indexes, NOT VALID foreign keys, foreign keys into soft-deleting tables,
 * inferred `X_id` references, and unique keys that soft-deleted rows keep occupying.
 * Partitions are never looked at directly: their partitioned parent covers them.
 */
export function discoverRules(catalog: Catalog): Rule[] {
  const rules: Rule[] = [];
  for (const table of catalog.tables.filter((t) => catalog.schemas.includes(t.schema))) {
    rules.push(...invalidUniqueIndexes(table));
    rules.push(...foreignKeyRules(catalog, table));
    rules.push(...inferredReferences(catalog, table));
    rules.push(...softDeleteBlockers(table));
  }
  return rules;
}

/**
 * An index's key as the index compares it: each part with the index's own collation and its
 * operator class's equality (pg_index.indcollation, indclass), not only its column or expression.
 */
export function indexKey(index: UniqueIndex): KeyPart[] {
  return index.parts.map((part, i): KeyPart => {
    const column = index.columns[i];
    const info = index.partInfo[i];
    const how = { collation: info?.collation ?? null, ...(info?.equality ? { equality: info.equality } : {}) };
    return column
      ? { kind: 'column', column, ...how }
      : { kind: 'expr', expr: sqlFragment(part, `index ${index.name} expression`), ...how };
  });
}

/** A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index: find what made it fail. */
function invalidUniqueIndexes(table: Table): DuplicateRule[] {
  return table.uniqueIndexes
    .filter((i) => !i.valid)
    .map((index) => ({
      check: 'duplicate-rows',
      table,
      key: indexKey(index),
      where: index.predicate ? sqlFragment(index.predicate, `index ${index.name} predicate`) : null,
      // The index's own predicate decides whether soft-deleted rows count, exactly as the index would.
      includeSoftDeleted: true,
      nullsNotDistinct: index.nullsNotDistinct,
      keep: parseKeep(table, undefined, ''),
      fill: false,
      repair: 'merge',
      source: 'discovered',
      severity: 'error',
      origin: `INVALID unique index ${index.name}`,
    }));
}

/** NOT VALID foreign keys, and foreign keys whose parent soft-deletes (an FK cannot see that). */
function foreignKeyRules(catalog: Catalog, table: Table): OrphanRule[] {
  const rules: OrphanRule[] = [];
  for (const fk of catalog.foreignKeys.filter((f) => f.table === table.id && !f.onPartition)) {
    const parent = catalog.tables.find((t) => t.id === fk.references);
    if (!parent || (fk.valid && !parent.softDelete)) continue;
    rules.push({
      check: 'orphaned-rows',
      table,
      columns: fk.columns,
      parent,
      parentColumns: fk.refColumns,
      where: null,
      includeSoftDeleted: false,
      inferred: false,
      foreignKey: fk.name,
      repair: 'delete',
      source: 'discovered',
      severity: 'error',
      origin: fk.valid ? `foreign key ${fk.name} into soft-deleting ${parent.id}` : `NOT VALID foreign key ${fk.name}`,
    });
  }
  return rules;
}

const INT_TYPES = new Set(['int2', 'int4', 'int8']);
const STRING_TYPES = new Set(['text', 'varchar', 'bpchar']);

/** Could values of these two columns be equal, and compared without a cast error? */
export function compatibleTypes(a: Column, b: Column): boolean {
  if (a.baseType === b.baseType) return true;
  return (
    (INT_TYPES.has(a.baseType) && INT_TYPES.has(b.baseType)) ||
    (STRING_TYPES.has(a.baseType) && STRING_TYPES.has(b.baseType))
  );
}

/** `X` from `X_id` / `XId` / `XID`, or null. */
export function referencedStem(column: string): string | null {
  const snake = /^(.+?)_id$/i.exec(column);
  if (snake) return snake[1]!;
  const camel = /^(.*[a-z0-9])(?:Id|ID)$/.exec(column);
  return camel ? camel[1]! : null;
}

/** Table names X, Xs, Xes, and X with y → ies, compared case-insensitively. */
function candidateNames(stem: string): string[] {
  const s = stem.toLowerCase();
  const names = [s, `${s}s`, `${s}es`];
  if (s.endsWith('y')) names.push(`${s.slice(0, -1)}ies`);
  return names;
}

/** A column named like a reference to a table's primary key, with no foreign key on it. */
export interface ReferenceCandidate {
  table: Table;
  column: string;
  parent: Table;
  parentColumn: string;
}

/** Candidates by name and type alone: the data has not been asked yet (see reference-evidence.ts). */
export function referenceCandidates(catalog: Catalog, table: Table): ReferenceCandidate[] {
  const candidates: ReferenceCandidate[] = [];
  const fkColumns = new Set(catalog.foreignKeys.filter((f) => f.table === table.id).flatMap((f) => f.columns));
  const ownPk = table.primaryKey?.length === 1 ? table.primaryKey[0] : null;
  // The id column of a type/id pair names whatever its type says, not the table its name suggests.
  const typedIds = new Set(typedPairs(catalog, table).map((p) => p.idColumn));
  for (const col of table.columns) {
    if (fkColumns.has(col.name) || col.name === ownPk || typedIds.has(col.name)) continue;
    const stem = referencedStem(col.name);
    if (!stem) continue;
    const wanted = candidateNames(stem);
    const parent = wanted
      .map((n) => catalog.tables.find((t) => t.schema === table.schema && t.name.toLowerCase() === n))
      .find((t): t is Table => t !== undefined);
    if (!parent || parent.primaryKey?.length !== 1) continue;
    const pkName = parent.primaryKey[0]!;
    if (pkName !== 'id' && pkName.toLowerCase() !== `${stem.toLowerCase()}_id`) continue;
    const pkCol = parent.columns.find((c) => c.name === pkName);
    if (!pkCol || !compatibleTypes(col, pkCol)) continue;
    candidates.push({ table, column: col.name, parent, parentColumn: pkName });
  }
  return candidates;
}

/**
 * Columns that look like references, have no foreign key, and whose data agrees (the catalog's
 * `inferred-reference` assumptions): warnings, never errors. A name alone is not enough.
 */
function inferredReferences(catalog: Catalog, table: Table): OrphanRule[] {
  const rules: OrphanRule[] = [];
  for (const c of referenceCandidates(catalog, table)) {
    const evidence = catalog.assumptions.find(
      (a) => a.kind === 'inferred-reference' && a.table === table.id && a.column === c.column,
    );
    if (!evidence) continue;
    rules.push({
      check: 'orphaned-rows',
      table,
      columns: [c.column],
      parent: c.parent,
      parentColumns: [c.parentColumn],
      where: null,
      includeSoftDeleted: false,
      inferred: true,
      foreignKey: null,
      repair: 'delete',
      source: 'discovered',
      severity: 'warning',
      origin: `inferred: ${evidence.evidence}`,
    });
  }
  return rules;
}

/**
 * Polymorphic and generic references the data supports (catalog.typedReferences): one rule per
 * type value that names a table, inferred, so warnings. Apart from discoverRules, whose plain
 * references repair/references.ts follows by their columns alone: these need their type column.
 */
export function discoverTypedRules(catalog: Catalog): OrphanRule[] {
  return catalog.typedReferences.flatMap((r): OrphanRule[] => {
    const parent = catalog.tables.find((t) => t.id === r.parent);
    const table = catalog.tables.find((t) => t.id === r.table);
    if (!table || !parent) return [];
    return [
      {
        check: 'orphaned-rows',
        table,
        columns: [r.idColumn],
        parent,
        parentColumns: [r.parentColumn],
        where: null,
        includeSoftDeleted: false,
        inferred: true,
        foreignKey: null,
        repair: 'delete',
        source: 'discovered',
        severity: 'warning',
        origin: `${r.kind} reference: ${r.evidence}`,
        typed: { kind: r.kind, typeColumn: r.typeColumn, type: r.type, asText: r.asText },
      },
    ];
  });
}

/**
 * The valid, non-primary unique index that makes a soft-deleted row block inserts of its key:
 * no predicate that leaves deleted rows out, and the marker is not itself part of the key (then a
 * deleted row's key differs from a live row's). A key that contains every primary-key column can
 * never be held by two rows, so a deleted row blocks nothing the primary key would not: not one.
 */
export function blockingIndexes(table: Table): UniqueIndex[] {
  const marker = table.softDelete;
  if (!marker) return [];
  const pk = table.primaryKey;
  const containsPk = (i: UniqueIndex) => pk !== null && pk.every((c) => i.columns.includes(c));
  return table.uniqueIndexes.filter(
    (i) =>
      i.valid &&
      !i.primary &&
      !containsPk(i) &&
      !i.columns.includes(marker.column) &&
      !predicateExcludesDeleted(i.predicate, marker),
  );
}

/** For a declared rule: an index of `blockingIndexes` with no predicate whose key is within the rule's. */
export function enforcingIndex(table: Table, key: KeyPart[]): UniqueIndex | undefined {
  const labels = new Set(key.map((k) => (k.kind === 'column' ? k.column : k.expr.text)));
  return blockingIndexes(table).find((i) => !i.predicate && i.columns.every((c, n) => labels.has(c ?? i.parts[n]!)));
}

function softDeleteBlockers(table: Table): SoftDeleteRule[] {
  const label = (i: UniqueIndex) => (i.constraint ? `constraint ${i.constraint}` : `index ${i.name}`);
  return blockingIndexes(table).map((index) => ({
    check: 'soft-delete-conflicts',
    table,
    key: indexKey(index),
    where: index.predicate ? sqlFragment(index.predicate, `index ${index.name} predicate`) : null,
    nullsNotDistinct: index.nullsNotDistinct,
    enforcedBy: index.constraint ?? index.name,
    repair: 'purge-deleted',
    source: 'discovered',
    severity: 'error',
    origin: `unique ${label(index)} counts soft-deleted rows`,
  }));
}
