import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runMigrationStatements } from '../support/migration.js';
import { runCli, scanFindings, writeConfig } from '../support/run.js';

// PostgreSQL 18: a foreign key can be NOT ENFORCED (it checks no row, old or new), and a generated column is
// virtual by default (computed on read, never stored). rowdoctor reports the first as invalid with what it takes
// to enforce it, and keys on the second without ever writing it.
const FIXTURE = `
  create table account (
    id int primary key,
    email text not null,
    email_key text generated always as (lower(email)) virtual
  );
  insert into account (id, email) values (1, 'Ann@x.org'), (2, 'ann@X.org'), (3, 'bob@x.org'), (4, 'BOB@x.org'),
                                         (5, 'cy@x.org');
  create table invoice (id int primary key, account_id int, amount numeric not null,
                        constraint invoice_account_fkey foreign key (account_id) references account (id) not enforced);
  insert into invoice values (1, 1, 10), (2, 2, 20), (3, 4, 30), (4, 9, 40), (5, 9, 50), (6, 12, 60), (7, null, 70);
`;

const ORPHANS = `
  - { check: orphaned-rows, table: invoice, column: account_id, references: account.id, repair: delete }`;
const CONFIG = `
rules:
  - { check: duplicate-rows, table: account, key: [email_key], repair: merge }${ORPHANS}
`;
// verify-constraints is asked about the foreign key only: PostgreSQL 18 indexes no virtual column.
const FK_ONLY = `rules:${ORPHANS}\n`;

let db: TestDb;
let serverVersion = 0;
beforeAll(async () => {
  db = await freshDatabase();
  serverVersion = Number((await db.query<{ v: string }>("select current_setting('server_version_num') as v"))[0]!.v);
  if (serverVersion >= 180000) await db.exec(FIXTURE);
});
afterAll(() => db.drop());

interface VerifyDoc {
  constraints: { kind: string; table: string; status: string; detail: string; violations: number; ddl: string[] }[];
}

async function verify(config: string, migration?: string): Promise<VerifyDoc['constraints']> {
  const args = ['verify-constraints', '--database-url', db.url, '--config', config, '--format', 'json'];
  const res = await runCli(migration ? [...args, '--emit-migration', migration] : args);
  return (JSON.parse(res.stdout) as VerifyDoc).constraints.filter((c) => c.kind === 'foreign-key');
}

async function verifyUnique(config: string, migration?: string): Promise<VerifyDoc['constraints'][number] | undefined> {
  const args = ['verify-constraints', '--database-url', db.url, '--config', config, '--format', 'json'];
  const res = await runCli(migration ? [...args, '--emit-migration', migration] : args);
  return (JSON.parse(res.stdout) as VerifyDoc).constraints.find((c) => c.kind === 'unique');
}

/** The child rows the key would reject, by the server's own NOT EXISTS. */
async function serverOrphans(): Promise<number> {
  const [r] = await db.query<{ n: number }>(`
    select count(*)::int as n
      from invoice i
     where account_id is not null and not exists (select 1 from account a where a.id = i.account_id)`);
  return r!.n;
}

