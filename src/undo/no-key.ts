import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { tableRef, type Sql } from '../sql/build.js';
import { AFTER, AFTER_UNKNOWN, BACKUP_SCHEMA, XMIN } from '../journal/backup-tables.js';
import { inSlice, rowImage, type Conflicts, type Slice, type UndoTarget } from './conflicts.js';
import { parentsMissing } from './parents.js';
import { revertInRounds } from './rounds.js';

/**
 * Undo of updated rows of a table without a primary key, for runs that recorded after-images
 * (repair/backup.ts, recordNoKeyAfterImages). A live row is taken back only while md5(row::text) equals
 * a backup row's after-image and, where the run recorded it (XMIN), while it is still the row version
 * the update left: a row of the same content the run never touched has an older xmin, one the
 * application wrote since a newer one. Each live row answers one backup row (rows equal in every
 * column and version are interchangeable). A row the run updated twice (two rules, or two columns
 * re-pointed to one parent) is taken back later update first: a backup row is held back while a
 * later one of the run starts from exactly what it left (md5 of that one's before-image equals its
 * after-image), and handled in a later round, once the later update is taken back; the row then
 * has the version this undo wrote, so a backup row no row of its own version answers may take a
 * row of the same content that this undo wrote (its transactions: the current one and those that
 * recorded its undone batches). A backup row no live row answers is a conflict: the application
 * changed or deleted the row since; the row stays as it is.
 */

const work = sql.id('pg_temp', 'rowdoctor_undo_nokey');
const pool = sql.id('pg_temp', 'rowdoctor_undo_nokey_pool');

/** md5 of the backup row's image of the table (alias b), as md5((x.*)::text) prints a live row. */
function beforeImage(t: UndoTarget): Sql {
  return sql`md5(row(${sql.join(t.columns.map((c) => sql.id('b', c.name)))})::text)`;
}

/** The version class of a row that undo wrote itself (OWN), as versionOf gives it. */
const OWN = 'own';

/**
 * The work table: the slice's backup rows of updates, with their after- and before-image and the
 * version the update left (as text; '' where the run recorded none: then content alone counts).
 */
async function fill(tx: Tx, t: UndoTarget, slice: Slice): Promise<void> {
  const version = t.rowVersions ? sql`b.${sql.id(XMIN)}::text` : sql`''`;
  await sql`drop table if exists ${work}`.execute(tx);
  await sql`
    create temp table ${work} on commit drop as
    select b._rd_seq as seq, b.${sql.id(AFTER)} as h, ${beforeImage(t)} as bh, ${version} as v,
           false as done, false as matched, 0 as round, ''::text as via
      from ${t.source} b
     where ${inSlice(t, slice, 'b')} and b._rd_op = 'update'`.execute(tx);
  await sql`analyze ${work}`.execute(tx);
}

/**
 * The transactions of this undo (of `runId`) that may have written rows: those that recorded the
 * batches they took back, and with `current` this one (undo takes no savepoints: its rows carry its
 * top-level xid). As xid text. Rows it restored (deleted by the run) carry them too: one whose
 * content equals an after-image of the run may answer that backup row, as content alone did before.
 */
async function ownVersions(tx: Tx, runId: string, current: boolean): Promise<string[]> {
  const recorded = await sql<{ ok: boolean }>`
    select to_regclass(${`${BACKUP_SCHEMA}.undone`}) is not null as ok`.execute(tx);
  const out: string[] = [];
  if (recorded.rows[0]?.ok) {
    const { rows } = await sql<{ v: string }>`
      select distinct xmin::text as v from ${sql.id(BACKUP_SCHEMA, 'undone')} where undo_of = ${runId}`.execute(tx);
    out.push(...rows.map((r) => r.v));
  }
  if (current) {
    const { rows } = await sql<{ v: string }>`select (txid_current() % 4294967296)::text as v`.execute(tx);
    out.push(rows[0]!.v);
  }
  return out;
}

/** The version class of live row `x`: OWN for a row this undo wrote, else its xmin ('' without versions). */
function versionOf(t: UndoTarget, own: string[]): Sql {
  if (!t.rowVersions) return sql`''`;
  return sql`case when x.xmin = any(${own}::xid[]) then ${OWN} else x.xmin::text end`;
}

/** The next round: backup rows not done whose row no later backup row of the run started from. */
const round = sql`
  select w.seq, w.h, w.v, w.bh, row_number() over (partition by w.h, w.v order by w.seq desc) as rn
    from ${work} w
   where not w.done
     and not exists (select 1 from ${work} l where not l.done and l.seq > w.seq and l.bh = w.h)`;

/**
 * The live rows (by partition and ctid) whose md5 and version a backup row of the round holds, and
 * those of its md5 this undo wrote, numbered per md5 and version.
 */
function liveRows(t: UndoTarget, own: string[]): Sql {
  return sql`
    select toid, tid, h, v, row_number() over (partition by h, v order by toid, tid) as rn
      from (select x.tableoid as toid, x.ctid as tid, ${rowImage(t, 'x')} as h, ${versionOf(t, own)} as v
              from ${tableRef(t.table)} x) l
     where (h, v) in (select h, v from r) or (v = ${OWN} and h in (select h from r))`;
}

/**
 * Take back, round by round, every updated row that still holds what the repair left: its whole
 * row (every column: a BEFORE trigger's stamp too) as it was before that update. Returns how many
 * backup rows were taken back; the rest of the slice's update backups are conflicts.
 */
