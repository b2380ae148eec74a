import { sql, type RawBuilder } from 'kysely';
import type { Db, Tx } from '../db.js';
import { isPgError } from '../errors.js';
import type { Table } from '../catalog/types.js';
import { keyAliases, tableRef, type Sql } from '../sql/build.js';
import { holdsKey, pointsAt, referencesInto, type Reference } from './references.js';
import { workTable, type WorkTable } from '../sql/work-table.js';
import { pkMatches, run, type BatchContext, type SkippedGroup } from './context.js';

/** The session-scoped temp table of group keys a repair walks through in batches: (n, k0, k1 …). */
export const GROUPS = workTable('rd_groups');

/**
 * (Re)create rd_groups from a query that yields the key columns k0.. of each group, numbered in
 * key order. Batches then take n in (from, to]: a stable, resumable walk that holds no rows in Node.
 */
export async function createGroups(session: Db, keyCount: number, keys: RawBuilder<unknown>): Promise<number> {
  const names = keyAliases(keyCount).map((_, i) => sql.id(`k${i}`));
  await sql`drop table if exists ${GROUPS}`.execute(session);
  await sql`create temp table ${GROUPS} as
    select row_number() over (order by ${sql.join(names)}) as n, ${sql.join(names)} from (${keys}) g`.execute(session);
  // Every batch reads its groups by n: without an index each of its statements reads every group
  // (at 100k groups, 14 ms a statement instead of 0.5 ms, four such statements a batch).
  await sql`create index on ${GROUPS} (n)`.execute(session);
  await sql`analyze ${GROUPS}`.execute(session);
  const res = await sql<{ n: string }>`select count(*) as n from ${GROUPS}`.execute(session);
  return Number(res.rows[0]?.n ?? 0);
}

/** The session-scoped temp table of each group's member rows, by primary key: (n, p0 …). */
export const MEMBERS = workTable('rd_members');

/**
 * List every group's member rows once (one pass over the table), so each batch then reaches its
 * rows by primary key instead of scanning the table for its keys.
 */
export async function createMembers(
  session: Db,
  table: Table,
  onKey: RawBuilder<unknown>,
  scope: RawBuilder<unknown>,
): Promise<void> {
  const pk = table.primaryKey ?? [];
  await sql`drop table if exists ${MEMBERS}`.execute(session);
  await sql`create temp table ${MEMBERS} as
    select g.n, ${sql.join(pk.map((c, i) => sql`t.${sql.id(c)} as ${sql.id(`p${i}`)}`))}
      from ${tableRef(table)} t join ${GROUPS} g on ${onKey} where ${scope}`.execute(session);
  await sql`create index on ${MEMBERS} (n)`.execute(session);
  await sql`analyze ${MEMBERS}`.execute(session);
}

/** `g.n` within the batch. */
export function inBatch(from: number, to: number): RawBuilder<unknown> {
  return sql`g.n > ${from} and g.n <= ${to}`;
}

/**
 * Row `alias` carries a locker or deleter (xmax): among the rows a SKIP LOCKED statement did not
 * take, those are the ones someone holds. A row committed by someone else since that statement has
 * none — it is simply not in this batch (a later run takes it), and no reason to set its group aside.
 */
function heldBySomeone(alias: string): RawBuilder<unknown> {
  return sql`${sql.ref(`${alias}.xmax`)}::text <> '0'`;
}

/** The session's temp table of the groups the current batch sets aside: (n), emptied at commit. */
export const ASIDE = workTable('rd_aside');

/**
 * Lock a batch's rows into the temp table `rows`: the members listed with the groups, reached by
 * primary key and re-checked under the lock (they may have changed since the listing). Where an
 * index serves the key (`byKey`), rows that took one of the batch's keys since are taken too;
 * otherwise they are left for the next run. `picked` selects from `t` (the row) and `g` (its
 * group) and must name the group `n` and the primary key `${pkPrefix}0…`.
 *
 * With --apply, rows are locked in one order — the rows referencing the group's rows first
 * (`children`: the rows a merge re-points), then the group's own rows, each in group order — and
 * never waited for: SKIP LOCKED. A group any of whose rows another transaction holds is set aside
 * whole (listed in `ASIDE`, its rows dropped from `rows`, and in `ctx.setAside`): the rest of the
 * batch goes on, and the run retries that group later. So a batch never holds a parent row while
 * waiting for a child row, and never waits in a lock cycle with the application.
 */
