import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XMLParser } from 'fast-xml-parser';
import { z } from 'zod';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

const FIXTURE = `
  create table u (id int primary key, email text, tenant int, code text, a int, b int, deleted_at timestamptz);
  insert into u values (1, 'x', 1, 'A', 1, 1, null), (2, 'x', 2, 'b', 1, 1, '2026-01-01'), (3, 'y', 1, 'c', 2, 2, null), (4, 'z', 2, 'D', 1, 2, null);
  create unique index u_email_live on u (email) where deleted_at is null;   -- the expected partial index
  create unique index u_tenant_code on u (tenant, code) include (a);        -- INCLUDE a is not a key column
  create unique index u_lower_code on u (lower(code));                      -- expression key
  create table w (id int primary key, k int);
  insert into w values (1, 1), (2, 1), (3, 2);
  create table nd (id int primary key, p int, q int);
  insert into nd values (1, 1, null), (2, 2, 2);
  create unique index nd_pq on nd (p, q);                                     -- NULLS DISTINCT
  create table r (id int primary key, during int4range, exclude using gist (during with &&));
  insert into r values (1, '[1,5)'), (2, '[5,9)');
  create table pt (k int, part int not null) partition by list (part);
  create table pt_1 partition of pt for values in (1);
  create table pt_2 partition of pt for values in (2);
  insert into pt values (1, 1), (1, 2), (2, 1);
  create unique index pt_k_part on only pt (k, part);                         -- INVALID until each partition's index is attached
  create table parent (id int primary key, deleted_at timestamptz);
  insert into parent values (1, null), (2, now());
  create table child_ok (id int primary key, parent_id int references parent (id));
  create table child_nv (id int primary key, parent_id int);
  insert into child_nv values (1, 1), (2, 9), (3, 2);
  alter table child_nv add constraint child_nv_parent_fkey foreign key (parent_id) references parent (id) not valid;
  create table child_none (id int primary key, parent_id int);
  insert into child_none values (1, 1), (2, 2), (3, 7), (4, null);
`;

const CONFIG = `rules:
  - check: duplicate-rows           # a soft-deleting table: expects the partial index WHERE deleted_at IS NULL
    table: u
    key: [email]
  - check: duplicate-rows
    table: u
    key: [{ expr: "lower(code)" }]
    includeSoftDeleted: true
  - check: duplicate-rows
    table: w
    key: [k]
  - check: duplicate-rows
    table: nd
    key: [p, q]
    nullsNotDistinct: true
  - check: orphaned-rows
    table: child_nv
    column: parent_id
    references: parent.id
`;
const FLAGS = [
  '--expect',
  'u(tenant, code, a)',
  '--expect',
  'u(tenant, a)',
  '--expect',
  'u(a, b)',
  '--expect',
  'r(during)',
  '--expect',
  'pt(k, part)',
  '--expect',
  'pt(k)',
  '--expect-fk',
  'child_ok(parent_id) -> parent(id)',
  '--expect-fk',
  'child_none(parent_id) -> parent(id)',
];

const constraint = z.strictObject({
  kind: z.enum(['unique', 'foreign-key']),
  table: z.string(),
  columns: z.array(z.string()),
  references: z.string().optional(),
  where: z.string().nullable(),
  status: z.enum(['ok', 'missing', 'invalid', 'mismatch']),
  detail: z.string().min(1),
  violations: z.number().int().nonnegative().nullable(),
  ddl: z.array(z.string()),
});
const doc = z.object({
  tool: z.literal('rowdoctor'),
  schemaVersion: z.literal(1),
  command: z.literal('verify-constraints'),
  database: z.string(),
  constraints: z.array(constraint),
});
type C = z.infer<typeof constraint>;

