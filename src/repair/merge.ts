import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { BatchRetry, GroupRefusal, RowdoctorError } from '../errors.js';
import { tableRef } from '../sql/build.js';
import { holdsType } from '../sql/typed.js';
import { backupRows, recordAfterImages } from './backup.js';
import { recordMerges } from './merge-redirects.js';
import { count, pkMatches, run, type BatchContext } from './context.js';
import { childValue, holdsKey, pointsAt, referencesInto, unconfirmedInto, type Reference } from './references.js';
import { askedBeforeDelete, childRows, provenUnreferenced } from './rows.js';
import type { WorkTable } from '../sql/work-table.js';
import { collidingIndexes, collisionMap } from './merge-collisions.js';
import { isLeaf, repointLeaves, type Leaf } from './merge-fused.js';
import {
  dependentSteps,
  mapToSurvivors,
  mergeSteps,
  sharingRefs,
  stepCollisions,
  stepKeys,
} from './merge-dependents.js';

/**
 * Merge rows of `table` into survivors. `map` is a temp table with columns l0.. (a loser's
 * primary key) and s0.. (its survivor's). For every reference into the table, children of losers
 * that would collide with a sibling under the child's own unique key are merged into that sibling
 * first (recursively, so grandchildren are moved, never cascaded away); the remaining children are
 * re-pointed; then the losers are backed up and deleted. Returns how many losers were deleted.
 */
export async function mergeRows(
  ctx: BatchContext,
  table: Table,
  map: WorkTable,
  depth = 0,
  size?: number,
): Promise<number> {
  await repointAll(ctx, table, map, depth);
  return finishMerge(ctx, table, map, depth, size);
}

/** Re-point every reference into the losers of `map` but those in `skip` (moved by the caller). */
async function repointAll(
  ctx: BatchContext,
  table: Table,
  map: WorkTable,
  depth: number,
  skip: Reference[] = [],
): Promise<void> {
  if (depth > 16)
    throw new RowdoctorError(
      `Merging ${table.id}: references nest deeper than 16 levels (a cycle?); repair it by hand.`,
    );
  const skipped = (ref: Reference) =>
    skip.some((s) => s.child.id === ref.child.id && s.columns.join() === ref.columns.join());
  const refs = parentsFirst(ctx, referencesInto(ctx.catalog, table, ctx.declared, ctx.infer)).filter(
    (ref) => !skipped(ref),
  );
  const named = await namingLosers(ctx, table, map, refs);
  // Consecutive leaves (children nothing references) go in one statement: repointLeaves.
  let leaves: Leaf[] = [];
  const flush = async () => {
    if (leaves.length) await repointLeaves(ctx, leaves);
    leaves = [];
  };
  for (const ref of refs.filter(named)) {
    const lr = ref.parentColumns.map((_, i) => `lr${i}`);
    const sr = ref.parentColumns.map((_, i) => `sr${i}`);
    const refmap = await refmapOf(ctx, table, map, ref, lr, sr);
    if (isLeaf(ctx, ref)) {
      leaves.push({ ref, refmap, lr, sr });
      continue;
    }
    await flush();
    await repoint(ctx, table, map, ref, depth, refmap, lr, sr);
  }
  await flush();
}

/**
 * Which references have a row that names a loser of `map`, asked in one statement: a schema with
 * dozens of references into the table (MusicBrainz's artist) mostly has none for a batch's groups,
 * and each one skipped saves the batch its planning statements (a re-pointing map, collision maps,
 * counts) — time it would hold its row locks. Only references into the primary key are asked (the
 * map holds its values); the others are always re-pointed.
 */
async function namingLosers(
  ctx: BatchContext,
  table: Table,
  map: WorkTable,
  refs: Reference[],
): Promise<(ref: Reference) => boolean> {
  const pk = table.primaryKey;
  const asked = refs.filter((r) => pk && r.parentColumns.join() === pk.join());
  if (!asked.length) return () => true;
  const probes = asked.map((r, i) => {
    const names = sql.join(r.columns.map((c) => sql.id('t', c)));
    // A loser's key as the child holds it; a polymorphic row names it only with its type.
    const losers = sql.join(pk!.map((_, k) => childValue(r, sql.id(`l${k}`))));
    const ofType = r.typed ? sql`${holdsType(r.child, r.typed.typeColumn, r.typed.type, 't')} and ` : sql``;
    return sql`exists (select 1
                         from ${tableRef(r.child)} t
                        where ${ofType}(${names}) in (select ${losers} from ${map})) as ${sql.id(`r${i}`)}`;
  });
  const { rows } = await run<Record<string, boolean>>(ctx, sql`select ${sql.join(probes)}`, 'read');
  const none = new Set(asked.filter((_, i) => rows[0]?.[`r${i}`] === false));
  return (ref) => !none.has(ref);
}

