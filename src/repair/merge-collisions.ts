import { sql } from 'kysely';
import type { Table, UniqueIndex } from '../catalog/types.js';
import { and, col, tableRef, type Sql } from '../sql/build.js';
import type { WorkTable } from '../sql/work-table.js';
import { pkMatches, pkOf, run, type BatchContext } from './context.js';
import { childValue, holdsKey, type Reference } from './references.js';

/**
 * Unique keys of the child that re-pointing could break: every valid unique index or constraint
 * (primary, plain, partial, expression, NULLS NOT DISTINCT, deferrable) whose key or predicate
 * mentions a re-pointed column — a partitioned child's own and its partitions' (each scoped by its
 * partition's constraint, so a row that the update moves into another partition collides there).
 */
export function collidingIndexes(child: Table, ref: Reference): UniqueIndex[] {
  return [...child.uniqueIndexes, ...child.partitionUniqueIndexes].filter(
    (i) => i.valid && [...i.parts, i.predicate ?? ''].some((text) => ref.columns.some((c) => mentions(text, c))),
  );
}

/** The deparsed expression names the column (bare or quoted); a false positive costs one query. */
export function mentions(text: string, column: string): boolean {
  if (text.includes(`"${column.replace(/"/g, '""')}"`)) return true;
  const bare = column.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9_$"])${bare}($|[^A-Za-z0-9_$"])`).test(text);
}

/**
 * Children (moved ones, and siblings already in place) grouped by the key they will have under
 * `index` after re-pointing — its parts and predicate evaluated by the server on the row as the
 * update will leave it, so expression and partial keys collide exactly as the index says; in each
 * group the sibling already in place survives, else the lowest row key.
 */
export async function collisionMap(
  ctx: BatchContext,
  child: Table,
  ref: Reference,
  refmap: WorkTable,
  index: UniqueIndex,
  deferred: WorkTable[] = [],
): Promise<WorkTable> {
  const name = ctx.nextTemp();
  await run(
    ctx,
    sql`create temp table ${name} on commit drop as ${collisionQuery(child, ref, refmap, index, deferred)}`,
    'plan',
  );
  return name;
}

/** The query behind collisionMap: (l0…, s0…) per child row merged into a sibling under `index`. */
export function collisionQuery(
  child: Table,
  ref: Reference,
  refmap: WorkTable,
  index: UniqueIndex,
  deferred: WorkTable[] = [],
): Sql {
  const pk = pkOf(child);
  // Losers already deferred (merged under another key of the child) are going: they collide with nothing.
  const going = sql.join(
    deferred.map((d) => sql` and not exists (select 1 from ${d} dl where ${pkMatches(child, 't', 'dl', 'l')})`),
    sql``,
  );
  const parts = index.parts.map((p) => sql.raw(p));
  const predicate = index.predicate ? sql.raw(index.predicate) : sql`true`;
  const tuple = sql.join(parts.map((_, i) => sql.id(`u${i}`)));
  const pkCols = sql.join(pk.map((_, i) => sql.id(`p${i}`)));
  const nonNull = index.nullsNotDistinct ? sql`true` : and(parts.map((_, i) => sql`${sql.id(`u${i}`)} is not null`));
  // The row as the update leaves it: the re-pointed columns take the survivor's values.
  const after = sql.join(
    child.columns.map((c) => {
      const i = ref.columns.indexOf(c.name);
      return sql`${i >= 0 ? childValue(ref, sql`r.${sql.id(`sr${i}`)}`) : col('t', c.name)} as ${sql.id(c.name)}`;
    }),
  );
  // Bare column names in the parts and the predicate: inside `x` they are the row after the update,
  // in `in_place` (one FROM item) the row as it is.
  const keyParts = sql.join(parts.map((p, i) => sql`${p} as ${sql.id(`u${i}`)}`));
  // NULLS NOT DISTINCT: a NULL part collides too, which IN never says.
  const collides = index.nullsNotDistinct
    ? sql`exists (select 1 from moved mv where (${tuple}) is not distinct from (${sql.join(parts)}))`
    : sql`(${sql.join(parts)}) in (select ${tuple} from moved where ${nonNull})`;
  return sql`
    with moved as (
      select ${sql.join(pk.map((c, i) => sql`${col('t', c)} as ${sql.id(`p${i}`)}`))}, ${tuple}
        from ${tableRef(child)} t
        join ${refmap} r on ${holdsKey(
          ref,
          't',
          ref.columns.map((_, i) => sql`r.${sql.id(`lr${i}`)}`),
        )}
        cross join lateral (select ${keyParts}, ${predicate} as rd_in from (select ${after}) x) k
       where k.rd_in${going}
    ),
    in_place as (
      select ${sql.join(pk.map((c, i) => sql`${col('t', c)} as ${sql.id(`p${i}`)}`))}, ${keyParts}
        from ${tableRef(child)} t
       where ${predicate}
         and ${collides}
         and not exists (select 1
                           from moved mv
                          where ${and(pk.map((c, i) => sql`mv.${sql.id(`p${i}`)} = ${col('t', c)}`))})
    ),
    candidates as (
      select ${pkCols}, ${tuple}, 1 as prio from moved where ${nonNull}
      union all
      select ${pkCols}, ${tuple}, 0 from in_place
    ),
    ranked as (
      select ${pkCols}, ${sql.join(pk.map((_, i) => sql`first_value(${sql.id(`p${i}`)}) over w as ${sql.id(`s${i}`)}`))}
        from candidates
      window w as (partition by ${tuple} order by prio, ${pkCols})
    )
    select ${sql.join(pk.map((_, i) => sql`${sql.id(`p${i}`)} as ${sql.id(`l${i}`)}`))},
           ${sql.join(pk.map((_, i) => sql.id(`s${i}`)))}
      from ranked
     where (${pkCols}) is distinct from (${sql.join(pk.map((_, i) => sql.id(`s${i}`)))})`;
}