let db: TestDb;
let config: string;
let verdicts: C[];
let serverVersion = 0;
beforeAll(async () => {
  db = await freshDatabase();
  serverVersion = Number((await db.query<{ v: string }>("select current_setting('server_version_num') as v"))[0]!.v);
  await db.exec(FIXTURE);
  await expect(db.exec('create unique index concurrently w_k on w (k)')).rejects.toMatchObject({ code: '23505' });
  // NULLS NOT DISTINCT needs PostgreSQL 15: before it, such a rule cannot be verified (normalize says so).
  config = writeConfig(
    serverVersion >= 150000
      ? CONFIG
      : CONFIG.replace(/ {2}- check: duplicate-rows\n {4}table: nd\n[\s\S]*?(?= {2}- check)/, ''),
  );
  const res = await runCli([
    'verify-constraints',
    '--database-url',
    db.url,
    '--config',
    config,
    '--format',
    'json',
    ...FLAGS,
  ]);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(1);
  verdicts = doc.parse(JSON.parse(res.stdout)).constraints;
});
afterAll(() => db.drop());

const find = (table: string, columns: string) =>
  verdicts.find((v) => v.table === table && v.columns.join(', ') === columns)!;

describe('verify-constraints verdicts', () => {
  it('matches a partial unique index for a soft-deleting table, comparing the server-normalised predicate', () => {
    expect(find('public.u', 'email')).toMatchObject({
      status: 'ok',
      where: 'deleted_at IS NULL',
      violations: 0,
      ddl: [],
    });
  });

  it('accepts a unique index on a subset of the key; INCLUDE columns are not key columns', () => {
    expect(find('public.u', 'tenant, code, a')).toMatchObject({
      status: 'ok',
      detail: expect.stringMatching(/u_tenant_code on \(tenant, code\), a subset/),
    });
    expect(find('public.u', 'tenant, a')).toMatchObject({
      status: 'mismatch',
      detail: expect.stringMatching(/has code, which is not in the expected key/),
    });
  });

  it('compares expression keys after normalisation', () => {
    expect(find('public.u', 'lower(code)')).toMatchObject({ status: 'ok' });
  });

  it('reports a missing key with its violations and the lock-safe DDL', () => {
    expect(find('public.u', 'a, b')).toMatchObject({
      status: 'missing',
      violations: 1,
      ddl: [
        "SET lock_timeout = '2s'",
        'CREATE UNIQUE INDEX CONCURRENTLY "u_a_b_key" ON "public"."u" (a, b)',
        'ALTER TABLE "public"."u" ADD CONSTRAINT "u_a_b_key" UNIQUE USING INDEX "u_a_b_key"',
      ],
    });
  });

  it('reports an INVALID index as invalid, dropping it CONCURRENTLY before rebuilding it as it was (never IF NOT EXISTS)', () => {
    const v = find('public.w', 'k');
    expect(v).toMatchObject({ status: 'invalid', violations: 1 });
    // w_k was a plain unique index: it comes back as one, under its own name, not as a constraint
    expect(v.ddl).toEqual([
      "SET lock_timeout = '2s'",
      'DROP INDEX CONCURRENTLY IF EXISTS "public"."w_k"',
      'CREATE UNIQUE INDEX CONCURRENTLY "w_k" ON "public"."w" (k)',
    ]);
    expect(verdicts.filter((x) => x.table === 'public.w')).toHaveLength(1); // expected and INVALID: reported once
  });

  it('says which NULL semantics differ', ({ skip }) => {
    if (serverVersion < 150000) skip();
    expect(find('public.nd', 'p, q')).toMatchObject({
      status: 'mismatch',
      detail: expect.stringMatching(/NULLS DISTINCT, expected NULLS NOT DISTINCT/),
    });
  });

  it('does not count an exclusion constraint as a unique key', () => {
    expect(find('public.r', 'during')).toMatchObject({ status: 'missing' });
  });

  it('treats a partitioned parent index without attached partition indexes as invalid, and completes it partition by partition', async () => {
    const v = find('public.pt', 'k, part');
    expect(v.status).toBe('invalid');
    expect(v.ddl).toEqual([
      "SET lock_timeout = '2s'",
      'CREATE UNIQUE INDEX CONCURRENTLY "pt_1_k_part_key" ON "public"."pt_1" (k, part)',
      'ALTER INDEX "public"."pt_k_part" ATTACH PARTITION "public"."pt_1_k_part_key"',
      'CREATE UNIQUE INDEX CONCURRENTLY "pt_2_k_part_key" ON "public"."pt_2" (k, part)',
      'ALTER INDEX "public"."pt_k_part" ATTACH PARTITION "public"."pt_2_k_part_key"',
    ]);
    expect(v.ddl.join('\n')).not.toMatch(/IF NOT EXISTS/);
    // Run it: the parent's index becomes valid once the last partition's index is attached.
    const copy = await freshDatabase(FIXTURE);
    try {
      for (const statement of v.ddl) await copy.exec(statement);
      expect(await copy.query("select indisvalid from pg_index where indexrelid = 'pt_k_part'::regclass")).toEqual([
        { indisvalid: true },
      ]);
    } finally {
      await copy.drop();
    }
  });

  it('warns that a partitioned table cannot enforce a key without its partition key', () => {
    expect(find('public.pt', 'k')).toMatchObject({
      status: 'mismatch',
      ddl: [],
      detail: expect.stringMatching(
        /cannot be enforced: a unique index on partitioned table public.pt must include its partition key \(part\)/,
      ),
    });
  });

  it('foreign keys: ok, NOT VALID → invalid (VALIDATE), missing → NOT VALID then VALIDATE; violations ignore soft-deleted parents', () => {
    expect(find('public.child_ok', 'parent_id')).toMatchObject({
      kind: 'foreign-key',
      status: 'ok',
      references: 'public.parent(id)',
    });
    expect(find('public.child_nv', 'parent_id')).toMatchObject({
      status: 'invalid',
      violations: 1,
      ddl: ["SET lock_timeout = '2s'", 'ALTER TABLE "public"."child_nv" VALIDATE CONSTRAINT "child_nv_parent_fkey"'],
    });
    expect(find('public.child_none', 'parent_id')).toMatchObject({
      status: 'missing',
      violations: 1,
      ddl: [
        "SET lock_timeout = '2s'",
        'ALTER TABLE "public"."child_none" ADD CONSTRAINT "child_none_parent_id_fkey" FOREIGN KEY ("parent_id") REFERENCES "public"."parent" ("id") NOT VALID',
        'ALTER TABLE "public"."child_none" VALIDATE CONSTRAINT "child_none_parent_id_fkey"',
      ],
    });
  });
});

