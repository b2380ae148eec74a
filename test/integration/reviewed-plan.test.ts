import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig, type RepairDoc } from '../support/run.js';

// 20 duplicate groups of customers by email: c1…c5 held by three rows, c6…c20 by two; 15 more
// customers alone. Orders point at every customer, losers included.
const FIXTURE = `
  create table customers (id int primary key, email text not null, name text, seen timestamptz);
  insert into customers
    select i, 'c' || case when i <= 20 then i when i <= 40 then i - 20 when i <= 45 then i - 40 else i end,
           'n' || i, timestamptz '2024-01-01 00:00+00' + i * interval '1 hour'
      from generate_series(1, 60) i;
  create table orders (id int primary key, customer_id int not null references customers, amount int not null);
  create index on orders (customer_id);
  insert into orders select i, 1 + i % 60, i * 10 from generate_series(1, 120) i;
`;
const MERGE = writeConfig(
  `rules:\n  - check: duplicate-rows\n    table: customers\n    key: [email]\n    repair: merge\n`,
);

interface PlanFile {
  tool: string;
  schemaVersion: number;
  kind: string;
  database: { name: string; systemIdentifier: string };
  createdAt: string;
  schemaFingerprint: { md5: string; tables: Record<string, unknown> };
  rules: { rule: string }[];
  groups: {
    key: unknown[];
    survivor: unknown;
    losers: unknown[];
    rows: { id: unknown; fingerprint: string }[];
    children: { reference: string; ids: unknown[] }[];
    delete: unknown[];
  }[];
  summary: Record<string, unknown>;
}

const dir = mkdtempSync(join(tmpdir(), 'rowdoctor-plan-'));
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as PlanFile;
const md5 = (file: string) => createHash('md5').update(readFileSync(file)).digest('hex');

async function planOut(db: TestDb, file: string) {
  const res = await repairJson(db.url, MERGE, '--plan-out', file);
  expect(res.stderr).not.toMatch(/error/i);
  expect(res.code).toBe(1);
  expect(res.stderr).toContain(`rowdoctor plan show ${file}`);
  expect(res.stderr).toContain(`rowdoctor repair --apply --plan ${file}`);
  return res;
}

