import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli } from '../support/run.js';
import { tablesRead } from '../support/tables-read.js';

/**
 * Weighing the references the catalog does not hold (an `X_id` name, a polymorphic pair) costs a pass
 * over each candidate's table. A command pays for it only when it uses them: a scan or verify with
 * discovery; a repair unless --no-infer, and without discovery only those into the tables it may change.
 * `scan --no-discover` of one rule reads that rule's table and nothing else, whatever else the database
 * holds (10M rows: 7–8 s for the inference it did not use, against 1.6 s for the check); a repair of
 * 100M rows spent 9+ minutes weighing `user_id` columns into a table it never touched. Asserted by
 * what the server counted (pg_stat_all_tables).
 */
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table accounts (id int primary key, email text not null);
    insert into accounts select g, 'a' || (g % 40) || '@x' from generate_series(1, 100) g;
    -- A reference by name only (no foreign key), and a Rails polymorphic pair with its index.
    create table posts (id int primary key);
    insert into posts select generate_series(1, 50);
    create table comments (id int primary key, post_id int);
    insert into comments select g, 1 + g % 60 from generate_series(1, 200) g;
    create table notes (id int primary key, noteable_type text not null, noteable_id int not null);
    create index on notes (noteable_type, noteable_id);
    insert into notes select g, 'Post', 1 + g % 50 from generate_series(1, 100) g;
    -- A reference by name only into the table a merge changes: the one a repair must weigh.
    create table sessions (id int primary key, account_id int);
    insert into sessions select g, 1 + g % 100 from generate_series(1, 300) g;
  `);
  // The set-up session's own counts (the index build's scan, the inserts) reach the server a second
  // after it goes idle: wait for them, or they land after a test's pg_stat_reset() as reads of its own.
  await tablesRead(db, 'public');
});
afterAll(() => db.drop());

const WEIGHED = ['comments', 'notes'];
const referenceAssumptions = (stdout: string) =>
  (JSON.parse(stdout) as { assumptions: { kind: string; table: string; column: string }[] }).assumptions.filter((a) =>
    a.kind.includes('reference'),
  );

async function readBy(args: string[]): Promise<{ read: string[]; stdout: string }> {
  await db.query('select pg_stat_reset()');
  const res = await runCli([...args, '--database-url', db.url, '--config', '/dev/null', '--format', 'json']);
  expect(res.code, res.stderr).not.toBe(2);
  return { read: await tablesRead(db, 'public'), stdout: res.stdout };
}

describe('scan', () => {
  it('with discovery weighs every candidate reference (the fixture has some to weigh)', async () => {
    const { read, stdout } = await readBy(['scan', '--duplicates', 'accounts(email)']);
    expect(read).toEqual(expect.arrayContaining(WEIGHED));
    expect(referenceAssumptions(stdout).map((a) => a.kind)).toContain('inferred-reference');
  });

  it('with --no-discover reads the rule’s table and no other', async () => {
    const { read, stdout } = await readBy(['scan', '--duplicates', 'accounts(email)', '--no-discover']);
    expect(read).toEqual(['accounts']);
    expect(referenceAssumptions(stdout)).toEqual([]);
  });
});

describe('repair and undo', () => {
  it('repair weighs the references into the tables it may change, and no other', async () => {
    const { read, stdout } = await readBy(['repair', '--duplicates', 'accounts(email)', '--no-discover']);
    // sessions.account_id names accounts, which the merge changes; comments.post_id names posts, which
    // it does not; a type/id pair names what its types say, known only once read: it is weighed.
    expect(read).toEqual(expect.arrayContaining(['accounts', 'sessions', 'notes']));
    expect(read).not.toContain('comments');
    const inferred = referenceAssumptions(stdout).filter((a) => a.kind === 'inferred-reference');
    expect(inferred).toEqual([expect.objectContaining({ table: 'public.sessions', column: 'account_id' })]);
  });

  it('repair --no-infer weighs none', async () => {
    const { read } = await readBy(['repair', '--duplicates', 'accounts(email)', '--no-discover', '--no-infer']);
    expect(read.filter((t) => [...WEIGHED, 'sessions'].includes(t))).toEqual([]);
  });

  it('undo follows the references its run recorded and weighs none', async () => {
    const repair = await readBy(['repair', '--duplicates', 'accounts(email)', '--no-discover', '--apply']);
    const { runId } = JSON.parse(repair.stdout) as { runId: string };
    const undo = await readBy(['undo', runId]);
    // sessions is read: the run re-pointed its rows (an inferred reference into accounts).
    expect(undo.read.filter((t) => WEIGHED.includes(t))).toEqual([]);
    expect(undo.read).toContain('accounts');
  });
});