describe('PostgreSQL as the oracle', () => {
  it('each proposed index builds CONCURRENTLY exactly when violations is 0', async () => {
    const candidates = verdicts.filter(
      (v) =>
        v.kind === 'unique' &&
        v.ddl.some((d) => d.startsWith('CREATE UNIQUE INDEX CONCURRENTLY')) &&
        !v.ddl.some((d) => d.includes('ON ONLY')),
    );
    expect(candidates.length).toBeGreaterThanOrEqual(3);
    for (const v of candidates) {
      const build = v.ddl
        .find((d) => d.startsWith('CREATE UNIQUE INDEX CONCURRENTLY'))!
        .replace(/INDEX CONCURRENTLY "([^"]+)"/, 'INDEX CONCURRENTLY "oracle_$1"');
      const ok = await db.exec(build).then(
        () => true,
        () => false,
      );
      expect(ok, `${v.table}(${v.columns.join(', ')}) violations=${v.violations}`).toBe(v.violations === 0);
      await db.exec(`drop index if exists ${build.match(/"oracle_[^"]+"/)![0]}`);
    }
    // And after deleting the violating rows, they all build.
    await db.exec('delete from u where id = 2; delete from w where id = 2');
    for (const v of candidates) {
      const build = v.ddl
        .find((d) => d.startsWith('CREATE UNIQUE INDEX CONCURRENTLY'))!
        .replace(/INDEX CONCURRENTLY "([^"]+)"/, 'INDEX CONCURRENTLY "oracle2_$1"');
      await db.exec(build);
    }
  });

  it('inserting a duplicate raises 23505 exactly when the status is ok', async () => {
    const attempts: [C, string][] = [
      [find('public.u', 'email'), "insert into u (id, email, tenant, code) values (100, 'y', 9, 'q1')"],
      [find('public.u', 'tenant, code, a'), "insert into u (id, email, tenant, code, a) values (101, 'n1', 1, 'c', 2)"],
      [find('public.u', 'lower(code)'), "insert into u (id, email, tenant, code) values (102, 'n2', 7, 'a')"],
      [find('public.u', 'tenant, a'), "insert into u (id, email, tenant, code, a) values (103, 'n3', 1, 'zz', 1)"],
      [find('public.r', 'during'), "insert into r values (3, '[20,30)'); insert into r values (4, '[40,50)')"],
    ];
    const fresh = await freshDatabase(FIXTURE);
    try {
      for (const [v, insert] of attempts) {
        const raised = await fresh.exec(`begin; ${insert}; rollback;`).then(
          () => false,
          async (e: { code?: string }) => {
            await fresh.exec('rollback');
            return e.code === '23505';
          },
        );
        expect(raised, `${v.table}(${v.columns.join(', ')}) ${v.status}`).toBe(v.status === 'ok');
      }
    } finally {
      await fresh.drop();
    }
  });
});

