import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * The dry run plans on copies of the tables, so its counts are what --apply then does: collisions
 * three levels down (memberships, their notes, the notes' tags), and two rules on one table where
 * the second is planned against what the first leaves (u(email), then u(lower(email))).
 */
const FIXTURE = `
  create table account (id int primary key, email text not null);
  -- 20 addresses, 3 rows each: two spelled alike, one in capitals
  insert into account select g, case when g % 3 = 2 then upper('e' || (g % 20)) else 'e' || (g % 20) end
    from generate_series(1, 60) g;
  create table membership (id int primary key, account_id int not null references account, org int not null,
                           unique (account_id, org));
  insert into membership select g, 1 + g % 60, g / 60 from generate_series(1, 240) g;
  create table membership_note (id int primary key, membership_id int not null references membership,
                                kind int not null, unique (membership_id, kind));
  insert into membership_note select g, 1 + g % 240, g / 240 from generate_series(1, 720) g;
  create table note_tag (id int primary key, note_id int not null references membership_note on delete cascade,
                         tag int not null, unique (note_id, tag));
  insert into note_tag select g, 1 + g % 720, g / 720 from generate_series(1, 1440) g;
`;
const CONFIG = `rules:
  - { check: duplicate-rows, table: account, key: [email] }
  - { check: duplicate-rows, table: account, key: [{ expr: "lower(email)" }] }
`;

let db: TestDb;
let config: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
});
afterAll(() => db.drop());

const repair = async (...args: string[]) => {
  const res = await repairJson(db.url, config, ...args);
  expect(res.code, res.stderr).not.toBe(2);
  return res.doc;
};

describe('the dry run is the apply', () => {
  it('at depth 3 and for two rules on one table, every count of the dry run is what --apply does', async () => {
    const original = await db.checksums();
    const before = await tableStats(db);
    const dry = await repair();
    expect(await db.checksums()).toEqual(original);
    // the second rule is planned against what the first leaves: 20 groups of two, not of three
    expect(dry.actions.map((a) => [a.groups, a.rowsDeleted])).toEqual([
      [20, 20],
      [20, 20],
    ]);
    const applied = await repair('--apply');
    expect(applied.actions).toEqual(dry.actions);
    const merged = dry.actions.reduce((n, a) => n + (a.childRowsMerged ?? 0), 0);
    expect(merged).toBeGreaterThan(0);

    // conservation: the accounts deleted and the child rows merged are exactly the rows gone
    const after = await tableStats(db);
    expect(before['public.account']!.rows - after['public.account']!.rows).toBe(40);
    const children = ['public.membership', 'public.membership_note', 'public.note_tag'];
    expect(children.reduce((n, t) => n + before[t]!.rows - after[t]!.rows, 0)).toBe(merged);
    // nothing left to do, and the server's keys hold (they are enforced; the lower() key is built now)
    for (const a of (await repair('--apply')).actions)
      expect(a).toMatchObject({ groups: 0, rowsDeleted: 0, childRowsRepointed: 0, childRowsMerged: 0 });
    await db.exec('create unique index on account (lower(email))');
    await db.exec('drop index account_lower_idx');

    const undo = await runCli(['undo', applied.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(original)) expect(now[t], t).toBe(sum);
  });
});

describe('a unique index on a stored generated column', () => {
  it('is seen by the dry run as the apply meets it: the same counts, the group refused (23505) alike', async () => {
    const gen = await freshDatabase(`
      create table org (id int primary key, name text not null);
      insert into org values (1, 'a'), (2, 'a'), (3, 'b');
      create table team (id int primary key, org_id int not null references org, code text not null,
                         k text generated always as (org_id::text || '/' || lower(code)) stored);
      create unique index team_k on team (k);
      insert into team (id, org_id, code) values (10, 1, 'X'), (11, 2, 'x'), (12, 2, 'y');
    `);
    try {
      const cfg = writeConfig('rules:\n  - { check: duplicate-rows, table: org, key: [name], repair: merge }\n');
      const original = await gen.checksums();
      const dry = await repairJson(gen.url, cfg);
      expect(await gen.checksums()).toEqual(original);
      const applied = await repairJson(gen.url, cfg, '--apply');
      expect(applied.doc.actions, applied.stderr).toEqual(dry.doc.actions);
      // team 11 would become '1/x', which team 10 holds: the server refuses the group, in both
      expect(dry.doc.actions[0]!.skippedGroups[0]!.reason).toMatch(/unique key team_k on public\.team \(23505\)/);
    } finally {
      await gen.drop();
    }
  });
});

describe('an orphaned-rows rule before a merge rule on its parent', () => {
  it("copies the parent's children too: the dry run runs, with the counts --apply then has", async () => {
    const two = await freshDatabase(`
      create table users (id int primary key, email text not null);
      create table token (id int primary key, user_id int, tok text);
      create table note (id int primary key, user_id int references users (id));
      insert into users values (1, 'a'), (2, 'a');
      insert into token values (1, 2, 't'), (2, 99, 't');
      insert into note values (1, 2);
    `);
    try {
      const cfg = writeConfig(`rules:
  - { check: orphaned-rows, table: token, column: user_id, references: users.id, repair: delete }
  - { check: duplicate-rows, table: users, key: [email], repair: merge }
`);
      const original = await two.checksums();
      const before = await tableStats(two);
      const dry = await repairJson(two.url, cfg);
      expect(dry.code, dry.stderr).toBe(1);
      expect(await two.checksums()).toEqual(original);
      const applied = await repairJson(two.url, cfg, '--apply');
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.doc.actions).toEqual(dry.doc.actions);
      expect(dry.doc.actions.map((a) => [a.rowsDeleted, a.childRowsRepointed])).toEqual([
        [1, 0],
        [1, 2],
      ]);
      // conservation: token 2 (an orphan) and user 2 (merged into 1) are gone; token 1 and note 1 point at 1
      const after = await tableStats(two);
      expect(before['public.token']!.rows - after['public.token']!.rows).toBe(1);
      expect(before['public.users']!.rows - after['public.users']!.rows).toBe(1);
      expect(after['public.note']).toEqual({ rows: 1, sums: { id: '1', user_id: '1' } });
      expect(after['public.token']!.sums).toEqual({ id: '1', user_id: '1' });
    } finally {
      await two.drop();
    }
  });
});
