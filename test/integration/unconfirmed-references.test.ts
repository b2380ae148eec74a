import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * A type/id pair whose data does not support it (an audit log whose users and items were mostly
 * deleted: 2 of its 11 distinct (type, id) values exist) is not a reference: nothing follows it.
 * But its rows still name rows by type and id, and no delete may remove a row one of them names —
 * not a merge's loser, not an orphan. The group is skipped, the reason names the columns and what
 * to declare; everything else is repaired.
 */
const SCHEMA = `
  create schema uc;
  set search_path = uc;
  create table users (id bigint primary key, email varchar not null);
  insert into users values (1, 'ann@x.io'), (2, 'ann@x.io'), (3, 'bob@x.io'), (4, 'bob@x.io'), (5, 'cy@x.io');
  create table owners (id int primary key);
  insert into owners values (1);
  create table items (id bigint primary key, owner_id int not null);
  insert into items values (1, 1), (7, 9), (8, 8);
  create table audits (id bigint primary key, auditable_type varchar not null, auditable_id bigint not null,
                       action text not null);
  insert into audits values
    (1, 'User', 2, 'update'), (2, 'User', 50, 'destroy'), (3, 'User', 51, 'destroy'), (4, 'User', 52, 'destroy'),
    (5, 'User', 53, 'destroy'), (6, 'User', 54, 'destroy'), (7, 'Item', 7, 'update'), (8, 'Item', 60, 'destroy'),
    (9, 'Item', 61, 'destroy'), (10, 'Item', 62, 'destroy'), (11, 'Item', 63, 'destroy');
  create table accounts (id int primary key, handle text not null, deleted_at timestamptz);
  create unique index accounts_handle on accounts (handle);
  insert into accounts values (1, 'a', null), (2, 'b', '2026-01-01'), (3, 'c', '2026-01-01');
  create table notes (id int primary key, notable_type text not null, notable_id int not null);
  insert into notes values (1, 'Account', 2), (2, 'Account', 70), (3, 'Account', 71), (4, 'Account', 72);
  reset search_path;
`;

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(SCHEMA);
});
afterAll(() => db.drop());

const audits = () => db.query('select * from uc.audits order by id');
const named = (type: string, table: string) =>
  db.query<{ id: string }>(
    `select a.id from uc.audits a where a.auditable_type = '${type}'
        and exists (select 1 from ${table} p where p.id = a.auditable_id) order by a.id`,
  );

/** A dry run, then --apply: a group is skipped (exit 1), and the apply did what the dry run said. */
async function applyAsDryRunSaid(config: string) {
  const dry = await repairJson(db.url, config);
  expect(dry.code, dry.stderr).toBe(1);
  const apply = await repairJson(db.url, config, '--apply');
  expect(apply.code, apply.stderr).toBe(1);
  expect(dry.doc.actions).toEqual(apply.doc.actions);
  return apply;
}

/** Undo of the run puts every application table back bit for bit. */
async function expectUndoRestores(runId: string, original: Record<string, string>) {
  const undo = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
  expect(undo.code, undo.stderr).toBe(0);
  const now = await db.checksums();
  for (const [t, sum] of Object.entries(original)) if (!t.startsWith('rowdoctor_backup.')) expect(now[t], t).toBe(sum);
}

