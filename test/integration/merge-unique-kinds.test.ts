import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * A merge of org 2 into org 1 moves children whose own unique keys are of every kind a table can
 * have: each child that would collide with a sibling is merged into it (grandchildren moved), the
 * others re-pointed — and the server's unique indexes still hold afterwards (rebuilt to ask it).
 */
const FIXTURE = `
  create table org (id int primary key, name text not null);
  insert into org values (1, 'a'), (2, 'a'), (3, 'b'), (4, 'b');
  create table c_plain (id int primary key, org_id int references org, k int, unique (org_id, k));
  insert into c_plain values (1, 1, 1), (2, 2, 1), (3, 2, 2);
  create table c_partial (id int primary key, org_id int references org, k int, active bool);
  create unique index c_partial_active on c_partial (org_id, k) where active;
  insert into c_partial values (1, 1, 1, true), (2, 2, 1, true), (3, 1, 2, false), (4, 2, 2, false), (5, 1, 3, true), (6, 2, 3, false);
  create table c_expr (id int primary key, org_id int references org, name text);
  create unique index c_expr_name on c_expr (lower(replace(name, '-', ' ')), org_id);
  insert into c_expr values (1, 1, 'Build-X'), (2, 2, 'build x'), (3, 2, 'other');
  create table c_expr_note (id int primary key, c_expr_id int references c_expr, tag text);
  create unique index c_expr_note_tag on c_expr_note (c_expr_id, lower(tag));
  insert into c_expr_note values (1, 1, 'X'), (2, 2, 'x'), (3, 2, 'y');
  create table c_def (id int primary key, org_id int references org, k int,
                      constraint c_def_key unique (org_id, k) deferrable initially deferred);
  insert into c_def values (1, 1, 1), (2, 2, 1), (3, 2, 2);
  create table c_two (id int primary key, org_id int references org, a int, b int, unique (org_id, a), unique (org_id, b));
  insert into c_two values (1, 1, 1, 1), (2, 2, 1, 2), (3, 2, 3, 1);
  create table c_nopk (org_id int references org, k int, unique (org_id, k));
  insert into c_nopk values (1, 1), (2, 1);                       -- (2, 1) merges into (1, 1), found by ctid
  do $$ begin  -- NULLS NOT DISTINCT is PostgreSQL 15+, and PL/pgSQL checks the syntax of a plain statement up front
    if current_setting('server_version_num')::int >= 150000 then
      execute 'create table c_nnd (id int primary key, org_id int references org, k int,
                                   unique nulls not distinct (org_id, k))';
      insert into c_nnd values (1, 1, null), (2, 2, null), (3, 2, 5);
    end if;
  end $$;
`;
const CONFIG = 'rules:\n  - { check: duplicate-rows, table: org, key: [name], repair: merge }\n';

let db: TestDb;
let config: string;
let nnd: boolean;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
  nnd = (await db.query("select to_regclass('c_nnd') is not null as ok"))[0]!.ok as boolean;
});
afterAll(() => db.drop());

const repair = async (...args: string[]) => {
  const res = await repairJson(db.url, config, ...args);
  expect(res.code, res.stderr).not.toBe(2);
  return res.doc;
};

describe('collision merging for every kind of unique key a child can have', () => {
  it('plain, partial, expression (and below it), deferrable, two keys, no primary key, NULLS NOT DISTINCT', async () => {
    const original = await db.checksums();
    const before = await tableStats(db);
    const dry = await repair();
    expect(await db.checksums()).toEqual(original);
    expect(dry.actions[0]).toMatchObject({
      groups: 2,
      rowsDeleted: 2,
      // plain 1, partial 1 (the inactive pair does not collide), expression 1 and its note 1, deferrable 1,
      // two keys 2, no primary key 1, NULLS NOT DISTINCT 1 (no child without a primary key is updated: undo
      // finds updated rows by their key)
      childRowsMerged: nnd ? 9 : 8,
      childRowsRepointed: nnd ? 7 : 6,
      skipped: 0,
    });
    const applied = await repair('--apply');
    expect(applied.actions).toEqual(dry.actions);

    expect(await db.query('select id, org_id, k, active from c_partial order by id')).toEqual([
      { id: 1, org_id: 1, k: 1, active: true },
      { id: 3, org_id: 1, k: 2, active: false },
      { id: 4, org_id: 1, k: 2, active: false },
      { id: 5, org_id: 1, k: 3, active: true },
      { id: 6, org_id: 1, k: 3, active: false },
    ]);
    expect(await db.query('select id, c_expr_id, tag from c_expr_note order by id')).toEqual([
      { id: 1, c_expr_id: 1, tag: 'X' },
      { id: 3, c_expr_id: 1, tag: 'y' },
    ]);
    expect(await db.query('select org_id, k from c_nopk order by 1, 2')).toEqual([{ org_id: 1, k: 1 }]);
    // conservation: the rows gone are the two orgs and exactly the child rows merged
    const after = await tableStats(db);
    const lost = Object.keys(before)
      .filter((t) => t !== 'public.org')
      .reduce((n, t) => n + before[t]!.rows - after[t]!.rows, 0);
    expect(lost).toBe(applied.actions[0]!.childRowsMerged);
    expect(before['public.org']!.rows - after['public.org']!.rows).toBe(2);
    // the server's keys: every unique index rebuilds, every foreign key holds
    for (const t of Object.keys(before)) await db.exec(`reindex table ${t}`);
    const dangling = await db.query(`select count(*)::int as n from (
      select org_id from c_plain union all select org_id from c_partial union all select org_id from c_expr
      union all select org_id from c_def union all select org_id from c_two union all select org_id from c_nopk) x
      where org_id not in (select id from org)`);
    expect(dangling).toEqual([{ n: 0 }]);
    for (const a of (await repair('--apply')).actions)
      expect(a).toMatchObject({ groups: 0, rowsDeleted: 0, childRowsRepointed: 0, childRowsMerged: 0 });

    const undo = await runCli(['undo', applied.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(original)) expect(now[t], t).toBe(sum);
  });
});
