import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { z } from 'zod';
import { join } from 'node:path';
import { createDemoDatabase, DEMO_DIR } from '../../src/demo/database.js';
import { freshDatabase, urlFor, type TestDb } from '../support/db.js';
import { runCli } from '../support/run.js';

// The JSON document exactly as ../shared/contract.md spells it.
const sample = z.strictObject({ key: z.array(z.unknown()), ids: z.array(z.unknown()) });
const base = {
  table: z.string().regex(/^[^.]+\.[^.]+$/),
  key: z.array(z.string()),
  where: z.string().nullable(),
  source: z.enum(['config', 'flag', 'discovered']),
  severity: z.enum(['error', 'warning']),
  groups: z.number().int().positive(),
  rows: z.number().int().positive(),
  samples: z.array(sample),
};
const time = z.string().regex(/^\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\d(\.\d{1,6})?Z?)?$/);
const dated = {
  createdAt: z.string(),
  first: time.nullable(),
  last: time.nullable(),
  perDay: z.array(z.strictObject({ day: z.string().regex(/^\d{4}-\d\d-\d\d$/), count: z.number().int().positive() })),
  before: z.number().int().nonnegative(),
  recent: z.number().int().nonnegative(),
  stillHappening: z.boolean(),
  undated: z.number().int().nonnegative(),
};
const duplicateDiagnosis = z.strictObject({
  ...dated,
  copyGap: z.strictObject({ p50: z.number(), p90: z.number(), max: z.number() }).nullable(),
  signature: z.enum(['double-submit', 'retry', 're-creation']).nullable(),
  differingColumns: z.array(z.strictObject({ column: z.string(), groups: z.number().int().positive() })),
});
const orphanDiagnosis = z.strictObject({
  ...dated,
  parentDeleted: z.strictObject({ first: time, last: time }).nullable(),
});
const finding = z.discriminatedUnion('check', [
  z.strictObject({ check: z.literal('duplicate-rows'), ...base, diagnosis: duplicateDiagnosis.nullable().optional() }),
  z.strictObject({ check: z.literal('soft-delete-conflicts'), ...base }),
  z.strictObject({
    check: z.literal('orphaned-rows'),
    ...base,
    columns: z.array(z.string()),
    references: z.string().regex(/^.+\(.+\)$/),
    missingParent: z.number().int().nonnegative(),
    deletedParent: z.number().int().nonnegative(),
    inferred: z.boolean(),
    diagnosis: orphanDiagnosis.nullable().optional(),
  }),
]);
const scanDocument = z.strictObject({
  tool: z.literal('rowdoctor'),
  schemaVersion: z.literal(1),
  command: z.literal('scan'),
  database: z.string().regex(/^[^:/@]+:\d+\/.+$/),
  warnings: z.array(z.strictObject({ code: z.literal('rls'), message: z.string(), table: z.string() })),
  findings: z.array(finding),
  assumptions: z.array(
    z.strictObject({
      kind: z.enum([
        'soft-delete-marker',
        'not-a-soft-delete-marker',
        'inferred-reference',
        'not-a-reference',
        'creation-time',
      ]),
      table: z.string(),
      column: z.string(),
      evidence: z.string(),
    }),
  ),
  summary: z.strictObject({ findings: z.number().int(), rows: z.number().int(), checks: z.number().int() }),
});

let url: string;
let db: TestDb;
const config = join(DEMO_DIR, 'rowdoctor.yml');

beforeAll(async () => {
  const admin = inject('pgAdminUrl');
  const name = `rd_demo_${Math.random().toString(36).slice(2, 8)}`;
  url = await createDemoDatabase(admin, (d) => urlFor(admin, d), name);
  db = await freshDatabase('create table account (id serial primary key, email text)');
});
afterAll(async () => {
  await db.drop();
  const { default: pg } = await import('pg');
  const c = new pg.Client(inject('pgAdminUrl'));
  await c.connect();
  await c.query(`drop database if exists ${new URL(url).pathname.slice(1)} with (force)`);
  await c.end();
});