describe('reviewed plans: repair --plan-out, then --apply --plan', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDatabase(FIXTURE);
  });
  afterAll(() => db.drop());

  it('applies exactly the unchanged groups of the plan: skips what changed since, leaves a new group, undoes', async () => {
    const file = join(dir, 'plan.json');
    const dry = await planOut(db, file);
    const plan = readJson(file);
    expect(plan).toMatchObject({ tool: 'rowdoctor', schemaVersion: 1, kind: 'rowdoctor-plan' });
    expect(plan.database.name).toBe(db.name);
    expect(plan.database.systemIdentifier).toMatch(/^\d+$/);
    expect(plan.rules.map((r) => r.rule)).toEqual(['public.customers(email)']);
    expect(Object.keys(plan.schemaFingerprint.tables).sort()).toEqual(['public.customers', 'public.orders']);
    expect(plan.groups).toHaveLength(20);
    // The summary is the dry run's counts.
    const { skippedGroups, ...counts } = dry.doc.actions[0]!;
    void skippedGroups;
    expect((plan.summary as { actions: unknown[] }).actions).toEqual([counts]);
    expect(plan.summary).toMatchObject({ groups: 20, rowsDeleted: 25, childRowsRepointed: counts.childRowsRepointed });
    const c3 = plan.groups.find((g) => JSON.stringify(g.key) === '["c3"]')!;
    expect(c3).toMatchObject({ survivor: 3, losers: [23, 43], delete: [23, 43] });
    expect(c3.rows.map((r) => r.id)).toEqual([3, 23, 43]);
    expect(c3.rows.every((r) => /^[0-9a-f]{32}$/.test(r.fingerprint))).toBe(true);
    const [own] = await db.query<{ ids: number[] }>(
      `select array_agg(id order by id) as ids from orders where customer_id in (23, 43)`,
    );
    expect(c3.children).toEqual([
      { reference: 'public.orders(customer_id) -> public.customers(id)', table: 'public.orders', ids: own!.ids },
    ]);

    // plan show: per rule the counts, per group what stays, goes and moves.
    const shown = await runCli(['plan', 'show', file]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/20 groups/);
    expect(shown.stdout).toMatch(/\(c3\) keeps 3, deletes 23, 43/);
    const markdown = await runCli(['plan', 'show', file, '--format', 'markdown']);
    expect(markdown.stdout).toMatch(/^\| c3 \| 3 \| deletes 23, 43 \| public\.orders/m);

    // Meanwhile the application edits a loser (c3), adds a copy to another group (c7) and makes a new group.
    await db.exec(`
      update customers set name = 'edited' where id = 23;
      insert into customers values (100, 'c7', 'late copy', now()), (101, 'new', 'a', now()), (102, 'new', 'b', now());`);
    const before = await tableStats(db);
    const sums = await db.checksums();

    // From a session that prints rows otherwise (the fingerprints do not depend on it).
    const env = { PGOPTIONS: '-c TimeZone=Asia/Tokyo -c DateStyle=German -c extra_float_digits=0' };
    const cli = await runCli(
      ['repair', '--database-url', db.url, '--config', MERGE, '--no-discover', '--format', 'json'].concat([
        '--apply',
        '--plan',
        file,
      ]),
      { env },
    );
    const applied = { ...cli, doc: JSON.parse(cli.stdout) as RepairDoc };
    expect(applied.stderr).not.toMatch(/error/i);
    expect(applied.code).toBe(1);
    const action = applied.doc.actions[0]!;
    expect(action).toMatchObject({ groups: 18, skipped: 2, rowsDeleted: 22 });
    expect(action.skippedGroups.map((g) => [g.key, g.reason])).toEqual([
      [['c3'], 'changed since the plan'],
      [['c7'], 'changed since the plan'],
    ]);
    const left = await db.query<{ email: string; ids: number[] }>(
      `select email, array_agg(id order by id) as ids from customers group by email having count(*) > 1 order by email`,
    );
    expect(left).toEqual([
      { email: 'c3', ids: [3, 23, 43] },
      { email: 'c7', ids: [7, 27, 100] },
      { email: 'new', ids: [101, 102] },
    ]);
    // Conservation: 22 losers gone, every order kept with its amount, none pointing at a deleted row.
    const after = await tableStats(db);
    expect(after['public.customers']!.rows).toBe(before['public.customers']!.rows - 22);
    expect(after['public.orders']).toEqual({
      ...before['public.orders'],
      sums: { ...before['public.orders']!.sums, customer_id: after['public.orders']!.sums.customer_id },
    });
    const [dangling] = await db.query<{ n: number }>(
      `select count(*)::int as n from orders o where not exists (select 1 from customers c where c.id = o.customer_id)`,
    );
    expect(dangling!.n).toBe(0);

    // The run records the plan's md5, and runs shows it.
    const runs = await runCli(['runs', '--database-url', db.url, '--format', 'json']);
    const run = (JSON.parse(runs.stdout) as { runs: { runId: string; plan: string | null }[] }).runs[0]!;
    expect(run).toMatchObject({ runId: applied.doc.runId, plan: md5(file) });
    expect((await runCli(['runs', '--database-url', db.url])).stdout).toContain(md5(file).slice(0, 12));

    // Undo as for any repair: every table as it was before the apply.
    const undo = await runCli(['undo', applied.doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code).toBe(0);
    const userTables = (all: Record<string, string>) =>
      Object.fromEntries(Object.entries(all).filter(([t]) => t.startsWith('public.')));
    expect(userTables(await db.checksums())).toEqual(sums);
  });
});

