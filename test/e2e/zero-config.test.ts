import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withReadOnlySnapshot } from '../../src/commands/context.js';
import type { CommonOptions } from '../../src/commands/options.js';
import type { Assumption } from '../../src/catalog/types.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runMigration } from '../support/migration.js';
import { runCli, scanFindings, writeConfig } from '../support/run.js';

/**
 * The cases of issue 14, each as a small schema of its own: what a zero-config scan assumed from a
 * name and the data contradicted, and design that is not damage.
 */
const SCHEMA = `
  -- A questionnaire app: answer.section_id names a section inside the questionnaire's JSON document,
  -- not a row of the section table (whose ids are elsewhere).
  create table section (id int primary key, title text not null);
  insert into section select g, 'section ' || g from generate_series(101, 140) g;
  create table answer (id int primary key, section_id int not null, body text);
  insert into answer select g, 1 + g % 12, 'x' from generate_series(1, 60) g;

  -- A candidate the server cannot compare (two collations): it cannot be weighed, so it is not taken.
  create table tag (id text collate "POSIX" primary key);
  insert into tag values ('a');
  create table label (id int primary key, tag_id text collate "C");
  insert into label values (1, 'a');

  -- The threshold, 80% of distinct values: 4 of 5 is a reference, 3 of 4 is not.
  create table box (id int primary key);
  insert into box select generate_series(1, 10);
  create table crate (id int primary key, box_id int);
  insert into crate values (1, 1), (2, 2), (3, 3), (4, 4), (5, 99);
  create table parcel (id int primary key, box_id int);
  insert into parcel values (1, 1), (2, 2), (3, 3), (4, 98), (5, null);

  -- A real reference without a foreign key, with real damage: 50 of 51 distinct values exist.
  create table customer (id int primary key);
  insert into customer select generate_series(1, 50);
  create table purchase (id int primary key, customer_id int);
  insert into purchase select g, case when g > 50 then 999 else g end from generate_series(1, 52) g;

  -- A workflow engine: workflows soft-delete; an outbox records when a row was deleted elsewhere,
  -- so every outbox row has "deletedAt" set: it is not a soft-delete marker.
  -- (id, tenant) contains the primary key: no two rows can ever share it. slug can collide.
  create table workflow (id int primary key, tenant int not null default 1, slug text unique, deleted_at timestamptz);
  create unique index workflow_id_tenant on workflow (id, tenant);
  insert into workflow select g, 1, 'w' || g, case when g = 5 then now() end from generate_series(1, 20) g;
  -- The engine keeps a soft-deleted workflow's steps on purpose.
  create table step (id int primary key, workflow_id int not null references workflow (id));
  insert into step select g, 1 + g % 20 from generate_series(1, 40) g;
  create table outbox (
    id int primary key,
    "workflowId" int not null,
    event_key text not null unique,
    "deletedAt" timestamptz not null default now()
  );
  insert into outbox select g, case when g > 40 then 404 else 1 + g % 20 end, 'e' || g from generate_series(1, 42) g;
`;

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(SCHEMA);
});
afterAll(() => db.drop());

const options = (configText?: string): CommonOptions => ({
  databaseUrl: db.url,
  format: 'json',
  color: false,
  duplicates: [],
  orphans: [],
  discover: true,
  failOn: 'error',
  sample: '5',
  statementTimeout: '1min',
  schema: [],
  config: configText ? writeConfig(configText) : '/dev/null',
});

async function assumptions(configText?: string): Promise<Assumption[]> {
  return withReadOnlySnapshot(options(configText), (_tx, snap) => Promise.resolve(snap.catalog.assumptions));
}

const about = (list: Assumption[], table: string, column: string) =>
  list.find((a) => a.table === table && a.column === column);