describe('scan --format json on the demo database', () => {
  it("prints one document of the contract shape with the demo's exact counts, and exits 1", async () => {
    const res = await runCli(['scan', '--database-url', url, '--config', config, '--format', 'json']);
    expect(res.code).toBe(1);
    const doc = scanDocument.parse(JSON.parse(res.stdout));
    const byKey: Record<string, (typeof doc.findings)[number] & { diagnosis?: unknown }> = Object.fromEntries(
      doc.findings.map((f) => [
        `${f.check} ${f.table}(${(f.check === 'orphaned-rows' ? f.columns : f.key).join(',')})`,
        f,
      ]),
    );
    expect(byKey['duplicate-rows public.submission(invite_id)']).toMatchObject({
      groups: 12,
      rows: 14,
      source: 'config',
    });
    expect(byKey['duplicate-rows public.cloud_provider_accounts(provider,provider_account_id)']).toMatchObject({
      groups: 3,
      rows: 3,
      source: 'config',
    });
    expect(byKey['orphaned-rows public.refresh_token(user_id)']).toMatchObject({
      missingParent: 15,
      deletedParent: 25,
      rows: 40,
      groups: 35,
    });
    expect(byKey['orphaned-rows public.audit_event(user_id)']).toMatchObject({
      missingParent: 3,
      deletedParent: 5,
      inferred: false,
      severity: 'error',
    });
    expect(byKey['orphaned-rows public.moodle_token(user_id)']).toMatchObject({ missingParent: 0, deletedParent: 6 });
    // Without the config, discovery alone: the INVALID index, the NOT VALID FK, the inferred reference.
    const zero = scanDocument.parse(
      JSON.parse((await runCli(['scan', '--database-url', url, '--config', '/dev/null', '--format', 'json'])).stdout),
    );
    const sources = Object.fromEntries(
      zero.findings.map((f) => [
        `${f.table}(${(f.check === 'orphaned-rows' ? f.columns : f.key).join(',')})`,
        `${f.source} ${f.severity}`,
      ]),
    );
    expect(sources).toEqual({
      'public.cloud_provider_accounts(provider,provider_account_id)': 'discovered error',
      'public.refresh_token(user_id)': 'discovered error',
      'public.audit_event(user_id)': 'discovered warning',
      'public.cloud_provider_accounts(user_id)': 'discovered error',
      'public.moodle_token(user_id)': 'discovered error',
      'public.moodle_token(moodle_user_id)': 'discovered error',
    });
    expect(byKey['soft-delete-conflicts public.moodle_token(moodle_user_id)']).toMatchObject({ groups: 2, rows: 2 });
    expect(doc.summary).toEqual({
      findings: doc.findings.length,
      rows: doc.findings.reduce((n, f) => n + f.rows, 0),
      checks: doc.summary.checks,
    });
    expect(doc.database).toMatch(/^127\.0\.0\.1:\d+\/rd_demo_/);
    // The demo's story, diagnosed: a double submit still happening, whose copies differ in status in
    // two groups; a re-creation weeks later; tokens still issued to deleted users; no creation time.
    expect(byKey['duplicate-rows public.submission(invite_id)']!.diagnosis).toMatchObject({
      createdAt: 'created_at',
      recent: 6,
      stillHappening: true,
      signature: 'double-submit',
      // gaps from each group's first row: twelve copies 0.3 s after it, two third copies 0.6 s
      copyGap: { p50: 0.3, p90: expect.closeTo(0.51, 9), max: 0.6 },
      differingColumns: [{ column: 'status', groups: 2 }],
    });
    expect(
      byKey['duplicate-rows public.cloud_provider_accounts(provider,provider_account_id)']!.diagnosis,
    ).toMatchObject({
      signature: 're-creation',
      stillHappening: false,
      differingColumns: [{ column: 'user_id', groups: 3 }],
    });
    expect(byKey['orphaned-rows public.refresh_token(user_id)']!.diagnosis).toMatchObject({
      recent: 5,
      stillHappening: true,
      parentDeleted: { first: expect.stringMatching(/Z$/), last: expect.stringMatching(/Z$/) },
    });
    expect(byKey['orphaned-rows public.moodle_token(user_id)']!.diagnosis).toBeNull();
    expect(byKey['soft-delete-conflicts public.moodle_token(moodle_user_id)']).not.toHaveProperty('diagnosis');
    expect(doc.assumptions).toContainEqual(expect.objectContaining({ kind: 'creation-time', column: 'created_at' }));
  });

  it('diagnoses in text (one line and a sparkline per finding), shows sample rows, and leaves it all out with --no-diagnose', async () => {
    const res = await runCli(['scan', '--database-url', url, '--config', config, '--show-rows', '1', '--recent', '2h']);
    expect(res.stdout).toMatch(
      /public\.submission\(invite_id\)\n {2}first \d{4}-\d\d-\d\d · last \d{4}-\d\d-\d\d \d\d:\d\d · still happening: 2 in 2 h · copies 0\.3 s apart \(double-submit\) · copies differ in status \(2 groups\)\n {2}\d{4}-\d\d-\d\d [·▁▂▃▄▅▆▇█]{30} \d{4}/,
    );
    expect(res.stdout).toMatch(
      / {4}id +invite_id +external_id +status\* +created_at\n {4}1 +1 +NTX-2001 +pending_review/,
    );
    expect(res.stdout).toContain('public.moodle_token(user_id) -> public.users(id)\n  no creation time: a created_at');
    const off = await runCli(['scan', '--database-url', url, '--config', config, '--format', 'json', '--no-diagnose']);
    const doc = scanDocument.parse(JSON.parse(off.stdout));
    expect(doc.findings.filter((f) => 'diagnosis' in f)).toEqual([]);
    expect(doc.assumptions.filter((a) => a.kind === 'creation-time')).toEqual([]);
  });

  it('changes nothing in the database', async () => {
    const c = new (await import('pg')).default.Client(url);
    await c.connect();
    const sums = async () =>
      (
        await c.query(`select md5(string_agg(t::text, '|' order by t::text)) as h from (
      select 'submission' as n, s::text as t from submission s union all select 'refresh', r::text from refresh_token r
      union all select 'moodle', m::text from moodle_token m) t`)
      ).rows[0].h;
    const before = await sums();
    await runCli(['scan', '--database-url', url, '--config', config]);
    expect(await sums()).toBe(before);
    await c.end();
  });

  it('makes a reference declared by --orphans an error (exit 1), where discovery alone only warns', async () => {
    const flag = ['--orphans', 'public.audit_event.user_id -> public.users.id'];
    const declared = await runCli(['scan', '--database-url', url, '--no-discover', ...flag, '--format', 'json']);
    expect(declared.code).toBe(1);
    expect(JSON.parse(declared.stdout).findings).toEqual([
      expect.objectContaining({ source: 'flag', severity: 'error', inferred: false, rows: 8 }),
    ]);
  });

  it('renders markdown for an incident doc', async () => {
    const res = await runCli(['scan', '--database-url', url, '--config', config, '--format', 'markdown']);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^### rowdoctor scan/);
    expect(res.stdout).toContain(
      '| duplicate-rows | `public.submission` | `invite_id` |  | 12 | 14 | error | config |',
    );
  });

  it('reads the URL from DATABASE_URL', async () => {
    const res = await runCli(['scan', '--no-discover', '--format', 'json'], { env: { DATABASE_URL: url } });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).summary).toEqual({ findings: 0, rows: 0, checks: 0 });
  });

  it('reads libpq PG* variables when no URL is given', async () => {
    const u = new URL(url);
    const env = {
      PGHOST: u.hostname,
      PGPORT: u.port,
      PGUSER: u.username,
      PGPASSWORD: u.password,
      PGDATABASE: u.pathname.slice(1),
    };
    const res = await runCli(['scan', '--no-discover', '--format', 'json'], { env });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).database).toBe(`${u.hostname}:${u.port}/${u.pathname.slice(1)}`);
  });
});

describe('warnings only', () => {
  it('exit 0 on warnings alone, 1 with --fail-on warning', async () => {
    // 9 of 10 distinct user_id values exist in users: an inferred reference, with one orphan.
    await db.exec(`create table users (id int primary key); create table note (id int primary key, user_id int);
                   insert into users select generate_series(1, 9);
                   insert into note select g, case when g = 10 then 77 else g end from generate_series(1, 10) g;`);
    const args = ['scan', '--database-url', db.url, '--format', 'json'];
    const res = await runCli(args);
    expect(JSON.parse(res.stdout).findings.map((f: { severity: string }) => f.severity)).toEqual(['warning']);
    expect(res.code).toBe(0);
    expect((await runCli([...args, '--fail-on', 'warning'])).code).toBe(1);
  });
});