/**
 * Once nothing points at them any more: prove it, remember the merges, delete the losers. `size`:
 * how many rows `map` lists, when the caller counted them.
 */
async function finishMerge(
  ctx: BatchContext,
  table: Table,
  map: WorkTable,
  depth: number,
  size?: number,
): Promise<number> {
  await refuseUnconfirmed(ctx, table, map);
  // Prove, under the batch's lock, that nothing points at a loser any more before deleting it: a
  // row written for it meanwhile through a reference the database does not enforce keeps it (and
  // its group) for the next run, rather than being left dangling. A dry run re-points nothing, so
  // it has nothing to prove; nor does a table nothing can reference (most children: tags, links),
  // whose rows the delete locks itself.
  const referenced = askedBeforeDelete(ctx, table).length > 0;
  const proven = ctx.apply && referenced ? await provenUnreferenced(ctx, table, map) : map;
  // A child merged away at depth that something now points at would collide once its parent's
  // children are re-pointed: retry the batch, which then sees (and moves) the new row.
  if (
    depth > 0 &&
    proven !== map &&
    (await count(ctx, sql`select 1 from ${proven}`)) < (await count(ctx, sql`select 1 from ${map}`))
  )
    throw new BatchRetry(`a row was written meanwhile for a ${table.id} row being merged away`);
  await recordMerges(ctx, table, proven);
  return deleteLosers(ctx, table, proven, proven === map ? size : undefined);
}

/**
 * A loser that a candidate pair the data did not support still names (its type names the table,
 * its id the loser) is not deleted: that pair is not followed, so its rows would be left naming a
 * row that is gone. The merge of its group is refused (groupwise rolls it back and skips it alone,
 * in a dry run as in an apply), with what to declare. Asked at every depth, before the proof.
 */
async function refuseUnconfirmed(ctx: BatchContext, table: Table, map: WorkTable): Promise<void> {
  for (const r of unconfirmedInto(ctx.catalog, table, ctx.declared, ctx.infer)) {
    const { rows } = await run<{ k: string }>(
      ctx,
      sql`select count(*) as k
        from ${map} m
        join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}
        join ${childRows(r)} x on ${pointsAt(r, 'x', 't')}`,
      'read',
    );
    const k = Number(rows[0]?.k ?? 0);
    if (k)
      throw new GroupRefusal(
        `losers of ${table.id} kept: ${r.child.id} (${r.via}: ${k.toLocaleString('en-US')} ` +
          `${k === 1 ? 'row' : 'rows'}) names them; ${r.unconfirmed}`,
      );
  }
}

/**
 * A child with a foreign key into another child of the same table (edges(job_id, workflow_id) →
 * jobs(id, workflow_id), both under workflows) is re-pointed after it: jobs' statement moves the
 * edges along (see dependentSteps), and the edges' own re-pointing then finds them done.
 */
