import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { expectNothingLost, ledger, type Ledger } from '../support/ledger.js';
import { repairJson, runCli, writeConfig, type RepairDoc } from '../support/run.js';

/**
 * soft-delete-conflicts repairs skip a group the server refuses alone, as merges do: purging user 2
 * into user 1 re-points a review onto its own reviewer (CHECK review_not_self), and reviving member 1
 * un-deletes an archived row (CHECK member_live_not_archived). The other groups of the batch go on.
 */
const FIXTURE = `
  create table users (id int primary key, email text not null, deleted_at timestamptz);
  insert into users values (1, 'a', null), (2, 'a', '2026-01-01'), (3, 'b', null), (4, 'b', '2026-01-01'),
                           (5, 'c', '2026-01-01'), (6, 'c', '2026-01-02');
  create table review (id int primary key, owner_id int not null references users, reviewer_id int not null references users,
                       constraint review_not_self check (owner_id <> reviewer_id));
  insert into review values (1, 2, 1), (2, 4, 1);                          -- 2 → 1 breaks the CHECK; 4 → 3 does not
  create table member (id int primary key, handle text not null, deleted_at timestamptz, archived boolean not null,
                       constraint member_live_not_archived check (deleted_at is not null or not archived));
  insert into member values (1, 'x', '2026-01-02', true), (2, 'x', '2026-01-01', false),
                            (3, 'y', '2026-01-02', false), (4, 'y', '2026-01-01', false);
`;
const CONFIG = `softDelete:
  tables:
    public.users: deleted_at
    public.member: deleted_at
rules:
  - check: soft-delete-conflicts
    table: users
    key: [email]
    repair: purge-deleted
  - check: soft-delete-conflicts
    table: member
    key: [handle]
    repair: revive
`;

let db: TestDb;
let config: string;
let before: Ledger;
let sums: Record<string, string>;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
  before = await ledger(db);
  sums = await db.checksums();
});
afterAll(() => db.drop());

const repair = (...args: string[]) => repairJson(db.url, config, ...args);

describe('a purge or revive group the server refuses is skipped alone', () => {
  let dry: RepairDoc;
  it('the dry run foresees both refusals (its copies carry the CHECK constraints) and changes nothing', async () => {
    const res = await repair();
    expect(res.code, res.stderr).toBe(1);
    dry = res.doc;
    expect(dry.actions[0]).toMatchObject({ groups: 3, skipped: 1, rowsDeleted: 3, childRowsRepointed: 1 });
    expect(dry.actions[1]).toMatchObject({ groups: 2, skipped: 1, rowsDeleted: 1, rowsUpdated: 1 });
    expect(await db.checksums()).toEqual(sums);
  });

  it('--apply does what the dry run said: each refused group skipped with its constraint and SQLSTATE', async () => {
    const res = await repair('--apply');
    expect(res.code, res.stderr).toBe(1);
    const doc = res.doc;
    expect(doc.actions).toEqual(dry.actions);
    expect(doc.actions[0]!.skippedGroups).toEqual([
      {
        key: ['a'],
        ids: [1, 2],
        reason: expect.stringMatching(/check constraint review_not_self on public\.review \(23514\)/),
      },
    ]);
    expect(doc.actions[1]!.skippedGroups).toEqual([
      {
        key: ['x'],
        ids: [1, 2],
        reason: expect.stringMatching(/check constraint member_live_not_archived on public\.member \(23514\)/),
      },
    ]);
    expect(await db.query('select id, deleted_at is null as live from users order by id')).toEqual([
      { id: 1, live: true },
      { id: 2, live: false },
      { id: 3, live: true },
    ]);
    expect(await db.query('select id, owner_id from review order by id')).toEqual([
      { id: 1, owner_id: 2 },
      { id: 2, owner_id: 3 },
    ]);
    expect(await db.query('select id, deleted_at is null as live from member order by id')).toEqual([
      { id: 1, live: false },
      { id: 2, live: false },
      { id: 3, live: true },
    ]);
    await expectNothingLost(db, before, [doc.runId]);
    const undo = await runCli(['undo', doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(sums)) expect(now[t], t).toBe(sum);
  });
});
