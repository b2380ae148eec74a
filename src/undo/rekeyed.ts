import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { AFTER, keyAfterUpdate, keyText, keyTextAfterUpdate } from '../journal/backup-tables.js';
import { tableRef, type Sql } from '../sql/build.js';
import {
  conflictsOf,
  holdsWhatRepairLeft,
  inSlice,
  updateReason,
  type Conflicts,
  type Slice,
  type UndoTarget,
} from './conflicts.js';
import { childrenLeftBehind } from './children.js';
import { parentsMissing } from './parents.js';
import { revertInRounds } from './rounds.js';

/**
 * Undo of updated rows whose primary key the run changed (a join table keyed by its references,
 * film_actor(actor_id, film_id), re-pointed by a merge). The backup recorded the key each update
 * gave the row (KEY): undo finds the row there, and takes it back whole, key included. A row the
 * run updated more than once is a chain — each update's key after is the next one's key before —
 * taken back later update first, one round per step, each step only while the row holds exactly
 * what that update left. A row the application changed since stays, with every earlier step of it.
 */

const work = sql.id('pg_temp', 'rowdoctor_undo_rekeyed');
const backupOf = (t: UndoTarget) => t.source;

/** The slice's update backups of `t`: each one's key before and after its update. */
async function fill(tx: Tx, t: UndoTarget, slice: Slice): Promise<void> {
  await sql`drop table if exists ${work}`.execute(tx);
  await sql`
    create temp table ${work} on commit drop as
    select b._rd_seq as seq, ${keyText(t.table, 'b')} as key, ${keyTextAfterUpdate(t.table, 'b')} as key_after,
           false as done
      from ${backupOf(t)} b
     where ${inSlice(t, slice, 'b')} and b._rd_op = 'update'`.execute(tx);
  await sql`analyze ${work}`.execute(tx);
}

/** True where an earlier update of the row (`r`: its key before, as text, and seq) is still to be taken back. */
function earlierStep(t: UndoTarget, slice: Slice, r: string): Sql {
  const remaining: Slice = { runId: slice.runId, ...(slice.except ? { except: slice.except } : {}) };
  return sql`exists (
    select 1 from ${backupOf(t)} e
     where ${inSlice(t, remaining, 'e')} and e._rd_op = 'update' and e._rd_seq < ${sql.id(r, 'seq')}
       and ${keyTextAfterUpdate(t.table, 'e')} = ${sql.id(r, 'key')})`;
}

/**
 * Take back, round by round, every re-keyed row that still holds what the repair left. Returns how
 * many rows went back to what they were before the run (a chain counts once, at its first update).
 */
export async function revertRekeyedRows(tx: Tx, t: UndoTarget, slice: Slice): Promise<number> {
  // Each round takes back the last remaining step of every chain: no later backup starts from the key it left.
  return revertInRounds(
    tx,
    t,
    work,
    () => fill(tx, t, slice),
    (assignments) => sql`
      with r as (
        select w.seq from ${work} w
         where not w.done
           and not exists (select 1 from ${work} l where not l.done and l.seq > w.seq and l.key = w.key_after)),
      back as (
        update ${tableRef(t.table)} x
           set ${assignments}
          from r
          join ${backupOf(t)} b on b._rd_seq = r.seq and b._rd_run = ${slice.runId}
         where ${keyAfterUpdate(t.table, 'b', 'x')}
           and ${holdsWhatRepairLeft(t, 'x', sql.id('b', AFTER))}
           and not (${parentsMissing(t, slice.runId, 'b', 'apply')})
           and not ${childrenLeftBehind(t, 'x', 'b', slice.runId)}
        returning b._rd_seq as seq, ${keyText(t.table, 'b')} as key),
      marked as (
        update ${work} w set done = true where w.seq in (select seq from r) returning 1)
      select (select count(*) from marked) as round,
             (select count(*) from back k where not ${earlierStep(t, slice, 'k')}) as reverted`,
  );
}

/**
 * The dry run of revertRekeyedRows: the rows whose chain ends (its last update in the slice) where
 * no live row holds what that update left, or where a row it names is not there as it needs it —
 * one per chain. Rows the run deleted after updating them are judged when restored.
 */
export async function rekeyedConflicts(db: Db | Tx, t: UndoTarget, slice: Slice, sample: number): Promise<Conflicts> {
  if (!t.afterImages) return { count: 0, samples: [] };
  const reused = parentsMissing(t, slice.runId, 'b', 'plan');
  const behind = childrenLeftBehind(t, 'x', 'b', slice.runId);
  const { rows } = await sql<{ key: unknown[]; gone: boolean; reused: boolean; behind: boolean; n: string }>`
    select to_json(${keyTextAfterUpdate(t.table, 'b')}) as key, (x.*) is null as gone, ${reused} as reused,
           ${behind} as behind, count(*) over () as n
      from ${backupOf(t)} b
      left join ${tableRef(t.table)} x on ${keyAfterUpdate(t.table, 'b', 'x')}
     where ${inSlice(t, slice, 'b')} and b._rd_op = 'update'
       and not exists (
         select 1 from ${backupOf(t)} l
          where ${inSlice(t, slice, 'l')} and l._rd_op in ('update', 'delete') and l._rd_seq > b._rd_seq
            and ${keyText(t.table, 'l')} = ${keyTextAfterUpdate(t.table, 'b')})
       and ((x.*) is null or not (${holdsWhatRepairLeft(t, 'x', sql.id('b', AFTER))}) or ${reused} or ${behind})
     order by b._rd_seq`.execute(db);
  return conflictsOf(t, rows, sample, updateReason);
}
