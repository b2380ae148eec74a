import pg from 'pg';

/** What an application touching rows during a repair met: how often rowdoctor held a row, how long it waited. */
export interface Touches {
  /** Touches made. */
  touches: number;
  /** Touches that found the row locked (NOWAIT refused) and then waited for it. */
  contended: number;
  /** Waits that ran into the application's lock_timeout. */
  timedOut: number;
  /** The longest wait for a row lock that was granted, as the application measured it. */
  longestWaitMs: number;
}

/**
 * An application that, until stopped, keeps touching rows of `table` by `column` (one of `ids` at
 * a time, round robin, `select … for key share` in autocommit — what inserting a child row does)
 * with `lock_timeout` = `lockTimeoutMs`. A touch first tries NOWAIT; when the row is held it waits,
 * and that wait is what a user of the application would have waited for rowdoctor's transaction.
 */
export function touchRows(
  url: string,
  table: string,
  column: string,
  ids: number[],
  lockTimeoutMs: number,
): { stop(): Promise<Touches> } {
  const client = new pg.Client({ connectionString: url, application_name: 'application' });
  const seen: Touches = { touches: 0, contended: 0, timedOut: 0, longestWaitMs: 0 };
  let stopping = false;
  const touch = (wait: boolean, id: number) =>
    client.query(`select 1 from ${table} where ${column} = $1 for key share${wait ? '' : ' nowait'}`, [id]);
  const loop = (async () => {
    await client.connect();
    await client.query(`set lock_timeout = ${lockTimeoutMs}`);
    for (let i = 0; !stopping; i++) {
      const id = ids[i % ids.length]!;
      seen.touches++;
      try {
        await touch(false, id);
      } catch (e) {
        if ((e as { code?: string }).code !== '55P03') throw e;
        seen.contended++;
        const began = performance.now();
        try {
          await touch(true, id);
          seen.longestWaitMs = Math.max(seen.longestWaitMs, performance.now() - began);
        } catch (e2) {
          if ((e2 as { code?: string }).code !== '55P03') throw e2;
          seen.timedOut++;
        }
      }
      // a pause between touches, so its own row locks rarely make rowdoctor set a group aside
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop.finally(() => client.end());
      return seen;
    },
  };
}
