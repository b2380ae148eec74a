import { sql } from 'kysely';
import type { Tx } from '../db.js';
import type { Sql } from '../sql/build.js';
import type { UndoTarget } from './conflicts.js';

/**
 * Take back a table's updated rows round by round, as undo/rekeyed.ts and undo/no-key.ts do for
 * rows a run updated more than once: `fill` writes the work table `work` (the slice's update
 * backups), then `round` runs — given the assignments that give a live row `x` every stored column
 * of backup row `b` — until a round marks no backup row done. Each round returns how many backup
 * rows it marked done (`round`) and how many rows went back to what they were before the run
 * (`reverted`). Returns the sum of those.
 */
export async function revertInRounds(
  tx: Tx,
  t: Pick<UndoTarget, 'columns'>,
  work: Sql,
  fill: () => Promise<void>,
  round: (assignments: Sql) => Sql,
): Promise<number> {
  const columns = t.columns.filter((c) => !c.generated);
  if (!columns.length) return 0;
  await fill();
  const assignments = sql.join(columns.map((c) => sql`${sql.id(c.name)} = b.${sql.id(c.name)}`));
  let reverted = 0;
  for (;;) {
    const { rows } = await sql<{ round: string; reverted: string }>`${round(assignments)}`.execute(tx);
    reverted += Number(rows[0]?.reverted ?? 0);
    if (Number(rows[0]?.round ?? 0) === 0) break;
  }
  await sql`drop table ${work}`.execute(tx);
  return reverted;
}
