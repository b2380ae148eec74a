import { sql } from 'kysely';
import type { Db } from '../db.js';

interface ReplicaLag {
  name: string;
  lagMs: number;
}

/**
 * The streaming replicas of this primary whose replay lag (pg_stat_replication.replay_lag, which
 * keeps growing while a replica's replay is behind or paused) exceeds `maxMs`. Without the
 * pg_monitor role the lag columns read NULL, and nothing can be judged: an empty list.
 */
async function laggingReplicas(db: Db, maxMs: number): Promise<ReplicaLag[]> {
  const { rows } = await sql<{ name: string; lag_ms: number }>`
    select coalesce(nullif(application_name, ''), client_addr::text, 'pid ' || pid) as name,
           (extract(epoch from replay_lag) * 1000)::float8 as lag_ms
      from pg_stat_replication
     where replay_lag > make_interval(secs => ${maxMs / 1000})
     order by replay_lag desc`.execute(db);
  return rows.map((r) => ({ name: r.name, lagMs: r.lag_ms }));
}

/**
 * Between batches: wait while any streaming replica's replay lag exceeds `maxMs` (0 = never wait),
 * saying so once per pause on stderr, so a repair never lets the replicas fall further behind.
 */
export async function waitForReplicas(db: Db, maxMs: number, say = stderrLine): Promise<void> {
  if (maxMs <= 0) return;
  let said = false;
  for (;;) {
    const lagging = await laggingReplicas(db, maxMs);
    if (!lagging.length) {
      if (said) say('replicas caught up; going on');
      return;
    }
    if (!said) {
      const list = lagging.map((r) => `${r.name} ${(r.lagMs / 1000).toFixed(1)}s`).join(', ');
      say(`pausing: replica replay lag ${list} exceeds --max-replica-lag ${maxMs / 1000}s`);
      said = true;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function stderrLine(line: string): void {
  process.stderr.write(`rowdoctor: ${line}\n`);
}
