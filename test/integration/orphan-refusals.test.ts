import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { expectNothingLost, ledger, type Ledger } from '../support/ledger.js';
import { repairJson, runCli, writeConfig, type RepairDoc } from '../support/run.js';

/**
 * Orphan repairs skip a group the server refuses alone, as merges do: nulling the owner of a pinned
 * token breaks CHECK token_pinned_has_owner (owner 8), soft-deleting a session of owner 8 breaks
 * CHECK session_deleted_after_start. The other dangling owners (9, 10) are repaired in the same batch.
 */
const FIXTURE = `
  create table owner (id int primary key);
  insert into owner values (1);
  create table token (id int primary key, owner_id int, pinned boolean not null,
                      constraint token_pinned_has_owner check (not pinned or owner_id is not null));
  insert into token values (1, 1, true), (2, 8, true), (3, 9, false), (4, 10, false);
  create table session (id int primary key, owner_id int, started date not null, deleted_at date,
                        constraint session_deleted_after_start check (deleted_at >= started));
  insert into session values (1, 1, '2026-01-01', null), (2, 8, '2999-01-01', null), (3, 9, '2026-01-01', null);
`;
const CONFIG = `softDelete:
  tables:
    public.session: deleted_at
rules:
  - { check: orphaned-rows, table: token, column: owner_id, references: owner.id, repair: set-null }
  - { check: orphaned-rows, table: session, column: owner_id, references: owner.id, repair: soft-delete }
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

describe('an orphan group the server refuses is skipped alone', () => {
  let dry: RepairDoc;
  it('the dry run foresees both refusals (its copies carry the CHECK constraints) and changes nothing', async () => {
    const res = await repair();
    expect(res.code, res.stderr).toBe(1);
    dry = res.doc;
    expect(dry.actions[0]).toMatchObject({ groups: 3, skipped: 1, rowsUpdated: 2, rowsDeleted: 0 });
    expect(dry.actions[1]).toMatchObject({ groups: 2, skipped: 1, rowsUpdated: 1, rowsDeleted: 0 });
    expect(await db.checksums()).toEqual(sums);
  });

  it('--apply does what the dry run said: each refused group skipped with its constraint and SQLSTATE', async () => {
    const res = await repair('--apply');
    expect(res.code, res.stderr).toBe(1);
    const doc = res.doc;
    expect(doc.actions).toEqual(dry.actions);
    expect(doc.actions[0]!.skippedGroups).toEqual([
      {
        key: [8],
        ids: [2],
        reason: expect.stringMatching(/check constraint token_pinned_has_owner on public\.token \(23514\)/),
      },
    ]);
    expect(doc.actions[1]!.skippedGroups).toEqual([
      {
        key: [8],
        ids: [2],
        reason: expect.stringMatching(/check constraint session_deleted_after_start on public\.session \(23514\)/),
      },
    ]);
    expect(await db.query('select id, owner_id from token order by id')).toEqual([
      { id: 1, owner_id: 1 },
      { id: 2, owner_id: 8 },
      { id: 3, owner_id: null },
      { id: 4, owner_id: null },
    ]);
    expect(await db.query('select id, deleted_at is null as live from session order by id')).toEqual([
      { id: 1, live: true },
      { id: 2, live: true },
      { id: 3, live: false },
    ]);
    await expectNothingLost(db, before, [doc.runId]);
    const undo = await runCli(['undo', doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(sums)) expect(now[t], t).toBe(sum);
  });
});
