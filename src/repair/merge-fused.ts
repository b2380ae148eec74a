import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { BatchRetry, RowdoctorError } from '../errors.js';
import { AFTER, BACKUP_SCHEMA, KEY, backupTableName } from '../journal/backup-tables.js';
import { currentMergeMap } from '../journal/merge-map.js';
import { and, col, tableRef, type Sql } from '../sql/build.js';
import type { WorkTable } from '../sql/work-table.js';
import { listBackupTable, readyBackupTable } from './backup.js';
import { pkMatches, run, type BatchContext } from './context.js';
import { collidingIndexes, collisionQuery } from './merge-collisions.js';
import { childValue, holdsKey, referencesInto, unconfirmedInto, type Reference } from './references.js';

/*
 * Most children of a merged row are leaves: tags, aliases, ratings, link tables, nothing referencing
 * them (MusicBrainz's artist has dozens). Re-pointing one took ten round trips inside the batch —
 * its collision map, the merges remembered, backups, the delete, the update, the after-images — and
 * the batch held its row locks through all of them. A leaf with a primary key and at most one unique
 * key the re-point can break is done in one statement instead: data-modifying CTEs over the one
 * snapshot, the rows folded into a sibling and the rows re-pointed being disjoint by construction.
 */

/**
 * Children whose re-pointed rows could not all be found again by the key the update gave them (a
 * BEFORE UPDATE trigger that changes the key): their batch is retried on the general path.
 */
const unfusable = new Set<string>();

/** `ref`'s child can be re-pointed in one statement (repointLeaf). */
export function isLeaf(ctx: BatchContext, ref: Reference): boolean {
  const child = ref.child;
  return (
    !!child.primaryKey &&
    !unfusable.has(child.id) &&
    referencesInto(ctx.catalog, child, ctx.declared, ctx.infer).length === 0 &&
    // a pair the data did not support may still name its rows: the general path refuses that group
    unconfirmedInto(ctx.catalog, child, ctx.declared, ctx.infer).length === 0 &&
    collidingIndexes(child, ref).length <= 1
  );
}

/** A leaf reference to re-point, with its re-pointing map (lr… loser → sr… survivor values). */
export interface Leaf {
  ref: Reference;
  refmap: WorkTable;
  lr: string[];
  sr: string[];
}

/**
 * Re-point the children of leaf references, in one statement for as many as touch distinct tables
 * (a table is changed once per statement): per leaf, the rows that would collide under the child's
 * unique key are folded into the sibling they collide with (remembered in the merge map and backed
 * up, then deleted), the others are backed up — with the after-image their update leaves — and
 * re-pointed. As the statements of the general path (merge.ts) would, in one round trip rather than
 * ten per reference.
 */
export async function repointLeaves(ctx: BatchContext, leaves: Leaf[]): Promise<void> {
  const backups = ctx.apply && ctx.backup;
  const waves: Leaf[][] = [];
  for (const leaf of leaves) {
    const wave = waves.find((w) => !w.some((l) => l.ref.child.id === leaf.ref.child.id));
    if (wave) wave.push(leaf);
    else waves.push([leaf]);
  }
  for (const wave of waves) {
    if (backups) for (const { ref } of wave) await readyBackupTable(ctx, ref.child);
    const { rows } = await run<Record<string, string | null>>(
      ctx,
      leavesStatement(ctx, wave, backups),
      'write',
      // A dry run writes no backup; --sql shows the statement --apply runs.
      backups || !ctx.backup ? undefined : leavesStatement(ctx, wave, true),
    );
    const row = rows[0] ?? {};
    for (const [i, { ref }] of wave.entries()) {
      const child = ref.child;
      const [folded, deleted, repointed, backedUp] = ['f', 'd', 'r', 'b'].map((k) => Number(row[`${k}${i}`] ?? 0)) as [
        number,
        number,
        number,
        number,
      ];
      if (ctx.apply && deleted < folded) throw keptByTrigger(child, folded - deleted);
      if (backups && backedUp !== repointed) {
        // Every changed row is backed up, or the batch does not commit.
        unfusable.add(child.id);
        throw new BatchRetry(`${child.id}: re-pointed rows changed their key beyond the re-point (a trigger?)`);
      }
      if (backups && deleted + repointed > 0) await listBackupTable(ctx, child);
      ctx.counts.childRowsMerged += deleted;
      ctx.counts.childRowsRepointed += repointed;
    }
  }
}

/** One statement for `wave` (leaves of distinct tables): the CTEs of each, then its counts f<i>, d<i>, r<i>, b<i>. */
function leavesStatement(ctx: BatchContext, wave: Leaf[], backups: boolean): Sql {
  const leaves = wave.map((leaf, i) => leafParts(ctx, leaf, i, backups));
  return sql`
    with ${sql.join(leaves.flatMap((l) => l.ctes))}
    select ${sql.join(leaves.flatMap((l) => l.counts))}`;
}

