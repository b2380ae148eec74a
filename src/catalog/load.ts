import type { Db, Tx } from '../db.js';
import { weighReferences } from '../rules/reference-evidence.js';
import { loadContentTypes, weighTypedReferences } from '../rules/typed-evidence.js';
import { loadColumns } from './load-columns.js';
import { loadForeignKeys } from './load-foreign-keys.js';
import { loadUniqueIndexes, type LoadedIndex } from './load-indexes.js';
import { loadKeys, primaryKeyOf, type TableKeys } from './load-keys.js';
import { checkedSchemas, loadRelations, loadServerVersion, type RelRow } from './load-tables.js';
import { markerFor, weighMarkers, type SoftDeleteSettings } from './soft-delete.js';
import { tableId, type Catalog, type Column, type Table, type UniqueIndex } from './types.js';

export interface CatalogOptions {
  schemas: string[] | null;
  softDelete: SoftDeleteSettings;
  /**
   * Weigh references the catalog does not hold (`X_id` names, polymorphic and generic pairs) against
   * the data. Each candidate costs a pass over its table, so only commands that use them ask: scan and
   * verify with discovery (all of them). Off, the catalog holds foreign keys and markers only; a repair
   * without discovery then weighs those in its reach (weighCatalogReferences).
   */
  weighReferences: boolean;
}

/**
 * Read one consistent snapshot of the catalog. `schemas` limits what is checked; tables of every
 * user schema are still loaded, because a foreign key may cross schemas. Each step reads one thing
 * from pg_catalog (load-*.ts); a new kind of fact is a new step here.
 */
export async function loadCatalog(db: Db | Tx, options: CatalogOptions): Promise<Catalog> {
  const serverVersion = await loadServerVersion(db);
  const relations = await loadRelations(db);
  const schemas = await checkedSchemas(db, options.schemas);
  const oids = relations.map((r) => r.oid);
  const { columnsOf, equalities } = await loadColumns(db, oids);
  const indexesOf = await loadUniqueIndexes(db, oids, serverVersion, equalities);
  const foreignKeys = await loadForeignKeys(db, serverVersion);
  const keys = await loadKeys(db, oids);
  const tables = relations
    .filter((r) => !r.is_partition)
    .map((r) => tableOf(r, columnsOf.get(r.oid) ?? [], indexesOf.get(r.oid) ?? [], keys, options.softDelete));
  const partitions = relations.filter((r) => r.is_partition);
  partitionIndexes(tables, partitions, indexesOf);
  const catalog: Catalog = {
    serverVersion,
    schemas,
    tables,
    foreignKeys,
    partitionRoot: new Map(partitions.filter((r) => r.root).map((r) => [tableId(r.schema, r.name), r.root!])),
    partitionColumns: new Map(partitions.map((r) => [tableId(r.schema, r.name), columnsOf.get(r.oid) ?? []])),
    assumptions: [],
    typedReferences: [],
    unconfirmedReferences: [],
    contentTypes: new Map(),
    warnings: [],
  };
  // Names only suggest: soft-delete markers and references are weighed against the data.
  catalog.assumptions.push(...(await weighMarkers(db, tables, options.softDelete)));
  // Django's content types (one small table): what a declared generic reference's type values name.
  catalog.contentTypes = await loadContentTypes(db, catalog);
  if (options.weighReferences) await weighCatalogReferences(db, catalog, null);
  return catalog;
}

/**
 * Weigh the references the catalog does not hold against the data, into `catalog`: name-based
 * candidates (only those into the `into` tables, when given: see rules/reach.ts), then every
 * polymorphic and generic pair (type values mapped by framework naming; a pair's parents are known
 * only once its type values are read, so every pair is weighed).
 */
export async function weighCatalogReferences(db: Db | Tx, catalog: Catalog, into: Set<string> | null): Promise<void> {
  catalog.assumptions.push(...(await weighReferences(db, catalog, into)));
  const typed = await weighTypedReferences(db, catalog);
  catalog.typedReferences = typed.references;
  catalog.unconfirmedReferences = typed.unconfirmed;
  catalog.assumptions.push(...typed.assumptions);
  catalog.warnings = typed.warnings;
}

/** One plain or partitioned table, from what the steps read. */
function tableOf(
  r: RelRow,
  columns: Column[],
  uniqueIndexes: LoadedIndex[],
  keys: TableKeys,
  softDelete: SoftDeleteSettings,
): Table {
  const id = tableId(r.schema, r.name);
  return {
    oid: r.oid,
    schema: r.schema,
    name: r.name,
    id,
    partitioned: r.kind === 'p',
    hasInheritors: r.has_inheritors,
    columns,
    primaryKey: primaryKeyOf(uniqueIndexes),
    uniqueIndexes: uniqueIndexes.map(withoutPlace),
    partitionUniqueIndexes: [],
    partitionKey: keys.partitionKey.get(r.oid) ?? [],
    softDelete: markerFor(id, columns, softDelete),
    estimatedRows: r.estimated_rows,
    indexedLeading: keys.indexedLeading.get(r.oid) ?? [],
    orderedLeading: keys.orderedLeading.get(r.oid) ?? [],
    pages: r.pages,
  };
}

/** The index as the catalog keeps it. */
function withoutPlace(loaded: LoadedIndex): UniqueIndex {
  const index: Partial<LoadedIndex> = { ...loaded };
  delete index.scope;
  delete index.inherited;
  return index as UniqueIndex;
}

/**
 * A unique index defined on a partition (at any level), not attached to one of its parent's: it
 * holds for that partition's rows only — the root's rows where the partition constraint holds.
 */
function partitionIndexes(tables: Table[], partitions: RelRow[], indexesOf: Map<number, LoadedIndex[]>): void {
  const byId = new Map(tables.map((t) => [t.id, t]));
  for (const r of partitions.filter((x) => x.root)) {
    const root = byId.get(r.root!);
    for (const i of (indexesOf.get(r.oid) ?? []).filter((x) => !x.inherited && x.scope)) {
      const index = withoutPlace(i);
      const predicate = index.predicate ? `(${i.scope}) AND (${index.predicate})` : i.scope!;
      root?.partitionUniqueIndexes.push({ ...index, predicate, partition: tableId(r.schema, r.name) });
    }
  }
}
