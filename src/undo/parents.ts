import { sql } from 'kysely';
import type { Catalog, Column, Table } from '../catalog/types.js';
import { tableRef, type Sql } from '../sql/build.js';
import type { RecordedReference } from '../repair/references.js';
import type { TypedKey } from '../rules/types.js';
import { holdsType } from '../sql/typed.js';

/**
 * A row undo puts back names other rows through its references. It may come back only where each
 * row it names will be there as it needs it: a row the run deleted must be back exactly as it was
 * (not a row the application wrote since under its key), and a foreign key's parent must exist —
 * undo restores with session_replication_role = replica, where the server checks no foreign key.
 * Anything else is a conflict: left as it is, counted, exit 1.
 */

/** A reference from an undo target's table into `table`. */
export interface ParentLink {
  columns: string[];
  refColumns: string[];
  table: Table;
  /** The parent's undo target when the run deleted rows of it. */
  target?: LinkedTarget;
  /** The parent's backup (as undo reads it) when the run changed primary keys of it (undo takes those back first). */
  rekeyed?: Sql;
  /** A valid foreign key: the server would refuse a row naming no parent. */
  enforced: boolean;
  /** A polymorphic or generic reference: only rows of this type name `table`. */
  typed?: TypedKey;
}

/** What of an undo target this module reads. */
export interface LinkedTarget {
  table: Table;
  backup: string;
  /** How to read the backup: its columns of application types cast back (journal/typed-backup.ts). */
  source: Sql;
  /** The table's columns its backup holds, in table order. */
  columns: Column[];
  parents: ParentLink[];
  /** Deleted rows of the run left to restore. */
  restore: number;
  /** Some update of the run changed a row's primary key. */
  rekeyed: boolean;
}

/**
 * Each target's references: the valid foreign keys of its table (partitions: their roots), and the
 * references the run recorded that it re-pointed through (declared and inferred ones too; runs of
 * earlier versions recorded none). A reference of a table into itself is left out: rows restored
 * by one statement do not see each other.
 */
export function linkParents(catalog: Catalog, targets: LinkedTarget[], recorded: RecordedReference[] = []): void {
  const root = (id: string) => catalog.partitionRoot.get(id) ?? id;
  const byId = new Map(catalog.tables.map((t) => [t.id, t]));
  const refs = [
    ...catalog.foreignKeys.map((fk) => ({ ...fk, enforced: fk.valid })),
    ...recorded.map((r) => ({ ...r, enforced: false })),
  ];
  for (const target of targets) {
    const seen = new Set<string>();
    for (const ref of refs) {
      const parentId = root(ref.references);
      if (root(ref.table) !== target.table.id || parentId === target.table.id) continue;
      const table = byId.get(parentId);
      const typed = 'typed' in ref ? ref.typed : undefined;
      const type = typed ? `${typed.typeColumn}=${typed.type}|` : '';
      const key = `${type}${ref.columns.join(',')}>${parentId}(${ref.refColumns.join(',')})`;
      if (!table || seen.has(key)) continue;
      seen.add(key);
      const parent = targets.find((p) => p.table.id === parentId && p.restore > 0);
      const rekeyedParent = targets.find((p) => p.table.id === parentId && p.rekeyed);
      target.parents.push({
        columns: ref.columns,
        refColumns: ref.refColumns,
        table,
        enforced: ref.enforced,
        ...(parent ? { target: parent } : {}),
        ...(rekeyedParent ? { rekeyed: rekeyedParent.source } : {}),
        ...(typed ? { typed } : {}),
      });
    }
  }
}

/** A row's text over the columns the backup holds (alias: a live row or a backup row). */
export function rowText(t: Pick<LinkedTarget, 'columns'>, alias: string): Sql {
  return sql`row(${sql.join(t.columns.map((c) => sql.id(alias, c.name)))})::text`;
}

/**
 * True where backup row `b` of `t` must not come back: some row it names will not be there as it
 * needs it. `apply`: inside the undo batch, after the batch restored its parents (they are live
 * now). `plan`: before anything is restored, foreseeing which parents undo will restore (to a
 * depth of a few references).
 */