export async function revertNoKeyRows(tx: Tx, t: UndoTarget, slice: Slice): Promise<number> {
  const own = t.rowVersions ? await ownVersions(tx, slice.runId, true) : [];
  return revertInRounds(
    tx,
    t,
    work,
    () => fill(tx, t, slice),
    // A backup row takes a row of its own version first; those none answers, rows this undo wrote.
    (assignments) => sql`
      with r as (${round}),
      live as (${liveRows(t, own)}),
      exact as (select r.seq, live.toid, live.tid from r join live on live.h = r.h and live.v = r.v and live.rn = r.rn),
      rest as (
        select r.seq, r.h, row_number() over (partition by r.h order by r.seq desc) as rn
          from r
         where r.seq not in (select seq from exact)),
      pairs as (
        select seq, toid, tid from exact
        union all
        select rest.seq, live.toid, live.tid
          from rest
          join live on live.h = rest.h and live.v = ${OWN} and live.rn = rest.rn),
      back as (
        update ${tableRef(t.table)} x
           set ${assignments}
          from pairs p
          join ${t.source} b on b._rd_seq = p.seq and b._rd_run = ${slice.runId}
         where x.tableoid = p.toid and x.ctid = p.tid  -- a ctid is a row's only within its partition
           and not (${parentsMissing(t, slice.runId, 'b', 'apply')})
        returning p.seq),
      marked as (
        update ${work} w
           set done = true, matched = w.seq in (select seq from back)
         where w.seq in (select seq from r)
        returning 1)
      select (select count(*) from marked) as round, (select count(*) from back) as reverted`,
  );
}

/**
 * The dry run of revertNoKeyRows: the same rounds over a count of live rows per md5 and version (a
 * taken-back row then counts under its before-image, as one this undo wrote), changing nothing.
 * Returns the backup rows no live row would answer, with samples (the row as it was before the run).
 */
export async function noKeyConflicts(db: Db, t: UndoTarget, slice: Slice, sample: number): Promise<Conflicts> {
  if (t.table.primaryKey || !t.afterImages) return { count: 0, samples: [] };
  return db.transaction().execute(async (tx) => {
    const own = t.rowVersions ? await ownVersions(tx, slice.runId, false) : [];
    await fill(tx, t, slice);
    await sql`drop table if exists ${pool}`.execute(tx);
    await sql`
      create temp table ${pool} on commit drop as
      select h, v, count(*) as n
        from (select ${rowImage(t, 'x')} as h, ${versionOf(t, own)} as v from ${tableRef(t.table)} x) l
       where h in (select h from ${work})
       group by h, v`.execute(tx);
    await sql`alter table ${pool} add primary key (h, v)`.execute(tx);
    const held = (h: Sql, v: Sql | string) =>
      sql`coalesce((select p.n from ${pool} p where p.h = ${h} and p.v = ${v}), 0)`;
    // A taken-back row is one this undo wrote (without versions: any row of its content).
    const written = t.rowVersions ? OWN : '';
    for (let k = 1; ; k++) {
      const { rows } = await sql<{ n: string }>`
        with r as (${round}),
        e as (select r.seq, r.h, r.v, r.rn <= ${held(sql`r.h`, sql`r.v`)} as hit from r),
        o as (
          select e.seq, row_number() over (partition by e.h order by e.seq desc) <= ${held(sql`e.h`, OWN)} as hit
            from e
           where not e.hit),
        marked as (
          update ${work} w
             set done = true, round = ${k}, matched = e.hit or coalesce(o.hit, false),
                 via = case when e.hit then e.v else ${OWN} end
            from e
            left join o on o.seq = e.seq
           where w.seq = e.seq
          returning 1)
        select count(*) as n from marked`.execute(tx);
      if (Number(rows[0]?.n ?? 0) === 0) break;
      // What the round took back moves from its after-image (and the version it took) to its before-image.
      await sql`
        insert into ${pool} (h, v, n)
        select h, v, sum(d)
          from (select h, via as v, -1 as d from ${work} where matched and round = ${k}
                union all
                select bh, ${written}, 1 from ${work} where matched and round = ${k}) c
         group by h, v
        on conflict (h, v) do update set n = ${pool}.n + excluded.n`.execute(tx);
    }
    // A row without an after-image (AFTER_UNKNOWN) is not the application's doing: exact.ts names it.
    // A row that would name a parent not there as it needs it stays too (parents.ts).
    const blocked = parentsMissing(t, slice.runId, 'b', 'plan');
    const { rows } = await sql<{ key: unknown[] }>`
      select json_build_array(${sql.join(t.table.columns.map((c) => sql.id('b', c.name)))}) as key
        from ${work} w
        join ${t.source} b on b._rd_seq = w.seq and b._rd_run = ${slice.runId}
       where (not w.matched or ${blocked}) and w.h <> ${AFTER_UNKNOWN}
       order by w.seq
       limit ${sample}`.execute(tx);
    const count = await sql<{ n: string }>`
      select count(*) as n
        from ${work} w
        join ${t.source} b on b._rd_seq = w.seq and b._rd_run = ${slice.runId}
       where (not w.matched or ${blocked}) and w.h <> ${AFTER_UNKNOWN}`.execute(tx);
    return {
      count: Number(count.rows[0]?.n ?? 0),
      samples: rows.map((r) => ({ table: t.table.id, key: r.key, reason: 'changed or deleted since the repair' })),
    };
  });
}
