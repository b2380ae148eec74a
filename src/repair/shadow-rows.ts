import { sql } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import { repairerFor } from '../checks/index.js';
import { parentMatches } from '../checks/orphaned-rows.js';
import type { Tx } from '../db.js';
import { BACKUP_SCHEMA } from '../journal/backup-tables.js';
import type { Rule } from '../rules/types.js';
import { and, col, tableRef, type Sql } from '../sql/build.js';
import { holdsType } from '../sql/typed.js';
import { pkMatches } from './context.js';
import { MEMBERS } from './groups.js';
import { pointsAt, referencesInto } from './references.js';
import { wholeTables, type Edge, type Exclusions } from './shadow-bounds.js';

/**
 * Which rows a dry run copies (repair/shadow.ts): the rows the repair reads or writes, found against
 * the real tables before any copy exists —
 * - seeds: every row of every group each rule lists (its own listing, `Repairer.groups`, run on the
 *   real table: the same key, scope and soft-delete handling), and for an orphan rule the parent
 *   rows that merged-away parents live on as (an orphan may be re-pointed there);
 * - down: every row that names a copied row, through every reference a merge or a proof follows
 *   (foreign keys, declared, inferred, polymorphic and generic references, orphan rules), at every
 *   depth: re-pointed children, the survivor's children they may collide with, their own children;
 * - up: every row a copied row names in a copied table, and so on up, so that an orphan check on
 *   the copies finds exactly the real orphans and a re-pointed row finds its new parent.
 * A table whose rows cannot be bounded so (repair/shadow-bounds.ts) is copied whole, with the reason.
 */
export interface RowChoice {
  /** Table oid → the temp table (o = tableoid, c = ctid) of the rows to copy. Absent: copy whole. */
  picked: Map<number, string>;
  /** Table id → why it is copied whole. */
  whole: Map<string, string>;
}

/** A closure that has not closed after this many rounds is given up: every table is copied whole. */
const MAX_ROUNDS = 200;

export async function chooseRows(
  tx: Tx,
  catalog: Catalog,
  tables: Table[],
  rules: Rule[],
  declared: Rule[],
  infer: boolean,
): Promise<RowChoice> {
  const copied = new Map(tables.map((t) => [t.id, t]));
  const links = closureLinks(catalog, tables, rules, declared, infer);
  const whole = wholeTables(catalog, rules, declared, infer, links, await exclusionConstraints(tx, tables));
  const picked = new Map<number, string>();
  const stage = (t: Table) => sql.id('pg_temp', picked.get(t.oid)!);
  for (const t of tables) {
    if (whole.has(t.id)) continue;
    picked.set(t.oid, `rd_pick_${t.oid}`);
    await sql`drop table if exists ${stage(t)}`.execute(tx);
    // A row by partition and ctid (o, c), and the round of the closure that added it (r).
    const columns = sql`o oid not null, c tid not null, r int not null, primary key (o, c)`;
    await sql`create temp table ${stage(t)} (${columns})`.execute(tx);
  }

  // Seeds: each rule's own listing of its groups' rows, on the real table.
  for (const rule of rules) {
    if (whole.has(rule.table.id) || !picked.has(rule.table.oid)) continue;
    const listed = await savepoint(tx, () => repairerFor(rule).groups(tx, rule));
    if (!listed) {
      // The rule cannot list its groups (the repair reports why): copied whole, as before.
      whole.set(rule.table.id, 'its rule could not list its groups');
      picked.delete(rule.table.oid);
      continue;
    }
    await sql`
      insert into ${stage(rule.table)} (o, c, r)
      select t.tableoid, t.ctid, 0
        from ${MEMBERS} m
        join ${tableRef(rule.table)} t on ${pkMatches(rule.table, 't', 'm', 'p')}
          on conflict do nothing`.execute(tx);
  }
  for (const rule of rules)
    if (rule.check === 'orphaned-rows' && picked.has(rule.parent.oid) && !whole.has(rule.parent.id))
      await seedSurvivors(tx, rule.parent, rule.parentColumns, stage(rule.parent));

  const live = links.filter((l) => copied.has(l.child.id) && copied.has(l.parent.id));
  // A table's rows as a source of a round: those the last round added (`which`), or, for a table
  // copied whole, all of them (in the first round of each phase only).
  const rowsOf = (t: Table, alias: string, which: Sql) => {
    const a = sql.id(alias);
    return whole.has(t.id)
      ? sql`(select ${a}.* from ${tableRef(t)} ${a})`
      : sql`(select ${a}.*
               from ${stage(t)} s
               join ${tableRef(t)} ${a} on ${col(alias, 'tableoid')} = s.o and ${col(alias, 'ctid')} = s.c
              where ${which})`;
  };
  let round = 0;
  const grow = async (down: boolean, from: (r: number) => Sql, wholeRound: (r: number) => boolean) => {
    for (;;) {
      if (++round > MAX_ROUNDS) return false;
      let added = 0n;
      for (const l of live) {
        const [src, dst] = down ? [l.parent, l.child] : [l.child, l.parent];
        if (whole.has(dst.id) || !picked.has(dst.oid)) continue;
        if (whole.has(src.id) && !wholeRound(round)) continue;
        const [srcAlias, dstAlias] = down ? ['p', 'x'] : ['x', 'p'];
        const res = await sql`
          insert into ${stage(dst)} (o, c, r)
          select ${col(dstAlias, 'tableoid')}, ${col(dstAlias, 'ctid')}, ${round}
            from ${rowsOf(src, srcAlias, from(round))} ${sql.id(srcAlias)}
            join ${tableRef(dst)} ${sql.id(dstAlias)} on ${l.match}
              on conflict do nothing`.execute(tx);
        added += res.numAffectedRows ?? 0n;
      }
      if (added === 0n) return true;
    }
  };
  // Down from the seeds, then up from everything the down closure holds (never down again from a
  // parent only read: its other children are not the repair's business).
  const downStart = round + 1;
  const closed =
    (await grow(
      true,
      (r) => sql`s.r = ${r - 1}`,
      (r) => r === downStart,
    )) &&
    (await (async () => {
      const upStart = round + 1;
      return grow(
        false,
        (r) => (r === upStart ? sql`true` : sql`s.r = ${r - 1}`),
        (r) => r === upStart,
      );
    })());
  if (!closed) {
    for (const t of tables) whole.set(t.id, `the rows it reaches did not close in ${MAX_ROUNDS} rounds`);
    picked.clear();
  }
  return { picked, whole };
}

