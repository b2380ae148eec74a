import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { BIN } from '../support/run.js';

// util-linux `script` runs the CLI under a pseudo-terminal, as an operator's shell would.
const hasScript = spawnSync('script', ['--version']).status === 0;

/** Run bin/rowdoctor.js with stdout and stderr on a terminal; returns everything the terminal showed. */
function onTerminal(args: string[]): Promise<{ code: number | null; screen: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, BIN, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      env: { ...process.env, NO_COLOR: '1', DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.on('data', (d) => (screen += d));
    child.stderr.on('data', (d) => (screen += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen: screen.replace(/\r/g, '') }));
  });
}

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table item (id serial primary key, k int not null);
    insert into item (k) select g from generate_series(1, 300) g;
    insert into item (k) select g from generate_series(1, 300) g;
    create index on item (k);
    create table item_child (id serial primary key, item_id int not null references item (id));
    insert into item_child (item_id) select id from item;
  `);
});
afterAll(async () => {
  await db?.drop();
});

describe.skipIf(!hasScript)('on a terminal', () => {
  it('repair and undo show a progress line per batch: rows changed, the batch size in use, elapsed, an estimate', async () => {
    const repair = await onTerminal([
      'repair',
      '--database-url',
      db.url,
      '--duplicates',
      'item(k)',
      '--no-discover',
      '--apply',
      '--batch-size',
      '40',
    ]);
    expect(repair.code, repair.screen).toBe(0);
    const lines = repair.screen.split('\n').filter((l) => /duplicate-rows public\.item: groups/.test(l));
    // Time-sized batches start small (a slow table then costs one short transaction) and grow to --batch-size.
    expect(lines[0]).toMatch(
      /^\s+\d+\.\ds {2}duplicate-rows public\.item: groups 1–\d+ of 300 · 0 rows changed so far · batch of \d+ · \d+\.\ds … \d+\.\ds$/,
    );
    const later = lines.slice(1);
    expect(later.length).toBeGreaterThan(2);
    for (const line of later)
      expect(line).toMatch(
        /groups \d+–\d+ of 300 · [\d,]+ rows changed so far · batch of \d+ · \d+\.\ds · ~\d+\.\ds left … \d+\.\ds$/,
      );
    // The batch size in use, never above --batch-size.
    for (const line of lines) expect(Number(/batch of (\d+) /.exec(line)![1])).toBeLessThanOrEqual(40);
    expect(Number(/([\d,]+) rows changed so far/.exec(later.at(-1)!)![1]!.replace(/,/g, ''))).toBeGreaterThan(0);
    const runId = /APPLIED as run (\S+)/.exec(repair.screen)?.[1] ?? /rowdoctor undo (\S+)/.exec(repair.screen)![1]!;

    const undo = await onTerminal(['undo', runId, '--database-url', db.url, '--apply', '--batch-size', '50']);
    expect(undo.code, undo.screen).toBe(0);
    const undoLines = undo.screen.split('\n').filter((l) => l.includes(`undo ${runId}: `));
    expect(undoLines.length).toBeGreaterThan(2);
    expect(undoLines[0]).toMatch(/0 rows taken back · batch of \d+ rows · \d+\.\ds … \d+\.\ds$/);
    for (const line of undoLines.slice(1))
      expect(line).toMatch(
        /: repair batch(?:es \d+–| )\d+ of \d+, last first · [\d,]+ rows taken back · batch of \d+ rows · \d+\.\ds · ~\d+\.\ds left … \d+\.\ds$/,
      );
  });
});