describe('inferred references need evidence', () => {
  it('lists a column that only shares a name as "not a reference", never as a finding', async () => {
    const findings = await scanFindings(db.url);
    expect(findings.filter((f) => f.table === 'public.answer')).toEqual([]);
    expect(about(await assumptions(), 'public.answer', 'section_id')).toEqual({
      kind: 'not-a-reference',
      table: 'public.answer',
      column: 'section_id',
      references: 'public.section(id)',
      evidence: '0 of 12 values found in public.section.id',
    });
  });

  it('takes a candidate from 80% of its distinct non-NULL values found in the parent', async () => {
    const list = await assumptions();
    expect(about(list, 'public.crate', 'box_id')).toMatchObject({
      kind: 'inferred-reference',
      evidence: 'matched 4 of 5 distinct values in public.box.id',
    });
    expect(about(list, 'public.parcel', 'box_id')).toMatchObject({
      kind: 'not-a-reference',
      evidence: '3 of 4 values found in public.box.id',
    });
  });

  it('does not take a candidate the server cannot compare, and the scan goes on', async () => {
    expect(about(await assumptions(), 'public.label', 'tag_id')).toMatchObject({
      kind: 'not-a-reference',
      evidence: expect.stringMatching(/^could not be compared with public\.tag\.id: could not determine/),
    });
    expect((await scanFindings(db.url)).filter((f) => f.table === 'public.label')).toEqual([]);
  });

  it('still finds the orphans of a reference the data supports, and shows the evidence', async () => {
    const findings = await scanFindings(db.url, { only: 'orphaned-rows' });
    expect(findings.find((f) => f.table === 'public.purchase')).toMatchObject({
      columns: ['customer_id'],
      references: 'public.customer(id)',
      inferred: true,
      severity: 'warning',
      missingParent: 2,
      groups: 1,
    });
    expect(about(await assumptions(), 'public.purchase', 'customer_id')).toMatchObject({
      kind: 'inferred-reference',
      evidence: 'matched 50 of 51 distinct values in public.customer.id',
    });
  });

  it('prints the evidence and one quiet line per rejected candidate; JSON lists both as assumptions', async () => {
    const text = await runCli(['scan', '--database-url', db.url, '--no-color']);
    expect(text.stdout).toContain(
      'not a reference: public.answer.section_id — 0 of 12 values found in public.section.id',
    );
    expect(text.stdout).toContain('matched 50 of 51 distinct values in public.customer.id');
    expect(text.stdout).not.toMatch(/answer\(section_id\)/);
    const json = JSON.parse((await runCli(['scan', '--database-url', db.url, '--format', 'json'])).stdout) as {
      assumptions: Assumption[];
    };
    expect(json.assumptions).toContainEqual({
      kind: 'not-a-reference',
      table: 'public.answer',
      column: 'section_id',
      evidence: '0 of 12 values found in public.section.id',
    });
  });

  it('verify-constraints --discover expects no foreign key the data does not support', async () => {
    const res = await runCli(['verify-constraints', '--database-url', db.url, '--discover', '--format', 'json']);
    const constraints = (JSON.parse(res.stdout) as { constraints: { table: string; columns: string[] }[] }).constraints;
    expect(constraints.map((c) => `${c.table}(${c.columns.join()})`)).toContain('public.purchase(customer_id)');
    expect(constraints.find((c) => c.table === 'public.answer')).toBeUndefined();
    const text = await runCli(['verify-constraints', '--database-url', db.url, '--discover', '--no-color']);
    expect(text.stdout).toContain('not a reference: public.answer.section_id — 0 of 12 values found');
    const plain = await runCli(['verify-constraints', '--database-url', db.url, '--no-color']);
    expect(plain.stdout).not.toContain('not a reference');
    expect(plain.stdout).toContain('not a soft-delete marker: public.outbox.deletedAt');
  });

  it('lists assumptions in markdown, and an empty list from runs, which reads no catalog', async () => {
    const md = await runCli(['scan', '--database-url', db.url, '--format', 'markdown']);
    expect(md.stdout).toContain('- not-a-reference: `public.answer.section_id` — 0 of 12 values found');
    const runs = await runCli(['runs', '--database-url', db.url, '--format', 'json']);
    expect(JSON.parse(runs.stdout)).toMatchObject({ command: 'runs', assumptions: [] });
  });
});

