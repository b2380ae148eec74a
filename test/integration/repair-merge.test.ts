import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

// Expected numbers are worked out by hand from this fixture (see the comments).
const FIXTURE = `
  create table account (id int primary key, email text not null, created_at date not null, nickname text, deleted_at timestamptz);
  insert into account values
    (1, 'a', '2026-01-02', null, null), (2, 'a', '2026-01-01', 'al', null), (3, 'a', '2026-01-03', null, null),
    (4, 'b', '2026-01-01', null, null), (5, 'b', '2026-01-01', 'bee', null),
    (6, 'c', '2026-01-01', null, null), (7, 'a', '2026-01-01', null, '2026-02-01');
  -- 'a': 2 is oldest → survivor, 1 and 3 merge into it (7 is soft-deleted: out of scope).
  -- 'b': tie on created_at → lowest id 4 survives, 5 merges; fill copies 5's nickname into 4.
  create table session (id int primary key, account_id int not null references account (id));
  insert into session values (1, 1), (2, 3), (3, 5), (4, 2), (5, 6);                       -- 3 re-pointed
  create table membership (id int primary key, account_id int not null references account (id), org text not null,
                           unique (account_id, org));
  insert into membership values (1, 1, 'x'), (2, 2, 'x'), (3, 3, 'y'), (4, 5, 'z'), (5, 3, 'x');
  -- m1 and m5 would become (2, x) like m2: merged into m2; m3 and m4 re-pointed.
  create table membership_note (id int primary key, membership_id int not null references membership (id) on delete cascade);
  insert into membership_note values (1, 1), (2, 5), (3, 3);                               -- n1, n2 move to m2
  create table profile_link (id int primary key, account_ref int);                        -- declared reference, no FK
  insert into profile_link values (1, 3);
  create table audit (id int primary key, account_id int);                                -- inferred reference
  insert into audit values (1, 5);
  create table login (id int, account_id int references account (id), at date not null) partition by range (at);
  create table login_jan partition of login for values from ('2026-01-01') to ('2026-02-01');
  create table login_feb partition of login for values from ('2026-02-01') to ('2026-03-01');
  insert into login values (1, 1, '2026-01-05'), (2, 3, '2026-02-05');                   -- 2 re-pointed
  create table device (tenant_id int, id int, serial text not null, primary key (tenant_id, id));
  insert into device values (1, 1, 's'), (1, 2, 's'), (2, 1, 's');                        -- (1,2) merges into (1,1)
  create table device_event (id int primary key, tenant_id int, device_id int, foreign key (tenant_id, device_id) references device);
  insert into device_event values (1, 1, 2), (2, 2, 1);                                   -- 1 re-pointed
`;

const CONFIG = `rules:
  - check: duplicate-rows
    table: account
    key: [email]
    keep: { orderBy: ["created_at asc"] }
    fill: true
  - check: duplicate-rows
    table: device
    key: [tenant_id, serial]
  - check: orphaned-rows
    table: profile_link
    column: account_ref
    references: account.id
    repair: report
`;

let db: TestDb;
let config: string;
let original: Record<string, string>;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
  original = await db.checksums();
});
afterAll(() => db.drop());

const repair = (...args: string[]) =>
  runCli(['repair', '--database-url', db.url, '--config', config, '--format', 'json', ...args]);
const actions = (stdout: string) => JSON.parse(stdout).actions as Record<string, unknown>[];