export async function lockBatchRows(
  ctx: BatchContext,
  table: Table,
  rows: WorkTable,
  batch: {
    from: number;
    to: number;
    picked: RawBuilder<unknown>;
    onKey: RawBuilder<unknown>;
    still: RawBuilder<unknown>;
    pkPrefix: string;
    byKey: boolean;
    /** Also lock (first) every row that references a group's rows: those a merge re-points. */
    children?: boolean;
  },
): Promise<void> {
  const where = sql`${inBatch(batch.from, batch.to)} and ${batch.onKey} and ${batch.still}`;
  const listed = sql`${MEMBERS} m
      join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'p')}
      join ${GROUPS} g on g.n = m.n`;
  const taken = sql`exists (select 1 from ${rows} r where ${pkMatches(table, 't', 'r', batch.pkPrefix)})`;
  if (!ctx.apply) {
    // A dry run takes no row locks: it never waits on the application, nor makes it wait. What it
    // plans may change before an apply, which re-checks every group under these locks.
    await run(
      ctx,
      sql`create temp table ${rows} on commit drop as select ${batch.picked} from ${listed} where ${where}`,
      'plan',
    );
    if (batch.byKey)
      await run(
        ctx,
        sql`insert into ${rows}
        select ${batch.picked} from ${tableRef(table)} t join ${GROUPS} g on ${batch.onKey}
         where ${where} and not ${taken}`,
        'plan',
      );
    return;
  }
  // One table for the session, emptied at every commit: no catalog churn per batch.
  await ctx.tx.executeQuery(
    sql`create temp table if not exists ${ASIDE} (n bigint) on commit delete rows`.compile(ctx.tx),
  );
  const aside: number[] = [];
  const setAside = async (q: RawBuilder<unknown>) => {
    const { rows: added } = await run<{ n: string }>(ctx, sql`insert into ${ASIDE} ${q} returning n`, 'plan');
    aside.push(...added.map((r) => Number(r.n)));
  };
  const notAside = sql`g.n not in (select n from ${ASIDE})`;
  const refs = batch.children ? referencesInto(ctx.catalog, table, ctx.declared, ctx.infer) : [];
  if (refs.length) await lockChildren(ctx, table, refs, batch.from, batch.to, setAside);
  await run(
    ctx,
    sql`create temp table ${rows} on commit drop as
    select ${batch.picked} from ${listed}
     where ${where} and ${notAside}
     order by g.n
       for update of t skip locked`,
    'plan',
  );
  // A listed row still in the group that the lock skipped: someone else holds it.
  await setAside(
    sql`select distinct g.n from ${listed} where ${where} and ${notAside} and ${heldBySomeone('t')} and not ${taken}`,
  );
  if (batch.byKey) {
    const byKey = sql`${tableRef(table)} t join ${GROUPS} g on ${batch.onKey}`;
    await run(
      ctx,
      sql`insert into ${rows}
      select ${batch.picked} from ${byKey}
       where ${where} and ${notAside} and not ${taken}
       order by g.n
         for update of t skip locked`,
      'plan',
    );
    await setAside(
      sql`select distinct g.n from ${byKey} where ${where} and ${notAside} and ${heldBySomeone('t')} and not ${taken}`,
    );
  }
  if (!aside.length) return;
  await run(ctx, sql`delete from ${rows} where n in (select n from ${ASIDE})`, 'plan');
  ctx.setAside.push(...aside.sort((a, b) => a - b));
}

/**
 * Lock the rows that reference the batch's members (those a merge re-points), through every
 * reference at once: one statement, a CTE per reference (FOR UPDATE cannot sit beside a UNION),
 * SKIP LOCKED, and in it the groups whose children someone else holds. With dozens of references
 * (MusicBrainz's artist) a statement or two each held the batch's first locks through dozens of
 * round trips. A reference into the primary key is followed from the listed members alone.
 */
