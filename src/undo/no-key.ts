import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { tableRef, type Sql } from '../sql/build.js';
import { AFTER, AFTER_UNKNOWN } from '../journal/backup-tables.js';
import { inSlice, rowImage, type Conflicts, type Slice, type UndoTarget } from './conflicts.js';
import { parentsMissing } from './parents.js';
import { revertInRounds } from './rounds.js';

/**
 * Undo of updated rows of a table without a primary key, for runs that recorded after-images
 * (repair/backup.ts, recordNoKeyAfterImages). A live row is taken back only while md5(row::text) equals
 * a backup row's after-image; each live row answers one backup row (rows equal in every column are
 * interchangeable). A row the run updated twice (two rules, or two columns re-pointed to one
 * parent) is taken back later update first: a backup row is held back while a later one of the
 * run starts from exactly what it left (md5 of that one's before-image equals its after-image),
 * and handled in a later round, once the later update is taken back. A backup row no live row
 * answers is a conflict: the application changed or deleted the row since; the row stays as it is.
 */

const work = sql.id('pg_temp', 'rowdoctor_undo_nokey');
const pool = sql.id('pg_temp', 'rowdoctor_undo_nokey_pool');

/** md5 of the backup row's image of the table (alias b), as md5((x.*)::text) prints a live row. */
function beforeImage(t: UndoTarget): Sql {
  return sql`md5(row(${sql.join(t.columns.map((c) => sql.id('b', c.name)))})::text)`;
}

/** The work table: the slice's backup rows of updates, with their after- and before-image. */
async function fill(tx: Tx, t: UndoTarget, slice: Slice): Promise<void> {
  await sql`drop table if exists ${work}`.execute(tx);
  await sql`
    create temp table ${work} on commit drop as
    select b._rd_seq as seq, b.${sql.id(AFTER)} as h, ${beforeImage(t)} as bh, false as done, false as matched,
           0 as round
      from ${t.source} b
     where ${inSlice(t, slice, 'b')} and b._rd_op = 'update'`.execute(tx);
  await sql`analyze ${work}`.execute(tx);
}

/** The next round: backup rows not done whose row no later backup row of the run started from. */
const round = sql`
  select w.seq, w.h, w.bh, row_number() over (partition by w.h order by w.seq desc) as rn
    from ${work} w
   where not w.done
     and not exists (select 1 from ${work} l where not l.done and l.seq > w.seq and l.bh = w.h)`;

/** The live rows (by partition and ctid) whose md5 a backup row of the round holds, numbered per md5. */
function liveRows(t: UndoTarget): Sql {
  return sql`
    select toid, tid, h, row_number() over (partition by h order by toid, tid) as rn
      from (select x.tableoid as toid, x.ctid as tid, ${rowImage(t, 'x')} as h from ${tableRef(t.table)} x) v
     where h in (select h from r)`;
}

/**
 * Take back, round by round, every updated row that still holds what the repair left: its whole
 * row (every column: a BEFORE trigger's stamp too) as it was before that update. Returns how many
 * backup rows were taken back; the rest of the slice's update backups are conflicts.
 */
export async function revertNoKeyRows(tx: Tx, t: UndoTarget, slice: Slice): Promise<number> {
  return revertInRounds(
    tx,
    t,
    work,
    () => fill(tx, t, slice),
    (assignments) => sql`
      with r as (${round}),
      live as (${liveRows(t)}),
      pairs as (select r.seq, live.toid, live.tid from r join live on live.h = r.h and live.rn = r.rn),
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
 * The dry run of revertNoKeyRows: the same rounds over a count of live rows per md5 (a taken-back
 * row then counts under its before-image), changing nothing. Returns the backup rows no live row
 * would answer, with samples (the row as it was before the run).
 */
export async function noKeyConflicts(db: Db, t: UndoTarget, slice: Slice, sample: number): Promise<Conflicts> {
  if (t.table.primaryKey || !t.afterImages) return { count: 0, samples: [] };
  return db.transaction().execute(async (tx) => {
    await fill(tx, t, slice);
    await sql`drop table if exists ${pool}`.execute(tx);
    await sql`
      create temp table ${pool} on commit drop as
      select h, count(*) as n
        from (select ${rowImage(t, 'x')} as h from ${tableRef(t.table)} x) v
       where h in (select h from ${work})
       group by h`.execute(tx);
    await sql`alter table ${pool} add primary key (h)`.execute(tx);
    for (let k = 1; ; k++) {
      const { rows } = await sql<{ n: string }>`
        with r as (${round}),
        marked as (
          update ${work} w
             set done = true, round = ${k}, matched = r.rn <= coalesce((select p.n from ${pool} p where p.h = r.h), 0)
            from r
           where w.seq = r.seq
          returning 1)
        select count(*) as n from marked`.execute(tx);
      if (Number(rows[0]?.n ?? 0) === 0) break;
      // What the round took back moves from its after-image to its before-image.
      await sql`
        insert into ${pool} (h, n)
        select h, sum(d)
          from (select h, -1 as d from ${work} where matched and round = ${k}
                union all
                select bh, 1 from ${work} where matched and round = ${k}) c
         group by h
        on conflict (h) do update set n = ${pool}.n + excluded.n`.execute(tx);
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
