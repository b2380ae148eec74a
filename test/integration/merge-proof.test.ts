import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { holdLock, untilRepairWaits } from '../support/locks.js';
import { runCli, writeConfig } from '../support/run.js';
import { expectNothingLost, ledger } from '../support/ledger.js';

let db: TestDb;
afterEach(() => db.drop());

// audit.owner_ref points at users through a reference the database does not enforce; the config
// declares it (reported, not repaired), so the merge re-points it.
const USERS = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n';

const CONFIG = [
  'rules:',
  '  - check: duplicate-rows',
  '    table: users',
  '    key: [email]',
  '    repair: merge',
  '  - check: orphaned-rows',
  '    table: audit',
  '    column: owner_ref',
  '    references: users.id',
  '    repair: report',
  '',
].join('\n');

async function repair(config: string, ...extra: string[]) {
  const res = await runCli([
    ...['repair', '--config', config, '--no-discover', '--format', 'json', '--database-url', db.url],
    ...extra,
  ]);
  type Action = Record<string, number> & { check: string; notes?: string[]; skippedGroups?: unknown[] };
  return { ...res, doc: JSON.parse(res.stdout) as { runId: string; actions: Action[] } };
}

describe('a merge proves its losers unreferenced under the lock before deleting them', () => {
  it('a row the application writes for a loser while the batch runs keeps that loser for the next run', async () => {
    db = await freshDatabase(`
      create table users (id int primary key, email text not null, n int not null);
      insert into users values (1, 'a', 1), (2, 'a', 2), (3, 'b', 3), (4, 'b', 4);
      create table audit (id int primary key, owner_ref int, n int not null);
      insert into audit values (1, 1, 10), (2, 2, 20), (3, 4, 30);
      -- Test only: the statement that re-points audit rows waits, once it has updated them, on an
      -- advisory lock the test holds, so the application can write in the window that follows.
      create function pause() returns trigger language plpgsql as
        $$ begin perform pg_advisory_xact_lock(4242); return null; end $$;
      create trigger pause after update on audit for each statement execute function pause();
    `);
    const config = writeConfig(CONFIG);
    const before = await db.query('select id, email, n from users order by id');

    // Hold the re-pointing statement after its update; the application writes a row for loser 2.
    const release = await holdLock(db, 'select pg_advisory_xact_lock(4242)');
    const running = repair(config, '--apply', '--lock-timeout', '30s');
    await untilRepairWaits(db);
    await db.exec('insert into audit values (4, 2, 40)');
    await release();
    const first = await running;
    expect(first.code, first.stderr + first.stdout).toBe(1); // a group was skipped
    expect(first.doc.actions[0]).toMatchObject({ groups: 2, rowsDeleted: 1, childRowsRepointed: 2, skipped: 1 });
    expect(first.doc.actions[0]!.skippedGroups).toEqual([
      expect.objectContaining({
        key: ['a'],
        reason: expect.stringMatching(
          /losers kept: still referenced after re-pointing by public\.audit \(config reference: 1 row\)/,
        ),
      }),
    ]);
    // Nothing dangles: every audit row names a user that exists.
    expect(
      await db.query('select a.id from audit a left join users u on u.id = a.owner_ref where u.id is null'),
    ).toEqual([]);
    expect(await db.query('select count(*)::int as rows, sum(n)::int as n from audit')).toEqual([{ rows: 4, n: 100 }]);

    await db.exec('drop trigger pause on audit');
    const second = await repair(config, '--apply');
    expect(second.code, second.stderr).toBe(0);
    expect(second.doc.actions[0]).toMatchObject({ groups: 1, rowsDeleted: 1, childRowsRepointed: 1, skipped: 0 });
    expect(await db.query('select id, owner_ref from audit order by id')).toEqual([
      { id: 1, owner_ref: 1 },
      { id: 2, owner_ref: 1 },
      { id: 3, owner_ref: 3 },
      { id: 4, owner_ref: 1 },
    ]);
    expect(await db.query('select count(*)::int as rows, sum(n)::int as n from audit')).toEqual([{ rows: 4, n: 100 }]);

    for (const run of [second.doc.runId, first.doc.runId]) {
      const undo = await runCli(['undo', run, '--apply', '--database-url', db.url]);
      expect(undo.code, undo.stderr).toBe(0);
    }
    expect(await db.query('select id, email, n from users order by id')).toEqual(before);
    expect(await db.query('select id, owner_ref, n from audit order by id')).toEqual([
      { id: 1, owner_ref: 1, n: 10 },
      { id: 2, owner_ref: 2, n: 20 },
      { id: 3, owner_ref: 4, n: 30 },
      { id: 4, owner_ref: 2, n: 40 },
    ]);
  });
});

