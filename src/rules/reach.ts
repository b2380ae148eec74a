import type { Catalog } from '../catalog/types.js';
import { referenceCandidates } from './discover.js';
import { typedPairs } from './typed-names.js';
import type { Rule } from './types.js';

/**
 * The tables a repair of `rules` may change, at most: the rules' own tables, then, at every depth,
 * every table that references one of them or might — through a foreign key, a declared reference, a
 * column whose name makes it a candidate reference, or a type/id pair (whatever types it holds).
 * Only references into these tables can decide what such a repair does, so a repair weighs only those
 * against the data: a candidate elsewhere (an `X_id` of a 100M-row table into a table the repair never
 * touches) costs a pass over its table and changes nothing.
 */
export function tablesInReach(catalog: Catalog, rules: Rule[]): Set<string> {
  const root = (id: string) => catalog.partitionRoot.get(id) ?? id;
  const children = new Map<string, Set<string>>();
  const link = (parent: string, child: string) => {
    let set = children.get(root(parent));
    if (!set) children.set(root(parent), (set = new Set()));
    set.add(root(child));
  };
  for (const fk of catalog.foreignKeys) link(fk.references, fk.table);
  for (const rule of rules) if (rule.check === 'orphaned-rows') link(rule.parent.id, rule.table.id);
  const typed: string[] = [];
  for (const table of catalog.tables) {
    for (const c of referenceCandidates(catalog, table)) link(c.parent.id, table.id);
    if (typedPairs(catalog, table).length) typed.push(table.id);
  }
  const reach = new Set<string>();
  const visit = (id: string) => {
    if (reach.has(id)) return;
    reach.add(id);
    for (const child of [...(children.get(id) ?? []), ...typed]) visit(child);
  };
  for (const rule of rules) visit(root(rule.table.id));
  return reach;
}