/** The CTEs of one leaf (named with `i`) and its counts. */
function leafParts(
  ctx: BatchContext,
  { ref, refmap, lr, sr }: Leaf,
  i: number,
  backups: boolean,
): { ctes: Sql[]; counts: Sql[] } {
  const child = ref.child;
  const index = collidingIndexes(child, ref)[0];
  const name = (what: string) => sql.id(`rd_${what}_${i}`);
  const [fold, deletedRows, updated, updatedBackup] = ['fold', 'deleted', 'updated', 'updated_backup'].map(name) as [
    Sql,
    Sql,
    Sql,
    Sql,
  ];
  const pk = child.primaryKey!;
  const table = tableRef(child);
  const backupTable = sql.id(BACKUP_SCHEMA, backupTableName(child));
  const cols = sql.join(child.columns.map((c) => sql.id(c.name)));
  const values = (alias: string) => sql.join(child.columns.map((c) => sql.id(alias, c.name)));
  const seq = sql`nextval(${`${BACKUP_SCHEMA}.seq`})`;
  // The survivor's key as the child holds it; row `alias` names a loser of the refmap `r`.
  const survivor = (k: number) => childValue(ref, sql`r.${sql.id(sr[k]!)}`);
  const atLoser = (alias: string) =>
    holdsKey(
      ref,
      alias,
      lr.map((c) => sql`r.${sql.id(c)}`),
    );
  const folded = (alias: string) => sql`exists (select 1 from ${fold} m where ${pkMatches(child, alias, 'm', 'l')})`;
  /** Column `c` of row `alias` as the update leaves it. */
  const after = (alias: string, c: string) => {
    const k = ref.columns.indexOf(c);
    return k >= 0 ? survivor(k) : col(alias, c);
  };
  const ctes: Sql[] = [];
  if (index) {
    ctes.push(sql`${fold} as (${collisionQuery(child, ref, refmap, index)})`);
    // Whom each folded row was merged into (the merge map, journal/merge-map.ts; a dry run's own copy).
    if (ctx.backup)
      ctes.push(sql`${name('remembered')} as (
        insert into ${currentMergeMap()} (run_id, table_schema, table_name, loser, survivor)
        select ${ctx.runId}, ${child.schema}, ${child.name}, to_jsonb(lx.*), to_jsonb(sx.*)
          from ${fold} m
          join ${table} lx on ${pkMatches(child, 'lx', 'm', 'l')}
          join ${table} sx on ${pkMatches(child, 'sx', 'm', 's')})`);
    if (backups)
      ctes.push(sql`${name('folded_backup')} as (
        insert into ${backupTable} (_rd_run, _rd_seq, _rd_op, _rd_columns, ${sql.id(KEY)}, ${cols})
        select ${ctx.runId}, ${seq}, 'delete', null, null, ${values('t')}
          from ${table} t
         where ${folded('t')})`);
    ctes.push(sql`${deletedRows} as (delete from ${table} t where ${folded('t')} returning 1)`);
  }
  const notFolded = (alias: string) => (index ? sql` and not ${folded(alias)}` : sql``);
  const set = sql.join(ref.columns.map((c, k) => sql`${sql.id(c)} = ${survivor(k)}`));
  ctes.push(sql`${updated} as (
    update ${table} t
       set ${set}
      from ${refmap} r
     where ${atLoser('t')}${notFolded('t')}
    returning t.*)`);
  if (backups) {
    // Each re-pointed row as it was (o, this statement's snapshot) beside what the update left (u):
    // found by the key the update gave it (a join table keyed by its references changes key).
    const rekeys = pk.some((c) => ref.columns.includes(c));
    const key = rekeys ? sql`array[${sql.join(pk.map((c) => sql`(${after('o', c)})::text`))}]` : sql`null`;
    ctes.push(sql`${updatedBackup} as (
      insert into ${backupTable} (_rd_run, _rd_seq, _rd_op, _rd_columns, ${sql.id(KEY)}, ${cols}, ${sql.id(AFTER)})
      select ${ctx.runId}, ${seq}, 'update', ${ref.columns}::text[], ${key}, ${values('o')}, md5((u.*)::text)
        from ${table} o
        join ${refmap} r on ${atLoser('o')}
        join ${updated} u on ${and(pk.map((c) => sql`${col('u', c)} = ${after('o', c)}`))}
       where true${notFolded('o')}
      returning 1)`);
  }
  const counted = (what: Sql | null, k: string) =>
    sql`${what ? sql`(select count(*) from ${what})` : sql`0`} as ${sql.id(`${k}${i}`)}`;
  return {
    ctes,
    counts: [
      counted(index ? fold : null, 'f'),
      counted(index ? deletedRows : null, 'd'),
      counted(updated, 'r'),
      counted(backups ? updatedBackup : null, 'b'),
    ],
  };
}

/** As deleteLosers says it: a BEFORE DELETE trigger kept rows the plan deleted and backed up. */
function keptByTrigger(table: Table, left: number): RowdoctorError {
  return new RowdoctorError(
    `Deleting rows of ${table.id}: ${left} of them are still there after the DELETE — a BEFORE DELETE trigger ` +
      'kept them (an application-level soft delete?). The batch was rolled back; nothing of it was changed.',
    {
      hint:
        `Declare the column the trigger sets as the soft-delete marker of ${table.id} in the config, ` +
        'or disable the trigger for the repair.',
    },
  );
}
