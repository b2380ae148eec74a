import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';
import { expectNothingLost, ledger } from '../support/ledger.js';

// Each test gets its own copy of this fixture.
const FIXTURE = `
  create table users (id int primary key, deleted_at timestamptz);
  insert into users values (1, null), (2, '2026-01-01'), (3, null);
  create table token (id int primary key, user_id int, label text, deleted_at timestamptz);
  insert into token values (1, 1, 'ok', null), (2, 2, 'deleted parent', null), (3, 9, 'missing parent', null),
                           (4, 9, 'missing parent', null), (5, null, 'no reference', null), (6, 8, 'referenced orphan', null);
  create table token_use (id int primary key, token_id int references token (id));
  insert into token_use values (1, 6);
  create table handle (id int primary key, name text not null, user_id int references users (id), is_deleted boolean not null default false,
                       deleted_at timestamptz, constraint handle_name_key unique (name));
  insert into handle values
    (1, 'ann', 1, true, '2026-03-01'),   -- deleted, alone with its key: purged
    (2, 'bob', 1, true, '2026-03-01'),   -- deleted, alone, but still referenced: skipped by purge
    (3, 'cy', null, true, '2026-03-01'), -- deleted, alone
    (4, 'dan', null, false, null);       -- live: a marker set on every row would mark no deletion
  create table handle_ref (id int primary key, handle_id int references handle (id));
  insert into handle_ref values (1, 2);
  create table nick (id int primary key, nick text not null, deleted_at timestamptz);
  insert into nick values
    (1, 'x', '2026-01-01'), (2, 'x', null),                -- x: a live row holds it → purge merges 1 into 2
    (3, 'y', '2026-01-01'), (4, 'y', '2026-02-01'),        -- y: no live row → revive 4 (newest), merge 3 into it
    (5, 'z', null);
  create table nick_note (id int primary key, nick_id int references nick (id));
  insert into nick_note values (1, 1), (2, 3);
`;

let db: TestDb;
beforeEach(async () => {
  db = await freshDatabase(FIXTURE);
});
afterEach(() => db.drop());

/** A repair in JSON; an applied one is checked to have lost nothing (every row and sum in the table or its backup). */
async function repairJson(configText: string, ...args: string[]) {
  const before = args.includes('--apply') ? await ledger(db) : null;
  const res = await runCli([
    'repair',
    '--database-url',
    db.url,
    '--config',
    writeConfig(configText),
    '--no-discover',
    '--format',
    'json',
    ...args,
  ]);
  const doc = res.stdout ? JSON.parse(res.stdout) : null;
  if (before && doc?.applied) await expectNothingLost(db, before, [doc.runId]);
  return { ...res, doc };
}

const orphanRule = (repair: string) => `rules:
  - check: orphaned-rows
    table: token
    column: user_id
    references: users.id
    repair: ${repair}
`;

describe('repair orphaned-rows', () => {
  it('delete removes orphans, backs them up, and leaves an orphan that another row still references', async () => {
    const dry = await repairJson(orphanRule('delete'));
    const res = await repairJson(orphanRule('delete'), '--apply');
    expect(res.doc.actions).toEqual(dry.doc.actions);
    expect(res.doc.actions[0]).toMatchObject({ groups: 3, rowsDeleted: 3, rowsUpdated: 0, skipped: 1 });
    expect(res.code).toBe(1); // something was skipped
    expect((await db.query('select id from token order by id')).map((r) => r.id)).toEqual([1, 5, 6]);
    // the reason names what still points at the row, and how many rows
    const text = await runCli(['repair', '--database-url', db.url, '--config', writeConfig(orphanRule('delete'))]);
    expect(text.stdout).toMatch(
      /orphan rows still referenced by public\.token_use \(foreign key token_use_token_id_fkey: 1 row\) were left in place/,
    );
    // Each skipped group with its key, its ids and why, in JSON and under the table.
    expect(res.doc.actions[0].skippedGroups).toEqual([
      { key: [8], ids: [6], reason: expect.stringMatching(/^orphan rows still referenced by public\.token_use/) },
    ]);
    expect(dry.doc.actions[0].skippedGroups).toEqual(res.doc.actions[0].skippedGroups);
    expect(text.stdout).toMatch(/Skipped groups, left as they were:\n {2}public\.token \(8\): 6 — orphan rows still/);
    const backup = await db.query<{ id: number; label: string }>(
      `select t.id, t.label from rowdoctor_backup."${(await db.query<{ o: number }>("select 'token'::regclass::oid::int as o"))[0]!.o}_token" t where _rd_run = $1 order by id`,
      [res.doc.runId],
    );
    expect(backup).toEqual([
      { id: 2, label: 'deleted parent' },
      { id: 3, label: 'missing parent' },
      { id: 4, label: 'missing parent' },
    ]);
  });

  it('soft-delete marks orphans deleted instead', async () => {
    const res = await repairJson(orphanRule('soft-delete'), '--apply');
    expect(res.doc.actions[0]).toMatchObject({ rowsDeleted: 0, rowsUpdated: 4, skipped: 0 });
    expect((await db.query('select id from token where deleted_at is not null order by id')).map((r) => r.id)).toEqual([
      2, 3, 4, 6,
    ]);
  });

  it('set-null clears the reference (MATCH SIMPLE: no longer an orphan)', async () => {
    const res = await repairJson(orphanRule('set-null'), '--apply');
    expect(res.doc.actions[0]).toMatchObject({ rowsUpdated: 4 });
    expect((await db.query('select id, user_id from token order by id')).map((r) => r.user_id)).toEqual([
      1,
      null,
      null,
      null,
      null,
      null,
    ]);
    const rescan = await runCli([
      'scan',
      '--database-url',
      db.url,
      '--no-discover',
      '--orphans',
      'token.user_id -> users.id',
    ]);
    expect(rescan.code).toBe(0);
  });

  it('refuses set-null on a NOT NULL column before changing anything', async () => {
    const res = await repairJson(
      `rules:\n  - check: orphaned-rows\n    table: handle_ref\n    column: id\n    references: users.id\n    repair: set-null\n`,
      '--apply',
    );
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/NOT NULL, so set-null is impossible/);
  });
});