describe('a candidate type/id pair the data does not support', () => {
  it('is not a reference, and the scan says why', async () => {
    const res = await runCli(['scan', '--database-url', db.url, '--format', 'json']);
    const doc = JSON.parse(res.stdout) as { assumptions: { kind: string; table: string; evidence: string }[] };
    expect(doc.assumptions.filter((a) => a.table === 'uc.audits')).toEqual([
      expect.objectContaining({
        kind: 'not-a-reference',
        evidence: expect.stringContaining('2 of 11 distinct ids found') as string,
      }),
    ]);
  });

  it('keeps a merge loser its rows name: that group is skipped with what to declare, the other merged', async () => {
    const config = writeConfig('rules:\n  - { check: duplicate-rows, table: uc.users, key: [email], repair: merge }\n');
    const before = await tableStats(db);
    const original = await db.checksums();
    const auditsBefore = await audits();
    const namedBefore = await named('User', 'uc.users');

    const apply = await applyAsDryRunSaid(config); // a group skipped
    expect(apply.doc.actions[0], JSON.stringify(apply.doc.actions)).toMatchObject({
      groups: 2,
      rowsDeleted: 1,
      skipped: 1,
    });
    const skipped = apply.doc.actions[0]!.skippedGroups;
    expect(skipped.map((g) => g.ids)).toEqual([[1, 2]]);
    expect(skipped[0]!.reason).toContain("uc.audits (auditable_type = 'User', a polymorphic candidate");
    expect(skipped[0]!.reason).toContain(
      'declare it under references: (table: uc.audits, polymorphic: { type: auditable_type, id: auditable_id }, ' +
        'types: { User: uc.users, … })',
    );

    // User 2, which audit 1 names, is still there; bob's loser (named by nothing) is gone.
    expect(await db.query('select id from uc.users order by id')).toEqual([
      { id: '1' },
      { id: '2' },
      { id: '3' },
      { id: '5' },
    ]);
    expect(await named('User', 'uc.users')).toEqual(namedBefore);
    expect(await audits()).toEqual(auditsBefore);
    const after = await tableStats(db);
    expect(after['uc.users']!.rows).toBe(before['uc.users']!.rows - 1);
    expect(after['uc.users']!.sums.id).toBe(String(Number(before['uc.users']!.sums.id) - 4));
    for (const t of ['uc.audits', 'uc.items', 'uc.owners']) expect(after[t], t).toEqual(before[t]);

    await expectUndoRestores(apply.doc.runId, original);
  });

  it('keeps an orphan its rows name: orphan delete skips it with what to declare', async () => {
    const config = writeConfig(
      'rules:\n  - { check: orphaned-rows, table: uc.items, column: owner_id, references: uc.owners.id, repair: delete }\n',
    );
    const before = await tableStats(db);
    const original = await db.checksums();
    const apply = await applyAsDryRunSaid(config);
    expect(apply.doc.actions[0], JSON.stringify(apply.doc.actions)).toMatchObject({
      groups: 2,
      rowsDeleted: 1,
      skipped: 1,
    });
    expect(apply.doc.actions[0]!.skippedGroups[0]!.reason).toContain(
      "orphan rows still referenced by uc.audits (auditable_type = 'Item', a polymorphic candidate not taken as a " +
        'reference (the data does not support it: 2 of 11 distinct ids found in the tables its types name): 1 row) ' +
        'were left in place: declare it under references:',
    );
    // Item 7 (audit 7 names it) stays; item 8 (named by nothing) goes.
    expect(await db.query('select id from uc.items order by id')).toEqual([{ id: '1' }, { id: '7' }]);
    const after = await tableStats(db);
    expect(after['uc.items']!.rows).toBe(before['uc.items']!.rows - 1);
    expect(after['uc.audits']).toEqual(before['uc.audits']);

    await expectUndoRestores(apply.doc.runId, original);
  });

  it('is followed once declared: the merge then re-points its rows and skips nothing', async () => {
    const config = writeConfig(`
rules:
  - { check: duplicate-rows, table: uc.users, key: [email], repair: merge }
references:
  - table: uc.audits
    polymorphic: { type: auditable_type, id: auditable_id }
    types: { User: uc.users }
`);
    const apply = await repairJson(db.url, config, '--apply');
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.doc.actions[0]).toMatchObject({ groups: 2, rowsDeleted: 2, skipped: 0, childRowsRepointed: 1 });
    expect(await db.query(`select auditable_id from uc.audits where id = 1`)).toEqual([{ auditable_id: '1' }]);
  });

  it('keeps a soft-deleted row its rows name: purge-deleted skips it, purges the other', async () => {
    const config = writeConfig(
      'rules:\n  - { check: soft-delete-conflicts, table: uc.accounts, key: [handle], repair: purge-deleted }\n',
    );
    const before = await tableStats(db);
    const original = await db.checksums();
    const apply = await applyAsDryRunSaid(config);
    expect(apply.doc.actions[0], JSON.stringify(apply.doc.actions)).toMatchObject({ rowsDeleted: 1, skipped: 1 });
    expect(apply.doc.actions[0]!.skippedGroups[0]!.reason).toContain(
      "uc.notes (notable_type = 'Account', a polymorphic candidate not taken as a reference",
    );
    expect(await db.query('select id from uc.accounts order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    const after = await tableStats(db);
    expect(after['uc.accounts']!.rows).toBe(before['uc.accounts']!.rows - 1);
    expect(after['uc.notes']).toEqual(before['uc.notes']);
    await expectUndoRestores(apply.doc.runId, original);
  });

  it('keeps a colliding child merged away at depth that such a pair names: the group is skipped', async () => {
    await db.exec(`
      create schema deep;
      set search_path = deep;
      create table users (id bigint primary key, email varchar not null);
      insert into users values (1, 'ann@x.io'), (2, 'ann@x.io'), (3, 'bob@x.io'), (4, 'bob@x.io');
      create table tags (id bigint primary key, name varchar not null);
      insert into tags values (1, 'red');
      create table taggings (id bigint primary key, tag_id bigint not null references tags,
                             taggable_type varchar not null, taggable_id bigint not null);
      create unique index taggings_idx on taggings (tag_id, taggable_type, taggable_id);
      insert into taggings values (1, 1, 'User', 1), (2, 1, 'User', 2), (3, 1, 'User', 3), (4, 1, 'User', 4);
      -- a notification log whose taggings were mostly deleted: 1 of 5 ids found, not a reference
      create table notifications (id bigint primary key, notifiable_type varchar not null, notifiable_id bigint not null);
      insert into notifications values (1, 'Tagging', 2), (2, 'Tagging', 90), (3, 'Tagging', 91), (4, 'Tagging', 92),
                                       (5, 'Tagging', 93);
      reset search_path;`);
    const config = writeConfig(
      'rules:\n  - { check: duplicate-rows, table: deep.users, key: [email], repair: merge }\n',
    );
    const original = await db.checksums();
    const before = await tableStats(db);
    const apply = await applyAsDryRunSaid(config);
    // ann's group: tagging 2 (User 2) would be merged into tagging 1 and deleted, but notification 1 names it.
    expect(apply.doc.actions[0], JSON.stringify(apply.doc.actions)).toMatchObject({
      groups: 2,
      rowsDeleted: 1,
      childRowsMerged: 1,
      skipped: 1,
    });
    expect(apply.doc.actions[0]!.skippedGroups.map((g) => g.ids)).toEqual([[1, 2]]);
    expect(apply.doc.actions[0]!.skippedGroups[0]!.reason).toContain(
      "deep.notifications (notifiable_type = 'Tagging', a polymorphic candidate not taken as a reference",
    );
    expect(await db.query('select id from deep.taggings order by id')).toEqual([{ id: '1' }, { id: '2' }, { id: '3' }]);
    expect(await db.query('select id from deep.users order by id')).toEqual([{ id: '1' }, { id: '2' }, { id: '3' }]);
    const after = await tableStats(db);
    expect(after['deep.notifications']).toEqual(before['deep.notifications']);
    await expectUndoRestores(apply.doc.runId, original);
  });
});