export function parentsMissing(t: LinkedTarget, runId: string, b: string, phase: 'plan' | 'apply', depth = 0): Sql {
  const blocked = t.parents.map((link) => {
    const named = sql.join(link.columns.map((c) => sql.id(b, c)));
    // A text object_id names its parent by the key's text form.
    const asText = link.typed?.asText ? sql`::text` : sql``;
    const refs = (alias: string) => sql.join(link.refColumns.map((c) => sql`${sql.id(alias, c)}${asText}`));
    const nonNull = sql.join(
      [
        ...(link.typed ? [holdsType(t.table, link.typed.typeColumn, link.typed.type, b)] : []),
        ...link.columns.map((c) => sql`${sql.id(b, c)} is not null`),
      ],
      sql` and `,
    );
    // Aliases of their own at each depth: a nested check names the outer backup row.
    const [pa, da, ea] = [`p${depth}`, `d${depth}`, `e${depth}`];
    const live = (where: Sql) => sql`exists (select 1 from ${tableRef(link.table)} ${sql.id(pa)} where ${where})`;
    const parts: Sql[] = [];
    const deleted = link.target;
    // The run deleted the row it names: it must be back exactly as it was.
    const gone = (d: string) => {
      if (!deleted) return sql`false`;
      // Back as it was when the run deleted it, or as it was before the run's first update of it
      // (undo reverts a restored row that the run had re-pointed before deleting it).
      const ua = `u${depth}`;
      const reverted = sql`exists (
        select 1 from ${deleted.source} ${sql.id(ua)}
         where ${sql.id(ua, '_rd_run')} = ${runId} and ${sql.id(ua, '_rd_op')} = 'update'
           and (${refs(ua)}) = (${refs(d)}) and ${rowText(deleted, pa)} = ${rowText(deleted, ua)})`;
      const back = live(
        sql`(${refs(pa)}) = (${refs(d)}) and (${rowText(deleted, pa)} = ${rowText(deleted, d)} or ${reverted})`,
      );
      if (phase === 'apply') return sql`not ${back}`;
      // Before the undo: it comes back unless its key is taken or what it names in turn is missing.
      const taken = live(sql`(${refs(pa)}) = (${refs(d)})`);
      const deeper = depth < 2 ? parentsMissing(deleted, runId, d, 'plan', depth + 1) : sql`false`;
      return sql`not ${back} and (${taken} or ${deeper})`;
    };
    const runDeleted = (d: string, condition: Sql) =>
      deleted
        ? sql`exists (
            select 1 from ${deleted.source} ${sql.id(d)}
             where ${sql.id(d, '_rd_run')} = ${runId} and ${sql.id(d, '_rd_op')} = 'delete'
               and (${refs(d)}) = (${named}) and ${condition})`
        : sql`false`;
    if (deleted) parts.push(runDeleted(da, gone(da)));
    if (link.enforced) {
      // A foreign key's parent must exist (before the undo: or be one the undo restores).
      const restored = phase === 'plan' && deleted ? sql` and not ${runDeleted(ea, sql`not (${gone(ea)})`)}` : sql``;
      // A parent whose key the run changed goes back to it before this row (undo/rekeyed.ts).
      const rekeyedBack =
        phase === 'plan' && link.rekeyed
          ? sql` and not exists (
              select 1 from ${link.rekeyed} ${sql.id(`k${depth}`)}
               where ${sql.id(`k${depth}`, '_rd_run')} = ${runId} and ${sql.id(`k${depth}`, '_rd_op')} = 'update'
                 and (${refs(`k${depth}`)}) = (${named}))`
          : sql``;
      parts.push(sql`not ${live(sql`(${refs(pa)}) = (${named})`)}${restored}${rekeyedBack}`);
    }
    if (!parts.length) return null;
    return sql`(${nonNull} and (${sql.join(parts, sql` or `)}))`;
  });
  const some = blocked.filter((x): x is Sql => x !== null);
  return some.length ? sql.join(some, sql` or `) : sql`false`;
}