describe('CI formats', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDatabase(FIXTURE);
    await expect(db.exec('create unique index concurrently w_k on w (k)')).rejects.toMatchObject({ code: '23505' });
  });
  afterAll(() => db.drop());

  it('JUnit: accepted by an XML parser, one testcase per constraint, failures carry status, violations and DDL', async () => {
    const res = await runCli([
      'verify-constraints',
      '--database-url',
      db.url,
      '--config',
      config,
      '--format',
      'junit',
      ...FLAGS,
    ]);
    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(res.stdout);
    const suite = xml.testsuites.testsuite;
    const cases = suite.testcase as { name: string; failure?: { type: string; '#text': string } }[];
    expect(cases).toHaveLength(verdicts.length);
    expect(Number(suite.failures)).toBe(verdicts.filter((v) => v.status !== 'ok').length);
    const missing = cases.find((c) => c.name === 'unique public.u(a, b)')!;
    expect(missing.failure!.type).toBe('missing');
    expect(missing.failure!['#text']).toMatch(/violations: 1[\s\S]*CREATE UNIQUE INDEX CONCURRENTLY "u_a_b_key"/);
  });

  it('exits 0 when every expected constraint is ok', async () => {
    const res = await runCli([
      'verify-constraints',
      '--database-url',
      db.url,
      '--config',
      '/dev/null',
      '--expect',
      'u(tenant, code)',
      '--expect-fk',
      'child_ok(parent_id) -> parent(id)',
      '--format',
      'json',
    ]);
    expect(res.code).toBe(1); // the INVALID index on w and the NOT VALID key on child_nv are always reported
    expect(JSON.parse(res.stdout).constraints).toContainEqual(
      expect.objectContaining({ table: 'public.child_nv', status: 'invalid', kind: 'foreign-key' }),
    );
    await db.exec('drop index w_k');
    await db.exec('drop index pt_k_part');
    await db.exec('alter table child_nv drop constraint child_nv_parent_fkey');
    const clean = await runCli([
      'verify-constraints',
      '--database-url',
      db.url,
      '--config',
      '/dev/null',
      '--expect',
      'u(tenant, code)',
      '--expect-fk',
      'child_ok(parent_id) -> parent(id)',
      '--format',
      'json',
    ]);
    expect(JSON.parse(clean.stdout).constraints.map((c: C) => c.status)).toEqual(['ok', 'ok']);
    expect(clean.code).toBe(0);
  });
});

describe('index parts that are quoted column names', () => {
  it('a keyword or mixed-case column is still a column: its constraint gets ADD CONSTRAINT … USING INDEX', async () => {
    const db = await freshDatabase(
      `create table booking ("order" int, "Ref" text, note text); insert into booking values (1, 'a', 'x'), (1, 'a', 'y');`,
    );
    try {
      const res = await runCli([
        'verify-constraints',
        '--database-url',
        db.url,
        '--config',
        '/dev/null',
        '--expect',
        'booking("order", "Ref")',
        '--format',
        'json',
      ]);
      const [v] = JSON.parse(res.stdout).constraints as C[];
      expect(v).toMatchObject({ status: 'missing', columns: ['order', 'Ref'], violations: 1 });
      expect(v!.ddl).toContain(
        'ALTER TABLE "public"."booking" ADD CONSTRAINT "booking_order_Ref_key" UNIQUE USING INDEX "booking_order_Ref_key"',
      );
    } finally {
      await db.drop();
    }
  });
});
