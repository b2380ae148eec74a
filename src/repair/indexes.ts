import { sql } from 'kysely';
import type { Catalog } from '../catalog/types.js';
import type { Db } from '../db.js';
import type { Rule } from '../rules/types.js';
import { tableName } from '../sql/build.js';
import { constraintName } from '../verify/names.js';
import { referencesInto } from './references.js';

/** A column that points at rows a repair deletes or re-points, with no index to find those rows by. */
export interface MissingIndex {
  child: string;
  columns: string[];
  via: string;
  ddl: string;
  /** Rough cost of one full scan of the child table (seconds), which every batch would pay. */
  scanSeconds: number;
}

/** Sequential read rate assumed for estimates; deliberately modest (a busy 2-core server). */
const SCAN_BYTES_PER_SECOND = 200 * 1024 * 1024;

/**
 * Before deleting or re-pointing anything, look at every reference the repair will follow: without
 * an index that leads with the referencing column, each batch scans the whole child table (and so
 * does every foreign-key check on delete). Deleting 20 rows took seconds that way; at scale, hours.
 */
export function missingSupportingIndexes(
  db: Db,
  catalog: Catalog,
  rules: Rule[],
  declared: Rule[],
  infer: boolean,
): MissingIndex[] {
  const out: MissingIndex[] = [];
  const seen = new Set<string>();
  for (const rule of rules) {
    if (rule.check === 'orphaned-rows' && rule.repair !== 'delete') continue;
    for (const ref of referencesInto(catalog, rule.table, declared, infer)) {
      // A polymorphic reference is looked up by type and id: an index leading with either serves it.
      const lookup = ref.typed ? [ref.typed.typeColumn, ...ref.columns] : ref.columns;
      const key = `${ref.child.id}|${lookup.join(',')}`;
      if (seen.has(key) || lookup.slice(0, ref.typed ? 2 : 1).some((c) => ref.child.indexedLeading.includes(c)))
        continue;
      seen.add(key);
      const name = constraintName(ref.child, lookup, 'idx');
      const columns = sql.join(lookup.map((c) => sql.id(c)));
      out.push({
        child: ref.child.id,
        columns: lookup,
        via: ref.via,
        ddl: sql`CREATE INDEX CONCURRENTLY ${sql.id(name)} ON ${tableName(ref.child)} (${columns})`.compile(db).sql,
        scanSeconds: (ref.child.pages * 8192) / SCAN_BYTES_PER_SECOND,
      });
    }
  }
  return out;
}
