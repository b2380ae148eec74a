import { sql } from 'kysely';
import type { Db } from '../db.js';
import { RowdoctorError, describePgError, isPgError } from '../errors.js';
import { keyExpr, tableRef, fragment } from '../sql/build.js';
import type { ExpectedUnique } from './types.js';

/** A unique key as PostgreSQL itself prints it (pg_get_indexdef / pg_get_expr), ready to compare. */
export interface NormalizedKey {
  parts: string[];
  predicate: string | null;
}

class Rollback extends Error {}

/**
 * Let the server normalise each expected key: build the proposed index on an empty temp copy of
 * the table (CREATE TEMP TABLE … LIKE) and read back its definition, then roll it all back. The
 * comparison with real indexes is then like for like — same deparser, same quoting, same casts —
 * and an expression that could not be indexed (not immutable, wrong type) fails here, clearly.
 */
export async function normalizeKeys(db: Db, expected: ExpectedUnique[]): Promise<Map<ExpectedUnique, NormalizedKey>> {
  const out = new Map<ExpectedUnique, NormalizedKey>();
  const problems: string[] = [];
  await db
    .transaction()
    .execute(async (tx) => {
      const copies = new Map<number, string>();
      for (const [i, e] of expected.entries()) {
        let copy = copies.get(e.table.oid);
        if (!copy) {
          copy = `rd_like_${e.table.oid}`;
          await sql`create temp table ${sql.id(copy)} (like ${tableRef(e.table)})`.execute(tx);
          copies.set(e.table.oid, copy);
        }
        const index = `rd_expect_${i}`;
        await sql`savepoint ${sql.id(index)}`.execute(tx);
        try {
          await sql`create unique index ${sql.id(index)} on ${sql.id(copy)} (${sql.join(e.key.map((k) => keyExpr(k, null)))})
          ${e.nullsNotDistinct ? sql`nulls not distinct` : sql``} ${e.where ? sql`where ${fragment(e.where)}` : sql``}`.execute(
            tx,
          );
          const r = await sql<{ parts: string[]; predicate: string | null }>`
          select array(select pg_get_indexdef(i.indexrelid, k, true) from generate_series(1, i.indnkeyatts) k order by k)::text[] as parts,
                 pg_get_expr(i.indpred, i.indrelid, true) as predicate
            from pg_index i where i.indexrelid = ${`pg_temp.${index}`}::regclass`.execute(tx);
          out.set(e, r.rows[0]!);
          await sql`release savepoint ${sql.id(index)}`.execute(tx);
        } catch (err) {
          await sql`rollback to savepoint ${sql.id(index)}`.execute(tx);
          if (!isPgError(err)) throw err;
          problems.push(`  ${e.table.id}: ${describePgError(err)}`);
        }
      }
      throw new Rollback();
    })
    .catch((e) => {
      if (!(e instanceof Rollback)) throw e;
    });
  if (problems.length) {
    throw new RowdoctorError(`These expected unique keys cannot be built as an index:\n${problems.join('\n')}`, {
      hint: 'Index expressions must be immutable and scopes boolean; NULLS NOT DISTINCT needs PostgreSQL 15.',
    });
  }
  return out;
}