describe('repair soft-delete-conflicts', () => {
  it('purge-deleted hard-deletes deleted rows that block their key, skipping one still referenced', async () => {
    const rule = `rules:\n  - check: soft-delete-conflicts\n    table: handle\n    key: [name]\n    repair: purge-deleted\n`;
    const dry = await repairJson(rule);
    const res = await repairJson(rule, '--apply');
    expect(res.doc.actions).toEqual(dry.doc.actions);
    expect(res.doc.actions[0]).toMatchObject({ groups: 3, rowsDeleted: 2, skipped: 1 });
    expect((await db.query('select id from handle order by id')).map((r) => r.id)).toEqual([2, 4]);
    // The freed key can be inserted again: the 23505 is gone.
    await db.exec("insert into handle (id, name) values (10, 'ann')");
  });

  it('purge-deleted merges a deleted row into the live row sharing its key, re-pointing its children', async () => {
    const rule = `rules:\n  - check: soft-delete-conflicts\n    table: nick\n    key: [nick]\n    repair: purge-deleted\n`;
    const res = await repairJson(rule, '--apply');
    // x: 1 merged into live 2 (note re-pointed); y: no live row, both deleted rows alone, 3 referenced → the
    // group is skipped whole: 4 is not purged either (a group reported skipped is left as it was)
    expect(res.doc.actions[0]).toMatchObject({ groups: 2, rowsDeleted: 1, childRowsRepointed: 1, skipped: 1 });
    expect(res.doc.actions[0]!.skippedGroups).toEqual([
      {
        key: ['y'],
        ids: [3, 4],
        reason:
          'soft-deleted rows alone with their key but still referenced by public.nick_note (foreign key nick_note_nick_id_fkey: 1 row) were left in place',
      },
    ]);
    expect(await db.query('select id, nick_id from nick_note order by id')).toEqual([
      { id: 1, nick_id: 2 },
      { id: 2, nick_id: 3 },
    ]);
    expect((await db.query('select id from nick order by id')).map((r) => r.id)).toEqual([2, 3, 4, 5]);
  });

  it('revive un-deletes the newest deleted row and merges the others into it; keys a live row holds are skipped', async () => {
    const rule = `rules:\n  - check: soft-delete-conflicts\n    table: nick\n    key: [nick]\n    repair: revive\n`;
    const dry = await repairJson(rule);
    const res = await repairJson(rule, '--apply');
    expect(res.doc.actions).toEqual(dry.doc.actions);
    expect(res.doc.actions[0]).toMatchObject({
      groups: 2,
      rowsDeleted: 1,
      rowsUpdated: 1,
      childRowsRepointed: 1,
      skipped: 1,
      skippedGroups: [{ key: ['x'], ids: [1, 2], reason: expect.stringMatching(/a live row already holds/) }],
    });
    expect(await db.query('select id, nick, deleted_at from nick order by id')).toEqual([
      { id: 1, nick: 'x', deleted_at: expect.any(Date) },
      { id: 2, nick: 'x', deleted_at: null },
      { id: 4, nick: 'y', deleted_at: null },
      { id: 5, nick: 'z', deleted_at: null },
    ]);
    expect(await db.query('select id, nick_id from nick_note order by id')).toEqual([
      { id: 1, nick_id: 1 },
      { id: 2, nick_id: 4 },
    ]);
  });

  it('undo after purge restores every table bit for bit', async () => {
    const before = await db.checksums();
    const rule = `rules:\n  - check: soft-delete-conflicts\n    table: nick\n    key: [nick]\n    repair: purge-deleted\n`;
    const res = await repairJson(rule, '--apply');
    expect(await db.checksums()).not.toEqual(before);
    expect((await runCli(['undo', res.doc.runId, '--database-url', db.url, '--apply'])).code).toBe(0);
    const after = await db.checksums();
    for (const [t, sum] of Object.entries(before)) expect(after[t], t).toBe(sum);
  });

  it('undo leaves a row whose key was taken since alone: a conflict, counted and sampled, exit 1; the rest comes back', async () => {
    const res = await repairJson(orphanRule('delete'), '--apply'); // deletes tokens 2, 3, 4
    await db.exec("insert into token values (3, 1, 'written since', null)");
    const undo = await runCli(['undo', res.doc.runId, '--database-url', db.url, '--apply', '--format', 'json']);
    expect(undo.code).toBe(1);
    const doc = JSON.parse(undo.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({ applied: true, restored: 2, reverted: 0, conflicts: 1 });
    expect(doc.conflictSamples).toEqual([
      { table: 'public.token', key: [3], reason: 'a row written since the repair holds its primary key' },
    ]);
    expect(await db.query('select id, label from token order by id')).toEqual([
      { id: 1, label: 'ok' },
      { id: 2, label: 'deleted parent' },
      { id: 3, label: 'written since' },
      { id: 4, label: 'missing parent' },
      { id: 5, label: 'no reference' },
      { id: 6, label: 'referenced orphan' },
    ]);
  });
});
