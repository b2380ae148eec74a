import { sql } from 'kysely';
import type { Catalog, ForeignKey, Table } from '../catalog/types.js';
import { discoverRules, discoverTypedRules } from '../rules/discover.js';
import type { OrphanRule, Rule, TypedKey } from '../rules/types.js';
import { and, col, type Sql } from '../sql/build.js';
import { holdsType } from '../sql/typed.js';

/**
 * Every table a repair of `rules` reads or writes: each rule's table (and an orphan rule's parent)
 * and, for the rules that merge or delete, every table that references them, at any depth.
 */
export function tablesTouched(catalog: Catalog, rules: Rule[], declared: Rule[], infer: boolean): Table[] {
  const seen = new Map<string, Table>();
  // A parent an orphan rule only reads is in `seen` without its references: a later rule that
  // merges or deletes in it still follows them (the dry run needs copies of its children too).
  const followed = new Set<string>();
  const visit = (table: Table) => {
    if (followed.has(table.id)) return;
    followed.add(table.id);
    seen.set(table.id, table);
    for (const ref of referencesInto(catalog, table, declared, infer)) visit(ref.child);
  };
  for (const rule of rules) {
    visit(rule.table);
    if (rule.check === 'orphaned-rows' && !seen.has(rule.parent.id)) seen.set(rule.parent.id, rule.parent);
  }
  return [...seen.values()];
}

/** A way rows of `child` point at rows of a parent: a foreign key, or a declared/inferred reference. */
export interface Reference {
  child: Table;
  columns: string[];
  parentColumns: string[];
  /** What makes this a reference, for plans and messages. */
  via: string;
  /** A foreign key's ON UPDATE action (pg_constraint.confupdtype); none for declared or inferred references. */
  onUpdate?: string;
  /**
   * A polymorphic or generic reference: only the child rows whose type column holds this type name
   * the parent (their id, as text where the id column is text). Everything that follows a reference
   * — re-pointing, collisions, proofs, locks, backups — asks `pointsAt` and `childValue`.
   */
  typed?: TypedKey;
  /**
   * A candidate pair the data does not support (Catalog.unconfirmedReferences): never followed, only
   * asked before a delete. What to do about it, for the reason of a skipped group.
   */
  unconfirmed?: string;
}

/** Child row `x` names parent row `t` through `ref` (its type test included). */
export function pointsAt(
  ref: Pick<Reference, 'child' | 'columns' | 'parentColumns' | 'typed'>,
  x: string,
  t: string,
): Sql {
  return and([
    ...(ref.typed ? [holdsType(ref.child, ref.typed.typeColumn, ref.typed.type, x)] : []),
    ...ref.columns.map((c, i) => sql`${col(x, c)} = ${childValue(ref, col(t, ref.parentColumns[i]!))}`),
  ]);
}

/** Child row `x` holds the parent key values `values` (one per column of the reference). */
export function holdsKey(ref: Pick<Reference, 'child' | 'columns' | 'typed'>, x: string, values: Sql[]): Sql {
  return and([
    ...(ref.typed ? [holdsType(ref.child, ref.typed.typeColumn, ref.typed.type, x)] : []),
    ...ref.columns.map((c, i) => sql`${col(x, c)} = ${childValue(ref, values[i]!)}`),
  ]);
}

/** A parent key value as the reference's child column holds it: its text form for a text object_id. */
export function childValue(ref: Pick<Reference, 'typed'>, value: Sql): Sql {
  return ref.typed?.asText ? sql`(${value})::text` : value;
}

/**
 * Every reference into `parent`: foreign keys from the catalog (composite ones included; one
 * defined on a partition is followed through its partitioned root, which re-points children in
 * every partition), declared orphaned-rows rules, and — unless `infer` is off — inferred references.
 * Read once per catalog, parent and rule set: a merge asks for the references into each table again
 * for every batch and every pair of child tables, and inferring them walks the whole catalog
 * (130–155 s of client CPU for 44 groups on a 375-table schema).
 */
