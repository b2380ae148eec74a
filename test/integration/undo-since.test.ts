import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * What the application does to the schema and the keys after a repair, before its undo: a key of
 * a merged-away row re-used by a new row, a column added to a table the repair changed. Undo
 * never hangs restored rows on the application's, and its dry run says what --apply does.
 */
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table org (id int primary key, name text not null);
    insert into org values (1, 'x'), (2, 'x'), (3, 'y'), (4, 'z'), (5, 'z');
    create table team (id int primary key, org_id int not null references org);
    insert into team values (10, 2), (11, 1), (12, 2), (13, 5);

    create table shop (id int primary key, name text not null);
    insert into shop values (1, 'a'), (2, 'a'), (3, 'b'), (4, 'b');
    create table item (id int primary key, shop_id int not null references shop, price numeric not null);
    insert into item values (20, 2, 1.5), (21, 1, 2.5), (22, 4, 3.5);

    -- A reference the database does not enforce (no foreign key): declared in the config.
    create table account (id int primary key, email text not null);
    insert into account values (1, 'a@x'), (2, 'a@x');
    create table login (id int primary key, account_ref int not null);
    insert into login values (30, 2), (31, 1);

    -- A merge whose children collide (post 11 merges into post 10), and a category only post 11 uses.
    create table person (id int primary key, email text not null);
    insert into person values (1, 'p@x'), (2, 'p@x');
    create table category (id int primary key);
    insert into category values (6), (7);
    create table post (id int primary key, person_id int not null references person, slug text not null,
                       category_id int references category, unique (person_id, slug));
    insert into post values (10, 1, 'hello', 6), (11, 2, 'hello', 7), (12, 2, 'other', 6);
    create table comment (id int primary key, post_id int references post, body text);
    insert into comment values (100, 10, 'c0'), (101, 11, 'c1'), (102, 12, 'c2');

    create table member (id int primary key, email text not null, name text);
    insert into member values (1, 'm@x', 'Alice'), (2, 'm@x', 'Alice Two');
    create table badge (id int primary key, member_id int not null references member);
    insert into badge values (40, 2);

    create table club (id int primary key, name text not null, n int);
    insert into club select i, 'c' || (i % 50), i from generate_series(1, 200) i;
    create table player (id int primary key, club_id int not null references club);
    insert into player select i, i from generate_series(1, 200) i;

    create table crew (id int primary key, name text not null);
    insert into crew values (1, 'k'), (2, 'k');
    create table crew_tag (crew_id int not null references crew, tag text not null); -- no primary key
    insert into crew_tag values (2, 'a'), (2, 'b'), (1, 'c');
  `);
});
afterAll(() => db.drop());

interface UndoDoc {
  applied: boolean;
  restored: number;
  reverted: number;
  conflicts: number;
  conflictSamples: { table: string; key: unknown[]; reason: string }[];
  inexact?: { table: string; reason: string }[];
}

async function undo(runId: string, ...args: string[]) {
  const res = await runCli(['undo', runId, '--database-url', db.url, '--format', 'json', ...args]);
  return { ...res, doc: (res.stdout ? JSON.parse(res.stdout) : null) as UndoDoc };
}

const rows = async (table: string) => db.query(`select * from ${table} order by id`);

async function merge(table: string, key = 'name', more = '') {
  const config = writeConfig(
    `rules:\n  - { check: duplicate-rows, table: ${table}, key: [${key}], repair: merge }\n${more}`,
  );
  const repair = await repairJson(db.url, config, '--apply', '--format', 'json');
  expect(repair.code, repair.stderr).toBe(0);
  return repair.doc.runId;
}

describe('undo after the application re-used a merged-away row’s key', () => {
  it('leaves the children that pointed at it where they are, as conflicts, in the dry run and on --apply', async () => {
    const runId = await merge('org');
    await db.exec(`insert into org values (2, 'written by the application')`);

    const plan = await undo(runId);
    expect(plan.code, plan.stderr).toBe(1);
    // org 2 (its key is taken) and teams 10 and 12 (they would name the application's org 2).
    expect(plan.doc).toMatchObject({ applied: false, restored: 1, reverted: 1, conflicts: 3 });
    const teams = plan.doc.conflictSamples.filter((s) => s.table === 'public.team');
    expect(teams.map((s) => s.key)).toEqual([[10], [12]]);
    expect(teams[0]!.reason).toMatch(/a row it pointed at before the repair is gone, or was written anew since/);

    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.doc).toMatchObject({ applied: true, restored: 1, reverted: 1, conflicts: 3 });
    expect(await rows('org')).toEqual([
      { id: 1, name: 'x' },
      { id: 2, name: 'written by the application' },
      { id: 3, name: 'y' },
      { id: 4, name: 'z' },
      { id: 5, name: 'z' },
    ]);
    // The other group came back whole; teams 10 and 12 stay with the survivor, not the application's org.
    expect(await rows('team')).toEqual([
      { id: 10, org_id: 1 },
      { id: 11, org_id: 1 },
      { id: 12, org_id: 1 },
      { id: 13, org_id: 5 },
    ]);
  });

  it('through a reference the database does not enforce, too', async () => {
    const reference =
      '  - { check: orphaned-rows, table: login, column: account_ref, references: account.id, repair: report }\n';
    const runId = await merge('account', 'email', reference);
    await db.exec(`insert into account values (2, 'b@x')`);
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.doc).toMatchObject({ restored: 0, reverted: 0, conflicts: 2 });
    expect(await rows('login')).toEqual([
      { id: 30, account_ref: 1 },
      { id: 31, account_ref: 1 },
    ]);
  });
});

describe('undo after the application re-used or deleted a row that restored rows name', () => {
  it('restores no row onto the application’s new row, and none that would name a parent that is gone', async () => {
    const runId = await merge('person', 'email');
    await db.exec(`insert into person values (2, 'written by the application')`);
    const expected = {
      person: await rows('person'),
      post: await rows('post'),
      comment: await rows('comment'),
    };
    const plan = await undo(runId);
    expect(plan.code, plan.stderr).toBe(1);
    // person 2 (key taken), post 11 (it names person 2), post 12 and comment 101 (they name what stays gone)
    expect(plan.doc).toMatchObject({ restored: 0, reverted: 0, conflicts: 4 });
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.doc).toMatchObject({ applied: true, restored: 0, reverted: 0, conflicts: 4 });
    expect({ person: await rows('person'), post: await rows('post'), comment: await rows('comment') }).toEqual(
      expected,
    );
  });

  it('a parent the application deleted since: the row that named it stays out, and the key still validates', async () => {
    await db.exec(`delete from comment; delete from post; update person set email = 'p@x' where id = 2;
      insert into post values (10, 1, 'hello', 6), (11, 2, 'hello', 7), (12, 2, 'other', 6);`);
    const runId = await merge('person', 'email');
    // post 11 (merged into post 10) is the only row naming category 7, which the application deletes.
    await db.exec(`delete from category where id = 7`);
    const plan = await undo(runId);
    expect(plan.doc).toMatchObject({ restored: 1, reverted: 1, conflicts: 1 });
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.doc).toMatchObject({ restored: 1, reverted: 1, conflicts: 1 });
    expect((await rows('post')).map((r) => r.id)).toEqual([10, 12]);
    // Asked of the server: the foreign key still holds for every row.
    await db.exec(`alter table post drop constraint post_category_id_fkey;
      alter table post add constraint post_category_id_fkey foreign key (category_id) references category;`);
  });
});

describe('undo of a table without a primary key after the application re-used a merged-away key', () => {
  it('leaves its re-pointed rows on the survivor, as conflicts', async () => {
    const runId = await merge('crew');
    await db.exec(`insert into crew values (2, 'written by the application')`);
    const plan = await undo(runId);
    expect(plan.doc).toMatchObject({ restored: 0, reverted: 0, conflicts: 3 });
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.doc).toMatchObject({ restored: 0, reverted: 0, conflicts: 3 });
    expect(await db.query('select crew_id, tag from crew_tag order by tag')).toEqual([
      { crew_id: 1, tag: 'a' },
      { crew_id: 1, tag: 'b' },
      { crew_id: 1, tag: 'c' },
    ]);
  });
});

describe('undo after a column was added to the tables the repair changed', () => {
  it('restores and reverts every row, the added column at its default, with no false conflict', async () => {
    const before = { shop: await rows('shop'), item: await rows('item') };
    const runId = await merge('shop');
    await db.exec(`
      alter table shop add column region text not null default 'eu';
      alter table item add column note text;`);

    const plan = await undo(runId);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.doc).toMatchObject({ restored: 2, reverted: 2, conflicts: 0 });
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.doc).toMatchObject({ applied: true, restored: 2, reverted: 2, conflicts: 0 });
    expect(await rows('shop')).toEqual(before.shop.map((r) => ({ ...r, region: 'eu' })));
    expect(await rows('item')).toEqual(before.item.map((r) => ({ ...r, note: null })));
  });

  it('NOT NULL without a default: named in the dry run, refused on --apply, nothing changed', async () => {
    const runId = await merge('shop');
    await db.exec(`
      alter table shop add column code int not null default 0;
      alter table shop alter column code drop default;`);
    const after = { shop: await rows('shop'), item: await rows('item') };

    const plan = await undo(runId);
    expect(plan.doc.inexact).toEqual([
      expect.objectContaining({ table: 'public.shop', reason: expect.stringMatching(/column code was added/) }),
    ]);
    const applied = await undo(runId, '--apply');
    expect(applied.code).toBe(2);
    expect(applied.stderr).toMatch(/column code was added since the repair[^]*SET DEFAULT/);
    expect({ shop: await rows('shop'), item: await rows('item') }).toEqual(after);
  });
});

describe('undo after a column the backup holds was renamed', () => {
  it('refuses, dry run and --apply alike, naming the column; renamed back, it restores every value', async () => {
    const before = { member: await rows('member'), badge: await rows('badge') };
    const runId = await merge('member', 'email');
    await db.exec('alter table member rename column name to full_name');
    const after = { member: await rows('member'), badge: await rows('badge') };
    for (const args of [[], ['--apply']]) {
      const res = await undo(runId, ...args);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/column\(s\) name of its backup are no longer in the table/);
    }
    expect({ member: await rows('member'), badge: await rows('badge') }).toEqual(after);
    await db.exec('alter table member rename column full_name to name');
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect({ member: await rows('member'), badge: await rows('badge') }).toEqual(before);
  });
});

describe('undo after a CHECK constraint was added that restored rows would break', () => {
  it('is refused by its dry run and by --apply before the first batch commits; dropped, undo restores all', async () => {
    const before = { club: await rows('club'), player: await rows('player') };
    const runId = await merge('club', 'name');
    await db.exec('alter table club add constraint not_177 check (n <> 177)');
    const after = { club: await rows('club'), player: await rows('player') };
    const plan = await undo(runId);
    expect(plan.code).toBe(1);
    expect((plan.doc as unknown as { refused: string }).refused).toMatch(
      /public\.club: 1 row\(s\) would break CHECK constraint not_177 \(CHECK \(\(n <> 177\)\)\)\. Nothing was changed/,
    );
    const applied = await undo(runId, '--apply', '--batch-size', '10');
    expect(applied.code).toBe(1);
    expect((applied.doc as unknown as { applied: boolean }).applied).toBe(false);
    expect({ club: await rows('club'), player: await rows('player') }).toEqual(after);
    await db.exec('alter table club drop constraint not_177');
    expect((await undo(runId, '--apply', '--batch-size', '10')).code).toBe(0);
    expect({ club: await rows('club'), player: await rows('player') }).toEqual(before);
  });
});
