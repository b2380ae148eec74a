import { sql } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import { AFTER, KEY, keyText } from '../journal/backup-tables.js';
import { tableRef, type Sql } from '../sql/build.js';

/**
 * A row undo reverts may change the key other rows point at (the run re-pointed a parent's key and
 * ON UPDATE CASCADE moved its children along). Undo restores with the server's key checks quiet, so
 * it checks itself: the row goes back only where every row pointing at it now goes back with it —
 * a child the application changed since stays as it is, and so does its parent (both conflicts).
 */

/** A valid foreign key into an undo target's table, and the child's backup when the run changed it. */
export interface ChildLink {
  table: Table;
  columns: string[];
  refColumns: string[];
  /** The child's backup, as undo reads it (journal/typed-backup.ts). */
  backup?: Sql;
}

/** What of an undo target this module reads and sets. */
export interface ChildrenTarget {
  table: Table;
  source: Sql;
  children: ChildLink[];
}

/** Each target's children: the valid foreign keys into its table (partitions: through their roots). */
export function linkChildren(catalog: Catalog, targets: ChildrenTarget[]): void {
  const root = (id: string) => catalog.partitionRoot.get(id) ?? id;
  const byId = new Map(catalog.tables.map((t) => [t.id, t]));
  for (const target of targets) {
    for (const fk of catalog.foreignKeys) {
      if (!fk.valid || fk.onPartition || root(fk.references) !== target.table.id) continue;
      const table = byId.get(root(fk.table));
      if (!table) continue;
      const backup = targets.find((t) => t.table.id === table.id)?.source;
      target.children.push({ table, columns: fk.columns, refColumns: fk.refColumns, ...(backup ? { backup } : {}) });
    }
  }
}

/**
 * True where reverting live row `x` of `t` to backup image `b` would leave a row pointing at the
 * values `x` holds now, which the revert takes away: a child row that does not go back itself
 * (it holds no after-image of the run: changed since, or never changed by it).
 */
export function childrenLeftBehind(t: ChildrenTarget, x: string, b: string, runId: string): Sql {
  const parts = t.children.map((link, k) => {
    const c = `c${k}`;
    const u = `cu${k}`;
    const ours = sql.join(link.refColumns.map((r) => sql.id(x, r)));
    const before = sql.join(link.refColumns.map((r) => sql.id(b, r)));
    const names = sql.join(
      link.columns.map((col, i) => sql`${sql.id(c, col)} = ${sql.id(x, link.refColumns[i]!)}`),
      sql` and `,
    );
    const pk = link.table.primaryKey;
    // A backup row of the child's whose after-image the child still holds, found by the key the
    // run left it with: the one it had, or the one the run gave it (a child keyed by the reference,
    // re-pointed by the merge itself, is re-keyed too). Two look-ups, each by an index.
    const holds = (where: Sql) => sql`exists (
      select 1 from ${link.backup!} ${sql.id(u)}
       where ${sql.id(u, '_rd_run')} = ${runId} and ${sql.id(u, '_rd_op')} = 'update' and ${where}
         and ${sql.id(u, AFTER)} = md5((${sql.id(c)}.*)::text))`;
    const goesBack =
      link.backup && pk
        ? sql`(${holds(
            sql.join(
              pk.map((p) => sql`${sql.id(u, p)} = ${sql.id(c, p)}`),
              sql` and `,
            ),
          )} or ${holds(sql`${sql.id(u, KEY)} = ${keyText(link.table, c)}`)})`
        : sql`false`;
    return sql`((${ours}) is distinct from (${before})
      and exists (select 1 from ${tableRef(link.table)} ${sql.id(c)} where ${names} and not ${goesBack}))`;
  });
  return parts.length ? sql`(${sql.join(parts, sql` or `)})` : sql`false`;
}