describe('repair merge', () => {
  let dry: Record<string, unknown>[];
  let runId: string;

  it('a dry run changes nothing and says exactly what --apply will change', async () => {
    const res = await repair();
    expect(res.stderr).toBe('');
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stdout).applied).toBe(false);
    expect(await db.checksums()).toEqual(original);
    dry = actions(res.stdout);
    expect(dry).toEqual([
      {
        check: 'duplicate-rows',
        table: 'public.account',
        groups: 2,
        rowsDeleted: 3,
        rowsUpdated: 1,
        childRowsRepointed: 11,
        childRowsMerged: 2,
        redirected: 0,
        skipped: 0,
        skippedGroups: [],
      },
      {
        check: 'duplicate-rows',
        table: 'public.device',
        groups: 1,
        rowsDeleted: 1,
        rowsUpdated: 0,
        childRowsRepointed: 1,
        childRowsMerged: 0,
        redirected: 0,
        skipped: 0,
        skippedGroups: [],
      },
    ]);
  });

  it('--apply changes exactly what the dry run said', async () => {
    const res = await repair('--apply');
    expect(res.code).toBe(0);
    const doc = JSON.parse(res.stdout);
    expect(doc.applied).toBe(true);
    expect(doc.actions).toEqual(dry);
    runId = doc.runId;
  });

  it('keeps the oldest account (keep.orderBy) and the lowest id on a tie, and fills its NULLs', async () => {
    expect(await db.query('select id, email, nickname from account order by id')).toEqual([
      { id: 2, email: 'a', nickname: 'al' },
      { id: 4, email: 'b', nickname: 'bee' },
      { id: 6, email: 'c', nickname: null },
      { id: 7, email: 'a', nickname: null },
    ]);
  });

  it('re-points children through single, composite, declared, inferred and partitioned references', async () => {
    expect(await db.query('select id, account_id from session order by id')).toEqual([
      { id: 1, account_id: 2 },
      { id: 2, account_id: 2 },
      { id: 3, account_id: 4 },
      { id: 4, account_id: 2 },
      { id: 5, account_id: 6 },
    ]);
    expect(await db.query('select account_ref from profile_link')).toEqual([{ account_ref: 2 }]);
    expect(await db.query('select account_id from audit')).toEqual([{ account_id: 4 }]);
    expect(await db.query('select id, account_id, tableoid::regclass::text as part from login order by id')).toEqual([
      { id: 1, account_id: 2, part: 'login_jan' },
      { id: 2, account_id: 2, part: 'login_feb' },
    ]);
    expect(await db.query('select tenant_id, id from device order by 1, 2')).toEqual([
      { tenant_id: 1, id: 1 },
      { tenant_id: 2, id: 1 },
    ]);
    expect(await db.query('select id, tenant_id, device_id from device_event order by id')).toEqual([
      { id: 1, tenant_id: 1, device_id: 1 },
      { id: 2, tenant_id: 2, device_id: 1 },
    ]);
  });

  it('merges children that would collide under their own unique key, and moves grandchildren under ON DELETE CASCADE', async () => {
    expect(await db.query('select id, account_id, org from membership order by id')).toEqual([
      { id: 2, account_id: 2, org: 'x' },
      { id: 3, account_id: 2, org: 'y' },
      { id: 4, account_id: 4, org: 'z' },
    ]);
    expect(await db.query('select id, membership_id from membership_note order by id')).toEqual([
      { id: 1, membership_id: 2 },
      { id: 2, membership_id: 2 },
      { id: 3, membership_id: 3 },
    ]);
  });

  it('a second repair --apply changes 0 rows and exits 0', async () => {
    const res = await repair('--apply');
    expect(res.code).toBe(0);
    for (const a of actions(res.stdout))
      expect(a).toMatchObject({ groups: 0, rowsDeleted: 0, rowsUpdated: 0, childRowsRepointed: 0, childRowsMerged: 0 });
  });

  it('undo --apply restores every table bit for bit; undoing it again is refused', async () => {
    const dryUndo = await runCli(['undo', runId, '--database-url', db.url, '--format', 'json']);
    expect(dryUndo.code).toBe(0);
    expect(JSON.parse(dryUndo.stdout).applied).toBe(false);
    expect(await db.checksums()).not.toEqual(original);
    const res = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(res.stdout).toMatch(/APPLIED/);
    expect(res.code).toBe(0);
    const now = await db.checksums();
    for (const [table, sum] of Object.entries(original)) expect(now[table], table).toBe(sum);
    const again = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already undone by run \S+/);
  });
});