describe('soft-delete markers need evidence', () => {
  it('does not take a column set on every row for a marker: no false conflicts, its orphans found', async () => {
    const list = await assumptions();
    expect(about(list, 'public.outbox', 'deletedAt')).toMatchObject({ kind: 'not-a-soft-delete-marker' });
    expect(about(list, 'public.workflow', 'deleted_at')).toMatchObject({
      kind: 'soft-delete-marker',
      evidence: 'some rows live, some with deleted_at set',
    });
    const findings = await scanFindings(db.url);
    expect(findings.filter((f) => f.check === 'soft-delete-conflicts' && f.table === 'public.outbox')).toEqual([]);
    // Every outbox row counted as deleted would hide these: 2 rows point at no workflow, 2 at a deleted one.
    expect(findings.find((f) => f.table === 'public.outbox' && f.check === 'orphaned-rows')).toMatchObject({
      columns: ['workflowId'],
      missingParent: 2,
      deletedParent: 2,
    });
  });

  it('prints every marker assumed, and every one ruled out, under the summary line', async () => {
    const text = (await runCli(['scan', '--database-url', db.url, '--no-color'])).stdout;
    const head = text.split('\n\n')[0]!;
    expect(head).toContain('assumed: public.workflow.deleted_at marks soft-deleted rows');
    expect(head).toContain('not a soft-delete marker: public.outbox.deletedAt — every row has deletedAt set');
  });

  it('takes a marker the config names for the table, whatever the data says', async () => {
    const config = 'softDelete:\n  tables:\n    outbox: deletedAt\n';
    expect(about(await assumptions(config), 'public.outbox', 'deletedAt')).toBeUndefined();
    const findings = await scanFindings(db.url, { configText: config, only: 'soft-delete-conflicts' });
    expect(findings.find((f) => f.table === 'public.outbox')).toMatchObject({ groups: 42, rows: 42 });
  });
});

describe('design is not damage', () => {
  it('never reports a unique key that contains the primary key as a soft-delete conflict', async () => {
    const conflicts = (await scanFindings(db.url, { only: 'soft-delete-conflicts' })).filter(
      (f) => f.table === 'public.workflow',
    );
    // slug does not contain the primary key: the deleted workflow 5 still blocks 'w5'.
    expect(conflicts).toEqual([expect.objectContaining({ key: ['slug'], groups: 1, rows: 1 })]);
  });

  it('reports children of a soft-deleted parent as errors unless the config says they are kept', async () => {
    const step = (findings: Awaited<ReturnType<typeof scanFindings>>) =>
      findings.find((f) => f.table === 'public.step');
    expect(step(await scanFindings(db.url))).toMatchObject({ severity: 'error', deletedParent: 2, missingParent: 0 });
    expect(step(await scanFindings(db.url, { configText: 'deletedParent: ignore\n' }))).toBeUndefined();
    expect(step(await scanFindings(db.url, { configText: 'deletedParent: warning\n' }))).toMatchObject({
      severity: 'warning',
      deletedParent: 2,
    });
  });

  it('a rule with deletedParent: warning reports kept children as a warning, and repair leaves them', async () => {
    const config = writeConfig(
      [
        'rules:',
        '  - check: orphaned-rows',
        '    table: step',
        '    column: workflow_id',
        '    references: workflow.id',
        '    deletedParent: warning',
        '    repair: delete',
        '',
      ].join('\n'),
    );
    const scan = await runCli(['scan', '--database-url', db.url, '--config', config, '--format', 'json']);
    const findings = (JSON.parse(scan.stdout) as { findings: { table: string }[] }).findings;
    expect(findings.find((f) => f.table === 'public.step')).toMatchObject({
      source: 'config',
      severity: 'warning',
      deletedParent: 2,
    });
    const before = await db.checksums();
    const repair = await runCli(['repair', '--database-url', db.url, '--config', config, '--apply', '--no-discover']);
    expect(repair.code).toBe(0);
    const userTables = (sums: Record<string, string>) =>
      Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));
    expect(userTables(await db.checksums())).toEqual(userTables(before));
    expect((await db.query('select count(*)::int as n from step'))[0]).toEqual({ n: 40 });
  });
});

