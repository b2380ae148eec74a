import type { Catalog, Table, UniqueIndex } from '../catalog/types.js';
import type { DuplicateRule, Rule, SoftDeleteRule } from '../rules/types.js';
import { mentions } from './merge-collisions.js';
import { referencesInto } from './references.js';

/**
 * Where a dry run cannot bound the rows it must copy (repair/shadow-rows.ts), it copies the whole
 * table, as it did before. This file says which tables, and why: each case is a read or write of
 * the repair that could reach a row the closure (the groups' rows, the rows referencing them at
 * every depth, their parents) does not hold.
 */

/** A way one table's rows name another's, as the closure follows it: a reference, or an orphan rule. */
export interface Edge {
  child: Table;
  parent: Table;
  columns: string[];
  /** A polymorphic or generic reference: its type column (a row names the parent only with its type). */
  typeColumn?: string;
}

/** Constraints of a table the catalog does not list as unique indexes: exclusion constraints' definitions. */
export type Exclusions = Map<number, string[]>;

/**
 * Tables to copy whole, with the reason: table id → why. `copied` are the tables the dry run copies.
 */
export function wholeTables(
  catalog: Catalog,
  rules: Rule[],
  declared: Rule[],
  infer: boolean,
  edges: Edge[],
  exclusions: Exclusions,
): Map<string, string> {
  const whole = new Map<string, string>();
  const add = (table: Table, why: string) => {
    if (!whole.has(table.id)) whole.set(table.id, why);
  };
  const uniques = (t: Table) => [...t.uniqueIndexes, ...t.partitionUniqueIndexes].filter((i) => i.valid);
  const excluding = (t: Table, columns: string[]) =>
    (exclusions.get(t.oid) ?? []).some((def) => columns.some((c) => mentions(def, c)));

  for (const rule of rules)
    if (!rule.table.primaryKey) add(rule.table, `${rule.table.id} has no primary key to list its groups' rows by`);

  // A re-pointed row (or one an orphan repair re-points to a merged-away parent's survivor) collides
  // under a unique key of its table with rows already in place. Where the key holds every column of
  // the reference as a plain column (and the type column of a typed one), those rows name the same
  // parent row: they are in the closure. Otherwise (an expression over the reference, a key on part of
  // a composite reference, a predicate only) they need not be.
  for (const e of edges) {
    const needs = [...e.columns, ...(e.typeColumn ? [e.typeColumn] : [])];
    for (const index of uniques(e.child)) {
      if (![...index.parts, index.predicate ?? ''].some((text) => e.columns.some((c) => mentions(text, c)))) continue;
      const plain = index.columns.filter((c): c is string => c !== null);
      // A key that holds the whole primary key, none of it re-pointed, never meets another row.
      const pk = e.child.primaryKey;
      if (pk && pk.every((c) => plain.includes(c) && !needs.includes(c))) continue;
      // An expression part over the reference could make rows naming other parents meet.
      const overReference = index.parts.some((p, i) => index.columns[i] === null && needs.some((c) => mentions(p, c)));
      if (overReference || !needs.every((c) => plain.includes(c)))
        add(e.child, `its unique index ${index.name} does not hold the whole reference to ${e.parent.id}`);
    }
    if (excluding(e.child, e.columns))
      add(e.child, `an exclusion constraint of ${e.child.id} compares the reference to ${e.parent.id}`);
  }

  for (const rule of rules) {
    const t = rule.table;
    const marker = t.softDelete?.column;
    // Setting a reference to NULL: a NULLS NOT DISTINCT key or a predicate on it meets rows elsewhere.
    if (rule.check === 'orphaned-rows' && rule.repair === 'set-null')
      for (const index of uniques(t))
        if (
          rule.columns.some((c) => mentions(index.predicate ?? '', c)) ||
          (index.nullsNotDistinct && rule.columns.some((c) => index.parts.some((p) => mentions(p, c))))
        )
          add(t, `set-null could make ${index.name} meet rows outside the orphans`);
    // Marking rows deleted or alive moves them in or out of keys over the marker.
    if (marker && marksRows(rule)) {
      for (const index of uniques(t))
        if (mentionsColumn(index, marker) && !keyCovers(rule, index))
          add(t, `marking rows changes which rows ${index.name} holds`);
      if (excluding(t, [marker])) add(t, `an exclusion constraint of ${t.id} reads ${marker}`);
    }
    // fill writes any column of a survivor: any unique key or exclusion constraint may then meet another row.
    if (rule.check === 'duplicate-rows' && rule.fill && rule.repair === 'merge')
      if (uniques(t).some((i) => !i.primary) || exclusions.get(t.oid)?.length)
        add(t, `fill changes survivors' columns that a unique key or exclusion constraint holds`);
  }

  // A rule planned after another has changed the columns its groups are keyed on: its groups are then
  // not the ones listed against the real table (the rows they meet need not be in the closure).
  for (const w of writtenColumns(catalog, rules, declared, infer))
    for (const rule of rules) {
      if (rule.check === 'orphaned-rows' || rule.table.id !== w.table.id) continue;
      // A rule's own writes on its own rows (marker, fill) change its groups' rows only.
      if (w.own && w.by === rule) continue;
      if (w.columns === 'all' || w.columns.some((c) => readsColumn(rule, c)))
        add(rule.table, `a repair changes ${w.table.id} columns that the groups of ${describeKey(rule)} depend on`);
    }
  return whole;
}