/** A link of the closure, with how its child row `x` names its parent row `p`. */
interface Link extends Edge {
  match: Sql;
}

/** Every way a copied table's rows name another's: the references a merge follows, and the orphan rules. */
function closureLinks(catalog: Catalog, tables: Table[], rules: Rule[], declared: Rule[], infer: boolean): Link[] {
  const links: Link[] = [];
  for (const parent of tables)
    for (const ref of referencesInto(catalog, parent, declared, infer))
      links.push({
        child: ref.child,
        parent,
        columns: ref.columns,
        ...(ref.typed ? { typeColumn: ref.typed.typeColumn } : {}),
        match: pointsAt(ref, 'x', 'p'),
      });
  for (const rule of rules)
    if (rule.check === 'orphaned-rows')
      links.push({
        child: rule.table,
        parent: rule.parent,
        columns: rule.columns,
        ...(rule.typed ? { typeColumn: rule.typed.typeColumn } : {}),
        // As the orphan check compares them (its operators and collations), the type test included.
        match: and([
          ...(rule.typed ? [holdsType(rule.table, rule.typed.typeColumn, rule.typed.type, 'x')] : []),
          parentMatches(rule, 'p', 'x'),
        ]),
      });
  return links;
}

/**
 * The parent rows that merged-away rows live on as (rowdoctor_backup.merges, every run): an orphan
 * naming a loser is re-pointed to its survivor, which the copy must hold (and its children, which
 * the re-pointed orphan may collide with).
 */
async function seedSurvivors(tx: Tx, parent: Table, columns: string[], stage: Sql): Promise<void> {
  const merges = `${BACKUP_SCHEMA}.merges`;
  const { rows } = await sql<{ ok: boolean }>`select to_regclass(${merges}) is not null as ok`.execute(tx);
  if (!rows[0]?.ok) return;
  const type = (c: string) => sql.raw(parent.columns.find((x) => x.name === c)!.type);
  await sql`
    insert into ${stage} (o, c, r)
    select p.tableoid, p.ctid, 0
      from ${sql.id(BACKUP_SCHEMA, 'merges')} m
      join ${tableRef(parent)} p on ${and(columns.map((c) => sql`${col('p', c)} = (m.survivor ->> ${c})::${type(c)}`))}
     where m.table_schema = ${parent.schema} and m.table_name = ${parent.name}
        on conflict do nothing`.execute(tx);
}

/** Exclusion constraints of the copied tables (and of their partitions, under the root), as definitions. */
async function exclusionConstraints(tx: Tx, tables: Table[]): Promise<Exclusions> {
  const oids = tables.map((t) => t.oid);
  const { rows } = await sql<{ rel: number; def: string }>`
    select r.relid::int as rel, pg_get_constraintdef(c.oid) as def
      from pg_catalog.pg_constraint c
     cross join lateral (select a.relid::oid as relid
                           from pg_catalog.pg_partition_ancestors(c.conrelid) a(relid)
                          where a.relid = any(${oids}::oid[])
                          union
                         select c.conrelid where c.conrelid = any(${oids}::oid[])) r
     where c.contype = 'x'`.execute(tx);
  const out: Exclusions = new Map();
  for (const r of rows) out.set(r.rel, [...(out.get(r.rel) ?? []), r.def]);
  return out;
}

/** Run `fn` in a savepoint; false (rolled back) when it throws. */
async function savepoint(tx: Tx, fn: () => Promise<unknown>): Promise<boolean> {
  await sql`savepoint rd_pick`.execute(tx);
  try {
    await fn();
    await sql`release savepoint rd_pick`.execute(tx);
    return true;
  } catch {
    await sql`rollback to savepoint rd_pick`.execute(tx);
    await sql`release savepoint rd_pick`.execute(tx);
    return false;
  }
}
