import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

/**
 * Schema shapes real applications have, where a repair used to lose rows: old-style inheritance
 * and a foreign key into one partition. Each test checks conservation (every child row and value
 * sum), asks the server whether the repaired key now holds, and undoes to the same md5 per table.
 */
let db: TestDb;
afterEach(() => db.drop());

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

async function repair(rule: string, ...extra: string[]) {
  const res = await runCli([
    'repair',
    '--database-url',
    db.url,
    '--config',
    writeConfig(`rules:\n${rule}`),
    '--no-discover',
    '--format',
    'json',
    ...extra,
  ]);
  return { ...res, doc: JSON.parse(res.stdout) as { runId: string; actions: Record<string, number>[] } };
}

async function undo(runId: string) {
  const res = await runCli(['undo', runId, '--database-url', db.url, '--apply', '--format', 'json']);
  // What undo reported (conflicts, refusal, interruption) is in its document, not on stderr.
  expect(res.code, res.stdout + res.stderr).toBe(0);
}

async function one<T>(query: string): Promise<T> {
  return (await db.query<{ v: T }>(query))[0]!.v;
}

describe('old-style inheritance: a rule on the parent means ONLY the parent', () => {
  it('merges the parent’s duplicates only; the inheriting table’s rows, its twin ids included, are untouched', async () => {
    db = await freshDatabase(`
      create table item (id int primary key, sku text not null, qty int not null);
      create table item_archive (archived_at date not null) inherits (item);
      insert into item values (1, 'a', 10), (2, 'a', 20), (3, 'b', 30);
      -- id 2 again (a twin of the loser), and a row sharing the duplicated sku
      insert into item_archive values (2, 'old', 5, '2026-01-01'), (7, 'a', 1, '2026-01-01');
      create table item_note (id int primary key, item_id int references item (id), n int not null);
      insert into item_note values (1, 2, 100), (2, 1, 200), (3, 3, 300);
    `);
    const before = userTables(await db.checksums());
    const rule = '  - check: duplicate-rows\n    table: item\n    key: [sku]\n    repair: merge\n';
    const dry = await repair(rule);
    // what a unique index on item(sku) would reject: one row of item itself
    expect(dry.doc.actions[0]).toMatchObject({ groups: 1, rowsDeleted: 1, childRowsRepointed: 1 });
    const res = await repair(rule, '--apply');
    expect(res.doc.actions).toEqual(dry.doc.actions);

    expect(userTables(await db.checksums())['public.item_archive']).toBe(before['public.item_archive']);
    expect(await db.query('select id, sku from only item order by id')).toEqual([
      { id: 1, sku: 'a' },
      { id: 3, sku: 'b' },
    ]);
    expect(await one('select count(*)::int as v from item_note')).toBe(3);
    expect(await one('select sum(n)::int as v from item_note')).toBe(600);
    await db.exec('create unique index on item (sku)'); // the server agrees
    await db.exec('drop index item_sku_idx');

    await undo(res.doc.runId);
    expect(userTables(await db.checksums())).toEqual(before);
  });
});

describe('a foreign key that references one partition directly', () => {
  it('is followed: its children are re-pointed, never cascade-deleted; undo restores every table', async () => {
    db = await freshDatabase(`
      create table acct (id int not null, region text not null, email text not null, primary key (id, region))
        partition by list (region);
      create table acct_eu partition of acct for values in ('eu');
      create table acct_us partition of acct for values in ('us');
      insert into acct values (1, 'eu', 'a@x'), (2, 'eu', 'a@x'), (3, 'us', 'b@x'), (4, 'us', 'b@x'), (5, 'eu', 'c@x');
      create table note (id int primary key, acct_id int not null, region text not null, n int not null,
                         foreign key (acct_id, region) references acct_eu (id, region) on delete cascade);
      insert into note values (1, 2, 'eu', 10), (2, 2, 'eu', 20), (3, 1, 'eu', 30), (4, 5, 'eu', 40);
    `);
    const before = userTables(await db.checksums());
    const rule = '  - check: duplicate-rows\n    table: acct\n    key: [region, email]\n    repair: merge\n';
    const dry = await repair(rule);
    expect(dry.doc.actions[0]).toMatchObject({ groups: 2, rowsDeleted: 2, childRowsRepointed: 2 });
    const res = await repair(rule, '--apply');
    expect(res.doc.actions).toEqual(dry.doc.actions);

    expect(await one('select count(*)::int as v from note')).toBe(4);
    expect(await one('select sum(n)::int as v from note')).toBe(100);
    expect(await db.query('select id, acct_id from note order by id')).toEqual([
      { id: 1, acct_id: 1 },
      { id: 2, acct_id: 1 },
      { id: 3, acct_id: 1 },
      { id: 4, acct_id: 5 },
    ]);
    await db.exec('create unique index on acct (region, email)');
    await db.exec('drop index acct_region_email_idx');

    await undo(res.doc.runId);
    expect(userTables(await db.checksums())).toEqual(before);
  });
});

describe('columns named like the aliases in rowdoctor’s SQL (t, x, c, lx, sx)', () => {
  it('merge, dry run = apply, and undo back to every md5: a column is never taken for a whole row', async () => {
    db = await freshDatabase(`
      create table org (id int primary key, name text not null, c int, lx int, sx int);
      insert into org values (1, 'a', 1, 1, 1), (2, 'a', 2, 2, 2), (3, 'b', 3, 3, 3);
      create table team (id int primary key, org_id int not null references org, t int, x int, c int, lx int, sx int);
      insert into team values (10, 2, 1, 1, 1, 1, 1), (11, 1, 2, 2, 2, 2, 2);
    `);
    const original = userTables(await db.checksums());
    const rule = '  - { check: duplicate-rows, table: org, key: [name], repair: merge }\n';
    const dry = await repair(rule);
    const applied = await repair(rule, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.doc.actions).toEqual(dry.doc.actions);
    expect(applied.doc.actions[0]).toMatchObject({ groups: 1, rowsDeleted: 1, childRowsRepointed: 1 });
    const undoDry = await runCli(['undo', applied.doc.runId, '--database-url', db.url, '--format', 'json']);
    expect(undoDry.code, undoDry.stderr).toBe(0);
    const undo = await runCli(['undo', applied.doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });
});