async function lockChildren(
  ctx: BatchContext,
  table: Table,
  refs: Reference[],
  from: number,
  to: number,
  setAside: (q: RawBuilder<unknown>) => Promise<void>,
): Promise<void> {
  const pk = table.primaryKey ?? [];
  const children = (ref: Reference) =>
    ref.parentColumns.every((c) => pk.includes(c))
      ? sql`${MEMBERS} m
          join ${tableRef(ref.child)} x
            on ${holdsKey(
              ref,
              'x',
              ref.parentColumns.map((c) => sql.id('m', `p${pk.indexOf(c)}`)),
            )}`
      : sql`${MEMBERS} m
          join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'p')}
          join ${tableRef(ref.child)} x on ${pointsAt(ref, 'x', 't')}`;
  const inThisBatch = sql`m.n > ${from} and m.n <= ${to}`;
  const locked = (i: number) => sql.id(`c${i}`);
  const lockAll = (wait: Sql) =>
    refs.map(
      (ref, i) => sql`${locked(i)} as (
        select x.tableoid as o, x.ctid as c
          from ${children(ref)}
         where ${inThisBatch}
         order by m.n
           for update of x ${wait})`,
    );
  const countAll = sql.join(
    refs.map((_, i) => sql`(select count(*) from ${locked(i)})`),
    sql` + `,
  );
  // Mostly nobody holds any of them: NOWAIT takes them all in half the work (no look for holders).
  // When someone does, the statement fails at once and is undone to its savepoint.
  await exec(ctx, 'savepoint rd_children');
  try {
    await run(ctx, sql`with ${sql.join(lockAll(sql`nowait`))} select ${countAll} as locked`, 'plan');
    await exec(ctx, 'release savepoint rd_children');
    return;
  } catch (e) {
    if (!isPgError(e) || e.code !== '55P03') throw e;
    await exec(ctx, 'rollback to savepoint rd_children');
    await exec(ctx, 'release savepoint rd_children');
  }
  const held = (i: number) => sql.id(`h${i}`);
  const skipping = lockAll(sql`skip locked`);
  const ctes = refs.flatMap((ref, i) => [
    skipping[i]!,
    // A child the lock skipped that carries a locker: someone else holds it (see heldBySomeone).
    sql`${held(i)} as (
      select m.n
        from ${children(ref)}
       where ${inThisBatch}
         and ${heldBySomeone('x')}
         and not exists (select 1 from ${locked(i)} l where l.o = x.tableoid and l.c = x.ctid))`,
  ]);
  // Counting each CTE reads it whole: every child row is locked, whatever the set-aside check read.
  const { rows } = await run<{ locked: string; aside: string[] | null }>(
    ctx,
    sql`with ${sql.join(ctes)}
    select ${countAll} as locked,
           array(select distinct n from (${sql.join(
             refs.map((_, i) => sql`select n from ${held(i)}`),
             sql` union all `,
           )}) h order by n) as aside`,
    'plan',
  );
  const aside = rows[0]?.aside ?? [];
  if (aside.length) await setAside(sql`select unnest(${aside.map(Number)}::bigint[])`);
}

async function exec(ctx: BatchContext, text: string): Promise<void> {
  await ctx.tx.executeQuery(sql.raw(text).compile(ctx.tx));
}

/**
 * The groups `groupNumbers` (a query yielding `n`) as skippedGroups entries — key from rd_groups,
 * every member row's primary key from rd_members — at most `limit` of them, in key order.
 */
export async function describeGroups(
  db: Db | Tx,
  groupNumbers: RawBuilder<unknown>,
  reason: string,
  limit: number,
): Promise<SkippedGroup[]> {
  if (limit <= 0) return [];
  const { rows } = await sql<{ g: Record<string, unknown>; members: Record<string, unknown>[] | null }>`
    select row_to_json(g) as g,
           (select json_agg(row_to_json(m) order by m) from ${MEMBERS} m where m.n = g.n) as members
      from ${GROUPS} g
     where g.n in (select n from (${groupNumbers}) q)
     order by g.n
     limit ${limit}`.execute(db);
  return rows.map((r) => ({
    key: numbered(r.g, 'k'),
    ids: (r.members ?? []).map((m) => {
      const pk = numbered(m, 'p');
      return pk.length === 1 ? pk[0] : pk;
    }),
    reason,
  }));
}

/** The values of columns prefix0, prefix1 … of a row, in that order. */
function numbered(row: Record<string, unknown>, prefix: string): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; `${prefix}${i}` in row; i++) out.push(row[`${prefix}${i}`]);
  return out;
}

/**
 * Within a batch: the groups `groupNumbers` (a query yielding `n`) are left as they are, for
 * `reason`. Adds them to the batch's skippedGroups (up to its sample) and returns how many there are.
 */
export async function recordSkipped(
  ctx: BatchContext,
  groupNumbers: RawBuilder<unknown>,
  reason: string,
): Promise<number> {
  const { rows } = await run<{ n: string }>(ctx, sql`select count(distinct n) as n from (${groupNumbers}) q`, 'read');
  const skipped = Number(rows[0]?.n ?? 0);
  if (skipped)
    ctx.skippedGroups.push(
      ...(await describeGroups(ctx.tx, groupNumbers, reason, ctx.skipSample - ctx.skippedGroups.length)),
    );
  return skipped;
}