export function referencesInto(catalog: Catalog, parent: Table, declared: Rule[], infer: boolean): Reference[] {
  const memo = referenceMemo(catalog, declared, infer);
  let refs = memo.byParent.get(parent.id);
  if (!refs) {
    refs = findReferencesInto(catalog, parent, declared, memo);
    memo.byParent.set(parent.id, refs);
  }
  return refs;
}

interface ReferenceMemo {
  byId: Map<string, Table>;
  /** Inferred references of the whole catalog; null when inference is off. */
  inferred: OrphanRule[] | null;
  byParent: Map<string, Reference[]>;
  unconfirmedByParent: Map<string, Reference[]>;
}

// Per catalog, then per declared rule list (one per command), then inference on or off.
const memos = new WeakMap<Catalog, WeakMap<Rule[], Map<boolean, ReferenceMemo>>>();

function referenceMemo(catalog: Catalog, declared: Rule[], infer: boolean): ReferenceMemo {
  let byRules = memos.get(catalog);
  if (!byRules) memos.set(catalog, (byRules = new WeakMap()));
  let byInfer = byRules.get(declared);
  if (!byInfer) byRules.set(declared, (byInfer = new Map<boolean, ReferenceMemo>()));
  let memo = byInfer.get(infer);
  if (!memo) {
    const everywhere = { ...catalog, schemas: [...new Set(catalog.tables.map((t) => t.schema))] };
    memo = {
      byId: new Map(catalog.tables.map((t) => [t.id, t])),
      inferred: infer ? inferredReferences(everywhere, declared) : null,
      byParent: new Map(),
      unconfirmedByParent: new Map(),
    };
    byInfer.set(infer, memo);
  }
  return memo;
}

/**
 * Candidate pairs whose type values name `parent` but which the data does not support (an audit
 * log whose users were mostly deleted, a column that only looks like a reference): a merge does not
 * re-point them — that would be a guess — but no delete removes a row they name: the group is
 * skipped, and the reason says to declare the pair (or its other types) under `references:`. A pair
 * the config declares is followed exactly as declared; with inference off none is asked.
 */
export function unconfirmedInto(catalog: Catalog, parent: Table, declared: Rule[], infer: boolean): Reference[] {
  if (!infer) return [];
  const memo = referenceMemo(catalog, declared, infer);
  let refs = memo.unconfirmedByParent.get(parent.id);
  if (!refs) {
    const declaredPairs = declaredTypeColumns(declared);
    refs = catalog.unconfirmedReferences
      .filter((r) => r.parent === parent.id && !declaredPairs.has(`${r.table}|${r.typeColumn}`))
      .flatMap((r): Reference[] => {
        const child = memo.byId.get(r.table);
        if (!child) return [];
        const what = r.kind === 'generic' ? `content type ${r.type}` : `'${r.type}'`;
        const spec =
          r.kind === 'generic'
            ? `generic: { contentType: ${r.typeColumn}, id: ${r.idColumn} }`
            : `polymorphic: { type: ${r.typeColumn}, id: ${r.idColumn} }, types: { ${r.type}: ${parent.id}, … }`;
        return [
          {
            child,
            columns: [r.idColumn],
            parentColumns: [r.parentColumn],
            via: `${r.typeColumn} = ${what}, a ${r.kind} candidate not taken as a reference (${r.evidence})`,
            typed: { kind: r.kind, typeColumn: r.typeColumn, type: r.type, asText: r.asText },
            unconfirmed:
              `declare it under references: (table: ${child.id}, ${spec}) for a merge to re-point those rows, ` +
              `or declare the types it does name, without ${what}, if it does not name ${parent.id}`,
          },
        ];
      });
    memo.unconfirmedByParent.set(parent.id, refs);
  }
  return refs;
}

function declaredTypeColumns(declared: Rule[]): Set<string> {
  return new Set(
    declared.flatMap((r) => (r.check === 'orphaned-rows' && r.typed ? [`${r.table.id}|${r.typed.typeColumn}`] : [])),
  );
}