describe('the emitted migration never breaks the application unasked', () => {
  let mdb: TestDb;
  const config = writeConfig(
    [
      'rules:',
      '  - check: duplicate-rows',
      '    table: account',
      '    key: [tenancyId, email]',
      '  - check: orphaned-rows',
      '    table: invoice',
      '    column: account_id',
      '    references: account.id',
      '',
    ].join('\n'),
  );
  beforeAll(async () => {
    mdb = await freshDatabase(`
      create table account (id int primary key, "tenancyId" int not null, email text not null, deleted_at timestamptz);
      insert into account select g, 1 + g % 3, 'a' || g || '@x', null from generate_series(1, 30) g;
      -- Declared reference, one orphan: its foreign key would fail today.
      create table invoice (id int primary key, account_id int);
      insert into invoice select g, case when g = 1 then 999 else g end from generate_series(1, 10) g;
      -- Left NOT VALID by an earlier migration whose VALIDATE failed; one orphan.
      create table payment (id int primary key, account_id int);
      insert into payment select g, case when g = 1 then 998 else g end from generate_series(1, 10) g;
      alter table payment add constraint payment_account_fk foreign key (account_id) references account (id) not valid;
      -- Inferred (every value exists), never declared.
      create table note (id int primary key, account_id int);
      insert into note select g, g from generate_series(1, 10) g;
    `);
    // A wrong unique index whose CONCURRENTLY build failed: INVALID, and mismatched with the declared key.
    await expect(
      mdb.exec('create unique index concurrently account_tenancy on account ("tenancyId")'),
    ).rejects.toThrow();
  });
  afterAll(() => mdb.drop());

  interface Constraint {
    kind: string;
    table: string;
    columns: string[];
    status: string;
    violations: number;
    detail: string;
  }
  const verify = async (...args: string[]) => {
    const res = await runCli(['verify-constraints', '--database-url', mdb.url, '--format', 'json', ...args]);
    const doc = JSON.parse(res.stdout) as { constraints: Constraint[] };
    return { code: res.code, constraints: doc.constraints };
  };

  it('reports every NOT VALID foreign key, quotes no column, and exits 1', async () => {
    const { code, constraints } = await verify('--discover');
    expect(code).toBe(1);
    expect(constraints.find((c) => c.table === 'public.payment')).toMatchObject({
      kind: 'foreign-key',
      columns: ['account_id'],
      status: 'invalid',
      violations: 1,
      detail: expect.stringMatching(/payment_account_fk is NOT VALID/),
    });
    const text = await runCli(['verify-constraints', '--database-url', mdb.url, '--discover', '--no-color']);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/public\.payment\(account_id\)[\s\S]*invalid/);
    const withConfig = await verify('--config', config);
    expect(withConfig.constraints.find((c) => c.table === 'public.account')).toMatchObject({
      columns: ['tenancyId', 'email'],
      status: 'mismatch',
    });
  });

  it('drops the mismatched INVALID index, holds back what would fail or is only inferred, and says why', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'rowdoctor-zc-')), 'migration.sql');
    const res = await runCli([
      ...['verify-constraints', '--database-url', mdb.url, '--config', config, '--discover'],
      ...['--emit-migration', file],
    ]);
    expect(res.code).toBe(1);
    const sql = readFileSync(file, 'utf8');
    const drop = sql.indexOf('\nDROP INDEX CONCURRENTLY IF EXISTS "public"."account_tenancy";');
    const build = sql.indexOf('\nCREATE UNIQUE INDEX CONCURRENTLY');
    expect(drop).toBeGreaterThan(0);
    expect(build).toBeGreaterThan(drop);
    // The declared reference's orphan: its rule fixes it. The NOT VALID key's: nothing declares it.
    expect(sql).toMatch(/1 row\(s\) violate it today[^\n]*rowdoctor repair --apply \(your rule declares them\)/);
    expect(sql).toMatch(/\n-- ALTER TABLE "public"\."invoice" ADD CONSTRAINT/);
    expect(sql).toMatch(/nothing declares this reference[^\n]*table: public\.payment, column: account_id/);
    expect(sql).toMatch(/\n-- ALTER TABLE "public"\."payment" VALIDATE CONSTRAINT "payment_account_fk";/);
    expect(sql).toMatch(/-- REVIEW: inferred[\s\S]*\n-- ALTER TABLE "public"\."note" ADD CONSTRAINT/);
    expect(sql).not.toMatch(/\nALTER TABLE "public"\."(note|invoice)"/);

    await runMigration(mdb.url, file);
    expect(await mdb.query('select indexrelid::regclass::text as i from pg_index where not indisvalid')).toEqual([]);
    const added = await mdb.query<{ conname: string }>(
      "select conname from pg_constraint where contype = 'f' and conrelid in ('invoice'::regclass, 'note'::regclass)",
    );
    expect(added).toEqual([]);
    // What the application wrote before, it can still write.
    await mdb.exec('insert into invoice values (100, 997); insert into note values (100, 996)');
    const after = await verify('--config', config);
    expect(after.constraints.find((c) => c.table === 'public.account')).toMatchObject({ status: 'ok' });
  });

  it('--include-inferred writes the inferred foreign key to run', async () => {
    await mdb.exec('delete from note where id = 100');
    const file = join(mkdtempSync(join(tmpdir(), 'rowdoctor-zc-')), 'inferred.sql');
    await runCli([
      'verify-constraints',
      '--database-url',
      mdb.url,
      '--discover',
      '--include-inferred',
      '--emit-migration',
      file,
    ]);
    expect(readFileSync(file, 'utf8')).toMatch(/\nALTER TABLE "public"\."note" ADD CONSTRAINT "note_account_id_fkey"/);
  });
});