function parentsFirst(ctx: BatchContext, refs: Reference[]): Reference[] {
  const children = new Set(refs.map((r) => r.child.id));
  const rank = new Map<string, number>();
  const rankOf = (id: string, seen: Set<string>): number => {
    if (rank.has(id)) return rank.get(id)!;
    if (seen.has(id)) return 0;
    seen.add(id);
    const table = ctx.catalog.tables.find((t) => t.id === id);
    let r = 0;
    for (const other of children) {
      if (other === id || !table) continue;
      const parent = ctx.catalog.tables.find((t) => t.id === other)!;
      const into = referencesInto(ctx.catalog, parent, ctx.declared, ctx.infer).some((x) => x.child.id === id);
      if (into) r = Math.max(r, rankOf(other, seen) + 1);
    }
    rank.set(id, r);
    return r;
  };
  return refs
    .map((ref, i) => ({ ref, i, r: rankOf(ref.child.id, new Set()) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.ref);
}

/**
 * Backup and delete the losers of `map` (in a dry run: from the copies, sql/shadow.ts). `size`: how
 * many rows `map` lists, when known: a delete that took them all needs no look for rows left.
 */
export async function deleteLosers(ctx: BatchContext, table: Table, map: WorkTable, size?: number): Promise<number> {
  const isLoser = sql`exists (select 1 from ${map} m where ${pkMatches(table, 't', 'm', 'l')})`;
  if (ctx.backup) await backupRows(ctx, table, 'delete', isLoser, null);
  const { affected } = await run(ctx, sql`delete from ${tableRef(table)} t where ${isLoser}`, 'write');
  if (ctx.apply && affected !== size) {
    // A BEFORE DELETE trigger that returns NULL (an application's own soft delete) keeps rows the
    // plan deleted and backed up: stop, roll the batch back, and say what to do.
    const left = await count(
      ctx,
      sql`select 1 from ${map} m join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}`,
    );
    if (left > 0)
      throw new RowdoctorError(
        `Deleting rows of ${table.id}: ${left} of them are still there after the DELETE — a BEFORE DELETE trigger ` +
          'kept them (an application-level soft delete?). The batch was rolled back; nothing of it was changed.',
        {
          hint:
            `Declare the column the trigger sets as the soft-delete marker of ${table.id} in the config, ` +
            'or disable the trigger for the repair.',
        },
      );
  }
  return affected;
}

/**
 * Per merge map, its re-pointing maps by referenced columns: the references into the primary key
 * (all but a few) share one, rather than each building its own inside the batch.
 */
const refmaps = new WeakMap<WorkTable, Map<string, WorkTable>>();

/** Loser and survivor values of the referenced columns (usually the primary key itself): lr0… → sr0…. */
async function refmapOf(
  ctx: BatchContext,
  parent: Table,
  map: WorkTable,
  ref: Reference,
  lr: string[],
  sr: string[],
): Promise<WorkTable> {
  // Only a key's values stay what they were while children are re-pointed; other columns may not.
  const shared = parent.primaryKey?.join() === ref.parentColumns.join() ? ref.parentColumns.join() : null;
  let maps = refmaps.get(map);
  if (!maps) refmaps.set(map, (maps = new Map<string, WorkTable>()));
  const known = shared === null ? undefined : maps.get(shared);
  if (known) return known;
  const refmap = ctx.nextTemp();
  if (shared !== null) maps.set(shared, refmap);
  await run(
    ctx,
    sql`create temp table ${refmap} on commit drop as
    select ${sql.join(ref.parentColumns.map((c, i) => sql`lx.${sql.id(c)} as ${sql.id(lr[i]!)}`))},
           ${sql.join(ref.parentColumns.map((c, i) => sql`sx.${sql.id(c)} as ${sql.id(sr[i]!)}`))}
      from ${map} m
      join ${tableRef(parent)} lx on ${pkMatches(parent, 'lx', 'm', 'l')}
      join ${tableRef(parent)} sx on ${pkMatches(parent, 'sx', 'm', 's')}
     where (${sql.join(ref.parentColumns.map((c) => sql`lx.${sql.id(c)}`))})
           is distinct from (${sql.join(ref.parentColumns.map((c) => sql`sx.${sql.id(c)}`))})`,
    'plan',
  );
  return refmap;
}

/** Re-point the children of `ref` through `refmap` (lr… → sr…): the general path, for any child. */
async function repoint(
  ctx: BatchContext,
  parent: Table,
  map: WorkTable,
  ref: Reference,
  depth: number,
  refmap: WorkTable,
  lr: string[],
  sr: string[],
): Promise<void> {
  const child = ref.child;
  // The survivor's key as the child holds it (a text object_id: its text form).
  const survivor = (i: number) => childValue(ref, sql`r.${sql.id(sr[i]!)}`);
  const atLoser = (alias: string) =>
    holdsKey(
      ref,
      alias,
      lr.map((c) => sql`r.${sql.id(c)}`),
    );
  const values = new Map(ref.columns.map((c, i) => [c, survivor(i)]));
  // A table with two composite keys into the child that share a re-pointed column (edges(source_job_id,
  // workflow_id) and edges(target_job_id, workflow_id) → jobs(id, workflow_id)): its rows move in
  // the one statement below.
  const sharing = sharingRefs(ctx, child, values);
  const straddling = sharing.filter((r) => sharing.some((o) => o !== r && o.child.id === r.child.id));

  // Children that would collide with a sibling once re-pointed are merged into it first (a child
  // without a primary key is reached by ctid, within this transaction). A row under two such keys
  // cannot move on its own (an edge from a merged job to a moving one would name a job not moved
  // yet): those rows move, mapped to the survivor, in the one statement below, and the losers are
  // deleted after it.
  const deferred: WorkTable[] = [];
  for (const index of collidingIndexes(child, ref)) {
    const childMap = await collisionMap(ctx, child, ref, refmap, index, deferred);
    const n = await count(ctx, sql`select 1 from ${childMap}`);
    if (n === 0) continue;
    if (straddling.length) {
      await repointAll(ctx, child, childMap, depth + 1, straddling);
      deferred.push(childMap);
      continue;
    }
    // Not `+= await`: that would read the count before the nested merges below add theirs.
    const merged = await mergeRows(ctx, child, childMap, depth + 1, n);
    ctx.counts.childRowsMerged += merged;
  }
  const losers = deferred.length ? ctx.nextTemp() : null;
  if (losers)
    await run(
      ctx,
      sql`create temp table ${losers} on commit drop as ${sql.join(
        deferred.map((d) => sql`select * from ${d}`),
        sql` union all `,
      )}`,
      'plan',
    );
  // A deferred loser stays where it is until it is deleted (moving it would collide).
  const notLoser = (alias: string) =>
    losers ? sql` and not exists (select 1 from ${losers} m where ${pkMatches(child, alias, 'm', 'l')})` : sql``;
  const pointsAtLoser = sql`exists (select 1 from ${refmap} r where ${atLoser('t')})${notLoser('t')}`;

  const set = sql.join(ref.columns.map((c, i) => sql`${sql.id(c)} = ${survivor(i)}`));
  const match = sql`${atLoser('t')}${notLoser('t')}`;
  const dependents = mergeSteps(dependentSteps(ctx, child, values, sql`${tableRef(child)} c0`, atLoser('c0'), 'c0'));
  if (losers) mapToSurvivors(child, losers, straddling, values, dependents);
  // A row that moves along and would then collide with a sibling under its table's own unique key
  // is merged into that sibling first, as a re-pointed child is (the statement below would fail 23505).
  for (const d of dependents)
    for (const index of stepKeys(d)) {
      const stepMap = await stepCollisions(ctx, d, refmap, index);
      if (!(await count(ctx, sql`select 1 from ${stepMap}`))) continue;
      const merged = await mergeRows(ctx, d.table, stepMap, depth + 1);
      ctx.counts.childRowsMerged += merged;
    }
  if (ctx.backup) {
    // What each re-pointed column will hold: its survivor's value (a join table's key changes with it).
    const repointed = new Map(
      ref.columns.map((c, i) => [c, sql`(select ${survivor(i)} from ${refmap} r where ${atLoser('t')})`]),
    );
    await backupRows(ctx, child, 'update', pointsAtLoser, ref.columns, repointed);
    for (const d of dependents) {
      const moved = sql`exists (select 1 from ${refmap} r where ${d.reached('t')})`;
      const next = new Map(
        d.columns.map((c) => [c, sql`(select ${d.set.get(c)!} from ${refmap} r where ${d.reached('t')} limit 1)`]),
      );
      await backupRows(ctx, d.table, 'update', moved, d.columns, next);
    }
  }
  const update = sql`update ${tableRef(child)} t set ${set} from ${refmap} r where ${match}`;
  if (!dependents.length) {
    const { affected } = await run(ctx, update, 'write');
    await recordAfterImages(ctx, child);
    ctx.counts.childRowsRepointed += affected;
    return;
  }
  // Rows that reference the re-pointed columns through a composite foreign key (edges(job_id,
  // workflow_id) → jobs(id, workflow_id)) move in the same statement, so no key is violated at its
  // end (NO ACTION keys are checked there; an ON UPDATE CASCADE then finds nothing left to do).
  const parts = [
    sql`s0 as (${update} returning 1)`,
    ...dependents.map(
      (d, k) =>
        sql`${sql.id(`s${k + 1}`)} as (
          update ${tableRef(d.table)} d
             set ${sql.join(d.columns.map((c) => sql`${sql.id(c)} = ${d.set.get(c)!}`))}
            from ${refmap} r
           where ${d.reached('d')}
          returning 1)`,
    ),
  ];
  const total = sql.join(
    [0, ...dependents.map((_, k) => k + 1)].map((k) => sql`(select count(*) from ${sql.id(`s${k}`)})`),
    sql` + `,
  );
  const { rows } = await run<{ n: string }>(ctx, sql`with ${sql.join(parts)} select ${total} as n`, 'write');
  await recordAfterImages(ctx, child);
  for (const d of dependents) await recordAfterImages(ctx, d.table);
  ctx.counts.childRowsRepointed += Number(rows[0]?.n ?? 0);
  for (const d of deferred) {
    const merged = await finishMerge(ctx, child, d, depth + 1);
    ctx.counts.childRowsMerged += merged;
  }
}
