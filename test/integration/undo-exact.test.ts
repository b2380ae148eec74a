import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

/**
 * undo restores the state before the repair bit for bit — columns a BEFORE trigger stamped, rows a
 * NOT VALID foreign key now rejects — and never overwrites what the application wrote since.
 */
let db: TestDb;
afterEach(() => db.drop());

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

const MERGE = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n';
const ORPHANS =
  'rules:\n  - check: orphaned-rows\n    table: token\n    column: user_id\n    references: users.id\n    repair: delete\n';

const FIXTURE = `
  create table users (id int primary key, email text not null);
  insert into users select i, 'u' || (i % 10) || '@x' from generate_series(1, 30) i;
  create table token (id int primary key, user_id int references users (id), label text not null,
                      updated_at timestamptz not null default '2026-01-01');
  insert into token select i, 1 + i % 30, 'token ' || i from generate_series(1, 60) i;
  create function stamp() returns trigger language plpgsql as $$
    begin new.updated_at := clock_timestamp(); return new; end $$;
  create trigger token_stamp before update on token for each row execute function stamp();
`;

async function repair(config: string, url = db.url) {
  const res = await runCli([
    'repair',
    '--config',
    writeConfig(config),
    '--no-discover',
    '--apply',
    '--format',
    'json',
    '--database-url',
    url,
  ]);
  expect(res.code, res.stderr).toBe(0);
  return (JSON.parse(res.stdout) as { runId: string }).runId;
}

async function undo(runId: string, ...extra: string[]) {
  const res = await runCli(['undo', runId, '--database-url', db.url, '--format', 'json', ...extra]);
  return { ...res, doc: res.stdout ? (JSON.parse(res.stdout) as Record<string, unknown>) : null };
}

describe('undo is exact', () => {
  it('a BEFORE UPDATE trigger that stamped the re-pointed rows: every table’s md5 as before', async () => {
    db = await freshDatabase(FIXTURE);
    const before = userTables(await db.checksums());
    const runId = await repair(MERGE);
    const stamped = await db.query<{ n: number }>(
      "select count(*)::int as n from token where updated_at > '2026-01-01'",
    );
    expect(stamped[0]!.n).toBe(40); // the tokens of the 20 merged-away users were re-pointed and stamped
    const res = await undo(runId, '--apply');
    expect(res.code, res.stderr).toBe(0);
    expect(res.doc).toMatchObject({ restored: 20, reverted: 40, conflicts: 0, inexact: [] });
    expect(userTables(await db.checksums())).toEqual(before);
  });

  it('rows a NOT VALID foreign key rejects come back as they were', async () => {
    db = await freshDatabase(`
      create table users (id int primary key);
      insert into users select generate_series(1, 10);
      create table token (id int primary key, user_id int, n int not null);
      insert into token select i, case when i % 5 = 0 then 100 + i else 1 + i % 10 end, i from generate_series(1, 30) i;
      alter table token add constraint token_user_fk foreign key (user_id) references users (id) not valid;
    `);
    const before = userTables(await db.checksums());
    const runId = await repair(ORPHANS);
    expect(await db.query('select count(*)::int as n from token')).toEqual([{ n: 24 }]);
    const res = await undo(runId, '--apply');
    expect(res.code, res.stderr).toBe(0);
    expect(res.doc).toMatchObject({ restored: 6, conflicts: 0 });
    expect(userTables(await db.checksums())).toEqual(before);
  });
});

describe('undo never overwrites what the application wrote since', () => {
  it('a re-pointed row the application changed, and one it deleted, are conflicts left alone; the rest is restored', async () => {
    db = await freshDatabase(FIXTURE);
    const runId = await repair(MERGE);
    // user 11 was merged into user 1: its tokens 10 and 40 now point at 1
    await db.exec("update token set label = 'renamed by the app' where id = 10; delete from token where id = 40;");
    const expected = userTables(await db.checksums());
    const dry = await undo(runId);
    expect(dry.code).toBe(1);
    expect(dry.doc).toMatchObject({ applied: false, restored: 20, reverted: 38, conflicts: 2 });
    expect(dry.doc!.conflictSamples).toEqual([
      { table: 'public.token', key: [10], reason: 'changed since the repair' },
      { table: 'public.token', key: [40], reason: 'deleted since the repair' },
    ]);
    expect(userTables(await db.checksums())).toEqual(expected); // a dry run changes nothing

    const res = await undo(runId, '--apply');
    expect(res.code).toBe(1);
    expect(res.doc).toMatchObject({ applied: true, restored: 20, reverted: 38, conflicts: 2 });
    expect(await db.query('select id, user_id, label from token where id in (10, 40, 41) order by id')).toEqual([
      { id: 10, user_id: 1, label: 'renamed by the app' }, // left as the application wrote it
      { id: 41, user_id: 12, label: 'token 41' }, // back on its own user
    ]);
    expect(await db.query('select count(*)::int as n from users')).toEqual([{ n: 30 }]);
  });
});

describe('a role that may not set session_replication_role', () => {
  it('the dry run names what cannot be restored exactly, and --apply refuses before changing anything', async () => {
    db = await freshDatabase(FIXTURE);
    const runId = await repair(MERGE);
    const role = `rd_undo_${randomBytes(4).toString('hex')}`;
    await db.exec(`
      create role ${role} login password 'pw';
      grant usage on schema public, rowdoctor_backup to ${role};
      grant select, insert, update, delete on all tables in schema public, rowdoctor_backup to ${role};
      grant usage on all sequences in schema rowdoctor_backup to ${role};`);
    try {
      const u = new URL(db.url);
      u.username = role;
      u.password = 'pw';
      const before = await db.checksums();
      const dry = await runCli(['undo', runId, '--database-url', u.toString()]);
      expect(dry.code).toBe(1);
      expect(dry.stdout).toMatch(
        /Cannot restore bit for bit as this role \(--apply refuses\):\n {2}public\.token: trigger token_stamp/,
      );
      const res = await runCli(['undo', runId, '--apply', '--database-url', u.toString()]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(
        /cannot restore every row bit for bit: public\.token: trigger token_stamp .* Nothing was changed/,
      );
      expect(res.stderr).toMatch(/session_replication_role/);
      expect(await db.checksums()).toEqual(before);
    } finally {
      await db.exec(`drop owned by ${role}; drop role ${role};`);
    }
  });
});