describe('PostgreSQL 18', () => {
  it('counts the orphans a NOT ENFORCED key lets in, and duplicates of a virtual generated column', async (ctx) => {
    if (serverVersion < 180000) ctx.skip();
    const findings = await scanFindings(db.url, { configText: CONFIG, discover: false });
    const orphans = findings.find((f) => f.check === 'orphaned-rows');
    expect(orphans).toMatchObject({ rows: await serverOrphans(), groups: 2 });
    expect(orphans!.rows).toBe(3);
    const [dups] = await db.query<{ n: number }>(
      'select coalesce(sum(n - 1), 0)::int as n from (select count(*) as n from account group by email_key) g',
    );
    expect(findings.find((f) => f.check === 'duplicate-rows')).toMatchObject({ groups: 2, rows: dups!.n });
  });

  it('verify: the NOT ENFORCED key is invalid, enforces nothing, and its DDL waits for the repair', async (ctx) => {
    if (serverVersion < 180000) ctx.skip();
    const file = join(mkdtempSync(join(tmpdir(), 'rd-ne-')), 'migration.sql');
    const [fk] = await verify(writeConfig(FK_ONLY), file);
    expect(fk).toMatchObject({ table: 'public.invoice', status: 'invalid', violations: await serverOrphans() });
    expect(fk!.detail).toMatch(/invoice_account_fkey is NOT ENFORCED: it enforces nothing/);
    expect(fk!.detail).not.toMatch(/rejects new/);
    expect(fk!.ddl.at(-1)).toBe('ALTER TABLE "public"."invoice" ALTER CONSTRAINT "invoice_account_fkey" ENFORCED');
    // Held back until the orphans are repaired: run now, the file changes nothing.
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/3 row\(s\) violate it today, so it is commented out until they are fixed/);
    expect(text).toContain('-- ALTER TABLE "public"."invoice" ALTER CONSTRAINT "invoice_account_fkey" ENFORCED;');
  });

  it('repairs (merging on the virtual column, never writing it), then the migration enforces the key: ok', async (ctx) => {
    if (serverVersion < 180000) ctx.skip();
    const config = writeConfig(CONFIG);
    const before = await tableStats(db);
    const sums = await db.checksums();
    const flags = ['--database-url', db.url, '--config', config, '--no-discover', '--format', 'json'];
    const dry = await runCli(['repair', ...flags]);
    expect(dry.code, dry.stderr).toBe(1);
    const applied = await runCli(['repair', ...flags, '--apply']);
    expect(applied.code, applied.stderr).toBe(0);
    const doc = JSON.parse(applied.stdout) as { runId: string; actions: Record<string, number>[] };
    expect(doc.actions).toEqual(JSON.parse(dry.stdout).actions);
    // Two accounts merged away (their invoice re-pointed), three orphaned invoices deleted.
    const after = await tableStats(db);
    expect(after['public.account']!.rows).toBe(before['public.account']!.rows - 2);
    expect(after['public.invoice']!.rows).toBe(before['public.invoice']!.rows - 3);
    expect(Number(after['public.invoice']!.sums.amount)).toBe(Number(before['public.invoice']!.sums.amount) - 150);
    expect(await db.query('select id, email, email_key from account order by id')).toEqual([
      { id: 1, email: 'Ann@x.org', email_key: 'ann@x.org' },
      { id: 3, email: 'bob@x.org', email_key: 'bob@x.org' },
      { id: 5, email: 'cy@x.org', email_key: 'cy@x.org' },
    ]);
    expect(await serverOrphans()).toBe(0);

    const file = join(mkdtempSync(join(tmpdir(), 'rd-ne-')), 'migration.sql');
    const fkOnly = writeConfig(FK_ONLY);
    const [fk] = await verify(fkOnly, file);
    expect(fk).toMatchObject({ status: 'invalid', violations: 0 });
    await runMigrationStatements(db.url, file);
    expect(
      await db.query("select convalidated, conenforced from pg_constraint where conname = 'invoice_account_fkey'"),
    ).toEqual([{ convalidated: true, conenforced: true }]);
    await expect(db.exec('insert into invoice values (8, 99, 1)')).rejects.toThrow(/violates foreign key/);
    expect((await verify(fkOnly))[0]).toMatchObject({ status: 'ok', violations: 0 });

    // The expected unique key on the virtual column: PostgreSQL indexes no virtual column, so the migration
    // indexes its generation expression; once built, verify finds the key enforced.
    const keyFile = join(mkdtempSync(join(tmpdir(), 'rd-ne-')), 'migration.sql');
    const unique = await verifyUnique(config, keyFile);
    expect(unique).toMatchObject({ table: 'public.account', status: 'missing', violations: 0 });
    expect(unique!.ddl.join('\n')).toMatch(
      /CREATE UNIQUE INDEX CONCURRENTLY .* ON "public"."account" \(lower\(email\)\)/,
    );
    await runMigrationStatements(db.url, keyFile);
    expect((await verifyUnique(config))!).toMatchObject({ status: 'ok', violations: 0 });
    await expect(db.exec("insert into account (id, email) values (6, 'ANN@x.org')")).rejects.toThrow(/duplicate key/);
    // (Undo would bring the copies back: the index goes first, as an operator undoing a merge would drop it.)
    const [built] = await db.query<{ name: string }>(
      "select indexrelid::regclass::text as name from pg_index where indrelid = 'account'::regclass and indexprs is not null",
    );
    await db.exec(`drop index ${built!.name}`);

    // Undo puts every row back as it was (the key, now enforced, is set aside as undo does for NOT VALID ones).
    await db.exec('alter table invoice alter constraint invoice_account_fkey not enforced');
    const undo = await runCli(['undo', doc.runId, '--database-url', db.url, '--apply', '--format', 'json']);
    expect(undo.code, undo.stderr).toBe(0);
    const restored = await db.checksums();
    for (const t of Object.keys(sums)) expect(restored[t], t).toBe(sums[t]);
  });
});