describe('reviewed plans: refusals', () => {
  let db: TestDb;
  let other: TestDb;
  beforeAll(async () => {
    [db, other] = await Promise.all([freshDatabase(FIXTURE), freshDatabase(FIXTURE)]);
  });
  afterAll(() => Promise.all([db.drop(), other.drop()]));

  it('refuses a plan made on another database, and one whose table gained a column, with nothing changed', async () => {
    const file = join(dir, 'refused.json');
    await planOut(db, file);
    const otherSums = await other.checksums();
    const elsewhere = await repairJson(other.url, MERGE, '--apply', '--plan', file);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toContain(`it was made on database ${db.name}`);
    expect(elsewhere.stderr).toContain(`this is ${other.name}`);
    expect(await other.checksums()).toEqual(otherSums);

    await db.exec(`alter table customers add column note text`);
    const sums = await db.checksums();
    const reshaped = await repairJson(db.url, MERGE, '--apply', '--plan', file);
    expect(reshaped.code).toBe(2);
    expect(reshaped.stderr).toContain('public.customers changed shape since the plan: its columns');
    expect(reshaped.stderr).toContain('nothing was changed');
    expect(await db.checksums()).toEqual(sums);
    const [runs] = await db.query<{ n: number }>(
      `select count(*)::int as n from pg_namespace where nspname = 'rowdoctor_backup'`,
    );
    expect(runs!.n).toBe(0);
  });

  it('skips a group whose loser gained a child since the plan, and merges the rest', async () => {
    const file = join(dir, 'child.json');
    await planOut(other, file);
    await other.exec(`insert into orders values (500, 29, 7)`);
    const applied = await repairJson(other.url, MERGE, '--apply', '--plan', file);
    expect(applied.code).toBe(1);
    expect(applied.doc.actions[0]).toMatchObject({ groups: 19, skipped: 1 });
    expect(applied.doc.actions[0]!.skippedGroups).toEqual([
      { key: ['c9'], ids: [9, 29], reason: 'changed since the plan' },
    ]);
    const [order] = await other.query<{ customer_id: number }>(`select customer_id from orders where id = 500`);
    expect(order!.customer_id).toBe(29);
  });
});

// Snowflake-style ids past 2^53: a double cannot hold them, so the plan must spell them as text.
const BIG = 9007199254740993n;
const BIG_IDS = `
  create table customers (id bigint primary key, email text not null, name text);
  insert into customers select ${BIG} + i * 2, 'c' || (i % 20), 'n' || i from generate_series(1, 40) i;
  create table orders (id bigint primary key, customer_id bigint not null references customers, amount int not null);
  create index on orders (customer_id);
  insert into orders select ${BIG} + i * 2, ${BIG} + (1 + i % 40) * 2, i from generate_series(1, 80) i;
`;

describe('reviewed plans: int8 ids a double cannot hold', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDatabase(BIG_IDS);
  });
  afterAll(() => db.drop());

  it('names them exactly in the plan, and applies every planned group', async () => {
    const file = join(dir, 'big.json');
    await planOut(db, file);
    const plan = readJson(file);
    expect(plan.groups).toHaveLength(20);
    const first = plan.groups.find((g) => JSON.stringify(g.key) === '["c1"]')!;
    // c1: i = 1 and 21; survivor the lower id (created first), as text.
    expect(first).toMatchObject({ survivor: String(BIG + 2n), losers: [String(BIG + 42n)] });
    expect(first.children[0]!.ids).toEqual([String(BIG + 40n), String(BIG + 120n)]);
    const before = await tableStats(db);
    const applied = await repairJson(db.url, MERGE, '--apply', '--plan', file);
    expect(applied.code).toBe(0);
    expect(applied.doc.actions[0]).toMatchObject({ groups: 20, skipped: 0, rowsDeleted: 20 });
    const after = await tableStats(db);
    expect(after['public.customers']!.rows).toBe(before['public.customers']!.rows - 20);
    expect(after['public.orders']!.rows).toBe(before['public.orders']!.rows);
    expect(after['public.orders']!.sums.amount).toBe(before['public.orders']!.sums.amount);
  });
});

describe('reviewed plans: a planned group that is no longer a group', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDatabase(FIXTURE);
  });
  afterAll(() => db.drop());

  it('is skipped as changed since the plan when its loser left the key, not silently dropped', async () => {
    const file = join(dir, 'vanished.json');
    await planOut(db, file);
    // c10 was 10 and 30: the application moves 30 to another email, so no group c10 is listed now.
    await db.exec(`update customers set email = 'moved' where id = 30`);
    const before = await tableStats(db);
    const applied = await repairJson(db.url, MERGE, '--apply', '--plan', file);
    expect(applied.code).toBe(1);
    expect(applied.doc.actions[0]).toMatchObject({ groups: 19, skipped: 1, rowsDeleted: 24 });
    expect(applied.doc.actions[0]!.skippedGroups).toEqual([
      { key: ['c10'], ids: [10, 30], reason: 'changed since the plan' },
    ]);
    const after = await tableStats(db);
    expect(after['public.customers']!.rows).toBe(before['public.customers']!.rows - 24);
    expect(after['public.orders']!.rows).toBe(before['public.orders']!.rows);
    expect(after['public.orders']!.sums.amount).toBe(before['public.orders']!.sums.amount);
    const [kept] = await db.query<{ n: number }>(`select count(*)::int as n from customers where id in (10, 30)`);
    expect(kept!.n).toBe(2);
  });
});