/**
 * Inferred references of the whole catalog: `X_id` columns, and polymorphic and generic ones — but
 * for a type column the config declares, whose listed types are all there is (nothing inferred).
 */
function inferredReferences(everywhere: Catalog, declared: Rule[]): OrphanRule[] {
  const declaredPairs = declaredTypeColumns(declared);
  return [
    ...discoverRules(everywhere).filter((r): r is OrphanRule => r.check === 'orphaned-rows' && r.inferred),
    ...discoverTypedRules(everywhere).filter((r) => !declaredPairs.has(`${r.table.id}|${r.typed!.typeColumn}`)),
  ];
}

function findReferencesInto(catalog: Catalog, parent: Table, declared: Rule[], memo: ReferenceMemo): Reference[] {
  const refs: Reference[] = [];
  const seen = new Set<string>();
  const add = (
    child: Table | undefined,
    columns: string[],
    parentColumns: string[],
    via: string,
    onUpdate?: string,
    typed?: TypedKey,
  ) => {
    if (!child) return;
    const type = typed ? `${typed.typeColumn}=${typed.type}|` : '';
    const key = `${child.id}|${type}${columns.join(',')}|${parentColumns.join(',')}`;
    if (seen.has(key)) return;
    seen.add(key);
    refs.push({ child, columns, parentColumns, via, ...(onUpdate ? { onUpdate } : {}), ...(typed ? { typed } : {}) });
  };
  const viaTyped = (r: OrphanRule, how: string) =>
    `${how} ${r.typed!.kind} reference (${r.typed!.typeColumn} = '${r.typed!.type}')`;
  // A foreign key may reference the table itself or one of its partitions directly.
  const intoParent = (f: ForeignKey) => (catalog.partitionRoot.get(f.references) ?? f.references) === parent.id;
  for (const fk of catalog.foreignKeys.filter(intoParent)) {
    const child = memo.byId.get(catalog.partitionRoot.get(fk.table) ?? fk.table);
    add(child, fk.columns, fk.refColumns, `foreign key ${fk.name}`, fk.onUpdate);
  }
  const orphanRules = (rules: Rule[]) =>
    rules.filter((r): r is OrphanRule => r.check === 'orphaned-rows' && r.parent.id === parent.id);
  for (const r of orphanRules(declared)) {
    const via = r.typed ? viaTyped(r, r.source) : `${r.source} reference`;
    add(r.table, r.columns, r.parentColumns, via, undefined, r.typed);
  }
  for (const r of orphanRules(memo.inferred ?? [])) {
    const via = r.typed ? viaTyped(r, 'inferred') : 'inferred reference';
    add(r.table, r.columns, r.parentColumns, via, undefined, r.typed);
  }
  return refs;
}

/**
 * A reference as a run records it for its undo (schema.table ids): undo then knows which re-pointed
 * rows named a row the run deleted, through a foreign key or a reference the database does not enforce.
 */
export interface RecordedReference {
  table: string;
  columns: string[];
  references: string;
  refColumns: string[];
  /** A polymorphic or generic reference: which rows of `table` name `references`. */
  typed?: TypedKey;
}

/** Every reference into the tables of `rules`, as the run follows them. */
export function referencesOfRun(
  catalog: Catalog,
  rules: Rule[],
  declared: Rule[],
  infer: boolean,
): RecordedReference[] {
  const out = new Map<string, RecordedReference>();
  for (const rule of rules)
    for (const r of referencesInto(catalog, rule.table, declared, infer))
      out.set(
        `${r.child.id}|${r.typed ? `${r.typed.typeColumn}=${r.typed.type}|` : ''}${r.columns.join(',')}|` +
          `${rule.table.id}|${r.parentColumns.join(',')}`,
        {
          table: r.child.id,
          columns: r.columns,
          references: rule.table.id,
          refColumns: r.parentColumns,
          ...(r.typed ? { typed: r.typed } : {}),
        },
      );
  return [...out.values()];
}