/** A rule that merges rows (re-pointing what references them): merge, purge-deleted, revive. */
function mergesRows(rule: Rule): boolean {
  if (rule.check === 'duplicate-rows') return rule.repair === 'merge';
  return rule.check === 'soft-delete-conflicts' && rule.repair !== 'report';
}

/** A rule that marks rows deleted or alive. */
function marksRows(rule: Rule): boolean {
  if (rule.check === 'soft-delete-conflicts') return rule.repair === 'revive';
  return rule.repair === 'soft-delete';
}

function mentionsColumn(index: UniqueIndex, column: string): boolean {
  return [...index.parts, index.predicate ?? ''].some((text) => mentions(text, column));
}

/**
 * A row the rule marks can only meet, under `index`, rows of its own group: the index's key holds
 * every part of the rule's key as a plain column, and the rule lists deleted and live rows alike.
 */
function keyCovers(rule: Rule, index: UniqueIndex): boolean {
  if (rule.check === 'orphaned-rows' || rule.where) return false;
  if (rule.check === 'duplicate-rows' && !rule.includeSoftDeleted) return false;
  return rule.key.every((k) => k.kind === 'column' && index.columns.includes(k.column));
}

/** The rule's groups depend on this column: a key part, its scope, or the soft-delete marker. */
function readsColumn(rule: DuplicateRule | SoftDeleteRule, column: string): boolean {
  const marker = rule.table.softDelete?.column;
  const markerRead = rule.check === 'soft-delete-conflicts' || !rule.includeSoftDeleted;
  if (markerRead && marker === column) return true;
  if (rule.where && mentions(rule.where.text, column)) return true;
  return rule.key.some((k) => (k.kind === 'column' ? k.column === column : mentions(k.expr.text, column)));
}

/** Columns of `table` that rule `by` may write (`all`: any); `own`: on the rule's own rows. */
interface Written {
  table: Table;
  by: Rule;
  columns: string[] | 'all';
  own: boolean;
}

/**
 * What each rule may write: merges re-point references down every reference (collisions and
 * composite keys included); fill writes any column of a survivor; soft-delete and revive the marker;
 * an orphan repair its reference (set to NULL, or re-pointed to a merged-away parent's survivor).
 */
function writtenColumns(catalog: Catalog, rules: Rule[], declared: Rule[], infer: boolean): Written[] {
  const out: Written[] = [];
  for (const rule of rules) {
    const marker = rule.table.softDelete?.column;
    const own = (columns: string[] | 'all') => out.push({ table: rule.table, by: rule, columns, own: true });
    if (mergesRows(rule)) {
      const seen = new Set<string>();
      const down = (table: Table) => {
        if (seen.has(table.id)) return;
        seen.add(table.id);
        for (const ref of referencesInto(catalog, table, declared, infer)) {
          out.push({ table: ref.child, by: rule, columns: ref.columns, own: false });
          down(ref.child);
        }
      };
      down(rule.table);
      if (rule.check === 'duplicate-rows' && rule.fill) own('all');
    }
    if (marker && marksRows(rule)) own([marker]);
    if (rule.check === 'orphaned-rows') own(rule.columns);
  }
  return out;
}

function describeKey(rule: DuplicateRule | SoftDeleteRule): string {
  return `${rule.check} ${rule.table.id}`;
}
