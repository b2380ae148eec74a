import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { touchRows, type Touches } from '../support/application.js';
import { tableStats, type TableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { musicBrainzShape } from '../support/musicbrainz-shape.js';
import { runCli, userTables, writeConfig, type RepairDoc } from '../support/run.js';

/**
 * Issue #27's acceptance on a MusicBrainz-shaped schema: ~300 tables, ~40 references into artist
 * (credits, aliases, tags, link tables, the 1:1 artist_meta, partitioned artist_release with unique
 * indexes only on its partitions) and three dozen groups of duplicate artists. The dry run promises
 * what --apply does; every group is merged but the one the server refuses (an artist it would relate
 * to itself); an application touching the groups' artists meanwhile never waits 500 ms for
 * rowdoctor's row locks (its lock_timeout says so — not a clock on rowdoctor); the re-run changes
 * nothing; undo restores every table.
 *
 * `npm run test:scale`, alone on the machine (CI runs it after `npm test`): a lock wait measured while
 * other test files load the same two cores measures them, so only there is it asserted.
 */
const shape = musicBrainzShape();
const CONFIG = 'rules:\n  - { check: duplicate-rows, table: artist, key: [name] }\n';

let db: TestDb;
let config: string;
let original: Record<string, string>;
let before: TableStats;
let dry: Awaited<ReturnType<typeof repair>>;
let applied: Awaited<ReturnType<typeof repair>>;
let seen: Touches;
beforeAll(async () => {
  db = await freshDatabase(shape.sql);
  config = writeConfig(CONFIG);
  original = await db.checksums();
  before = await tableStats(db);
}, 120_000);
afterAll(() => db.drop());

/** `repair --format json`, with rowdoctor's own statistics (its longest batch transaction) from stderr. */
async function repair(...args: string[]) {
  const res = await runCli(
    ['repair', '--database-url', db.url, '--config', config, '--no-discover', '--format', 'json', ...args],
    { env: { ROWDOCTOR_REPORT_STATS: '1' } },
  );
  const stats = /rowdoctor-stats (.*)/.exec(res.stderr)?.[1];
  return {
    ...res,
    doc: (res.stdout.trim() ? JSON.parse(res.stdout) : null) as RepairDoc,
    stats: (stats ? JSON.parse(stats) : {}) as { longestTransactionMs?: number; batches?: number },
  };
}

describe('merging artists on a MusicBrainz-shaped schema', () => {
  it('is a schema of several hundred tables with dozens of references into artist', () => {
    expect(shape.tables).toBeGreaterThanOrEqual(290);
    expect(shape.references).toBeGreaterThanOrEqual(38);
  });

  it('the dry run changes nothing', async () => {
    dry = await repair();
    expect(dry.code, dry.stderr).toBe(1);
    expect(await db.checksums()).toEqual(original);
  }, 120_000);

  it('--apply does what the dry run said: every group merged but the one the server refuses', async () => {
    const application = touchRows(db.url, 'artist', 'id', shape.duplicateIds, 500);
    applied = await repair('--apply');
    seen = await application.stop();
    console.info(
      `merge-musicbrainz-shape: ${shape.tables} tables, ${shape.references} references into artist, ` +
        `${shape.groups} groups; application: ${JSON.stringify(seen)}; rowdoctor: ${JSON.stringify(applied.stats)}`,
    );
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.doc.actions).toEqual(dry.doc.actions);
    const [action] = applied.doc.actions;
    expect(action).toMatchObject({ groups: shape.groups, rowsDeleted: shape.losers, skipped: 1 });
    expect(action!.skippedGroups).toHaveLength(1);
    expect(action!.skippedGroups[0]!.ids.map(Number).sort()).toEqual([...shape.refusedGroup].sort());
    expect(action!.skippedGroups[0]!.reason).toMatch(
      /check constraint l_artist_artist_check on public\.l_artist_artist/,
    );
    // every kind of child collision was folded: (artist, tag) keys, link tables, artist_meta, the partitions'
    for (const t of ['artist_tag', 'l_artist_url', 'artist_meta', 'artist_release', 'artist_alias', 'l_artist_artist'])
      expect(
        before[`public.${t}`]!.rows - (await db.query<{ n: number }>(`select count(*)::int as n from ${t}`))[0]!.n,
        t,
      ).toBeGreaterThan(0);

    // conservation: the artists merged away and the child rows folded are exactly the rows gone
    const after = await tableStats(db);
    expect(before['public.artist']!.rows - after['public.artist']!.rows).toBe(shape.losers);
    const others = Object.keys(before).filter((t) => t !== 'public.artist');
    expect(others.reduce((n, t) => n + before[t]!.rows - after[t]!.rows, 0)).toBe(action!.childRowsMerged);
    expect(await db.query('select name from artist group by name having count(*) > 1')).toEqual([
      { name: `duplicate ${Math.floor(shape.groups / 2)}` },
    ]);
  }, 180_000);

  // A lock wait measures the machine as much as rowdoctor: asserted where nothing else runs (npm run
  // test:scale sets ROWDOCTOR_LOCK_WAITS; CI runs it alone). Elsewhere the figures are still printed.
  it.runIf(process.env.ROWDOCTOR_LOCK_WAITS === '1')(
    'the application touching the merged artists meanwhile never waited 500 ms for a row',
    () => {
      // It did meet rowdoctor's row locks (else this measured nothing), and none held it 500 ms.
      expect(seen.contended, JSON.stringify(seen)).toBeGreaterThan(0);
      expect(seen.timedOut, JSON.stringify(seen)).toBe(0);
    },
  );

  it('the re-run changes nothing: the refused group is refused again', async () => {
    // The application's tables (the journal records the run).
    const merged = userTables(await db.checksums());
    const again = await repair('--apply');
    expect(again.doc.actions[0], again.stderr).toMatchObject({
      groups: 1,
      skipped: 1,
      rowsDeleted: 0,
      childRowsRepointed: 0,
      childRowsMerged: 0,
    });
    expect(userTables(await db.checksums())).toEqual(merged);
  }, 120_000);

  it('undo restores every table bit for bit', async () => {
    const undo = await runCli(['undo', applied.doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const restored = await db.checksums();
    for (const [t, sum] of Object.entries(original)) expect(restored[t], t).toBe(sum);
  }, 120_000);
});