describe('a merge never fires a cascade', () => {
  it('a row the application adds, through an ON DELETE CASCADE key, for a child merged away at depth survives', async () => {
    db = await freshDatabase(`
      create table users (id int primary key, email text not null);
      create table membership (id int primary key, user_id int not null references users (id) on delete cascade,
                               team_id int not null, unique (team_id, user_id));
      create table membership_role (id serial primary key,
                                    membership_id int not null references membership (id) on delete cascade,
                                    role text not null, n int not null default 1);
      insert into users values (1, 'a@x'), (2, 'a@x');
      insert into membership values (1, 1, 10), (2, 2, 10); -- membership 2 collides once re-pointed: merged into 1
      insert into membership_role (membership_id, role, n) values (2, 'admin', 5);
    `);
    const before = await ledger(db);
    // The application holds the role row the merge re-points, then adds a role for membership 2.
    const app = new pg.Client(db.url);
    await app.connect();
    await app.query('begin');
    await app.query('select * from membership_role where id = 1 for update');
    const running = repair(writeConfig(USERS), '--apply', '--lock-timeout', '30s');
    await untilRepairWaits(db);
    await app.query("insert into membership_role (membership_id, role, n) values (2, 'editor', 7)");
    await app.query('commit');
    await app.end();
    const res = await running;
    expect(res.code, res.stderr).toBe(0);
    expect(await db.query('select membership_id, role, n from membership_role order by id')).toEqual([
      { membership_id: 1, role: 'admin', n: 5 },
      { membership_id: 1, role: 'editor', n: 7 },
    ]);
    expect(res.doc.actions[0]).toMatchObject({ rowsDeleted: 1, childRowsMerged: 1, childRowsRepointed: 2 });
    // Everything that was there, and the application's row, is in a table or in the backup.
    await expectNothingLost(db, { ...before, 'public.membership_role': { rows: 2, sums: { id: '3', n: '12' } } });
  });
});

describe('merge counts', () => {
  it('childRowsMerged counts merges at every depth, in the dry run and the apply alike', async () => {
    db = await freshDatabase(`
      create table users (id int primary key, email text not null);
      create table membership (id int primary key, user_id int not null references users (id),
                               team_id int not null, unique (team_id, user_id));
      create table membership_role (id int primary key, membership_id int not null references membership (id),
                                    role text not null, unique (membership_id, role));
      insert into users values (1, 'a'), (2, 'a');
      insert into membership values (1, 1, 10), (2, 2, 10);
      insert into membership_role values (1, 1, 'admin'), (2, 2, 'admin');
    `);
    const before = await ledger(db);
    const dry = await repair(writeConfig(USERS));
    const applied = await repair(writeConfig(USERS), '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    // users 2, membership 2 and membership_role 2 go: one row of the rule's table, two child rows at depth 1 and 2
    expect(applied.doc.actions[0]).toMatchObject({ rowsDeleted: 1, childRowsMerged: 2 });
    expect(dry.doc.actions[0]).toMatchObject({ rowsDeleted: 1, childRowsMerged: 2 });
    await expectNothingLost(db, before);
  });
});

describe('a delete the database does not do', () => {
  it('a BEFORE DELETE trigger that keeps the rows (a soft delete of its own): exit 2, the batch rolled back', async () => {
    db = await freshDatabase(`
      create table customer (id int primary key, email text not null, deleted_at timestamptz);
      insert into customer values (1, 'a', null), (2, 'a', null);
      create function soft_delete() returns trigger language plpgsql as
        $$ begin update customer set deleted_at = '2025-01-01' where id = old.id; return null; end $$;
      create trigger soft_delete before delete on customer for each row execute function soft_delete();
    `);
    const before = await db.checksums();
    const res = await runCli([
      ...['repair', '--database-url', db.url, '--duplicates', 'customer(email)', '--no-discover', '--apply'],
    ]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/1 of them are still there after the DELETE — a BEFORE DELETE trigger kept them/);
    const userTables = (sums: Record<string, string>) =>
      Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));
    expect(userTables(await db.checksums())).toEqual(userTables(before));
    expect(await db.query('select status from rowdoctor_backup.runs')).toEqual([{ status: 'failed' }]);
  });
});
