import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli } from '../support/run.js';

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table users (id int primary key, email text, deleted_at timestamptz, constraint users_email_key unique (email));
    insert into users values (1, 'a', null), (2, 'b', now()), (3, 'c', null), (4, 'd', null), (5, 'e', null);
    create table token (id int primary key, user_id int);
    -- 5 of 6 distinct user_id values are users: the data supports the reference the name suggests.
    insert into token values (1, 1), (2, 9), (3, 2), (4, 3), (5, 4), (6, 5);
    -- an order of the soft-deleted user 2: the foreign key holds, the parent is soft-deleted
    create table orders (id int primary key, user_id int not null references users, total int not null);
    insert into orders values (1, 1, 10), (2, 2, 20), (3, 3, 30);
  `);
});
afterAll(() => db.drop());

describe('init', () => {
  it('writes a commented starter config from the catalog, and refuses to overwrite it without --force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rowdoctor-init-'));
    const file = join(dir, 'rowdoctor.yml');
    const first = await runCli(['init', '--database-url', db.url, '--output', file]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/Wrote .*rowdoctor.yml: 2 rules and 1 commented suggestion/);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^# rowdoctor.yml — written by `rowdoctor init`/);
    expect(text).toContain('# unique constraint users_email_key counts soft-deleted rows');
    expect(text).toContain(
      '  # - check: orphaned-rows\n  #   table: public.token\n  #   column: user_id\n  #   references: {table: public.users, columns: [id]}',
    );
    expect(text).toContain('    key: [email]\n');
    // What scan would assume from names is written down for review, with the data's evidence.
    expect(text).toContain(
      'softDelete:\n  tables:\n    public.users: deleted_at  # some rows live, some with deleted_at set',
    );
    expect(text).toContain(
      '  # inferred: matched 5 of 6 distinct values in public.users.id\n  # - check: orphaned-rows',
    );
    const config = parse(text);
    expect(config.rules).toEqual([
      {
        check: 'orphaned-rows',
        table: 'public.orders',
        column: 'user_id',
        references: { table: 'public.users', columns: ['id'] },
        repair: 'report',
      },
      { check: 'soft-delete-conflicts', table: 'public.users', key: ['email'], repair: 'purge-deleted' },
    ]);
    // children of a soft-deleted parent: proposed for review, with the choices, never deleted as written
    expect(text).toContain(
      '  # foreign key orders_user_id_fkey into soft-deleting public.users\n' +
        '  # children of soft-deleted parents: reported only — choose repair: soft-delete or delete, ' +
        'or deletedParent: warning if they are kept on purpose\n  - check: orphaned-rows',
    );
    const plan = await runCli(['repair', '--database-url', db.url, '--config', file, '--format', 'json']);
    const doc = JSON.parse(plan.stdout) as { findings: { table: string }[]; actions: { table: string }[] };
    expect(doc.findings.find((f) => f.table === 'public.orders')).toMatchObject({ rows: 1 });
    expect(doc.actions.filter((a) => a.table === 'public.orders')).toEqual([]);

    const again = await runCli(['init', '--database-url', db.url, '--output', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists; not overwriting it[\s\S]*--force/);
    expect((await runCli(['init', '--database-url', db.url, '--output', file, '--force'])).code).toBe(0);

    // The written config is a valid config: scanning with it reports the rule as declared.
    const scan = await runCli(['scan', '--database-url', db.url, '--config', file, '--format', 'json']);
    expect(
      JSON.parse(scan.stdout).findings.find((f: { check: string }) => f.check === 'soft-delete-conflicts'),
    ).toMatchObject({ source: 'config', rows: 1 });
  });
});

describe('demo', () => {
  it('runs on its own embedded PostgreSQL, shows every kind of finding, and cleans up', async () => {
    // A temp directory of its own: other test runs on the machine start embedded servers of their own.
    const tmp = mkdtempSync(join(tmpdir(), 'rowdoctor-demo-'));
    chmodSync(tmp, 0o755);
    // A PGSSLMODE of the user's (a verified-TLS default for their databases) does not reach the embedded server.
    const res = await runCli(['demo'], { env: { TMPDIR: tmp, PGSSLMODE: 'verify-full' } });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /rowdoctor scan · 127\.0\.0\.1:\d+\/rowdoctor_demo · 7 checks run · 7 findings \(7 errors\) · 79 rows affected/,
    );
    for (const kind of ['duplicate-rows', 'orphaned-rows', 'soft-delete-conflicts']) expect(res.stdout).toContain(kind);
    // the repair's dry run, its apply with the same counts, and a clean re-scan
    const plan =
      /7 rules · 70 groups · would delete 71 rows, would update 8 rows, would re-point 28 child rows, would merge 0 child rows/;
    expect(res.stdout).toMatch(plan);
    expect(res.stdout).toMatch(
      /APPLIED\n7 rules · 70 groups · deleted 71 rows, updated 8 rows, re-pointed 28 child rows, merged 0 child rows/,
    );
    expect(res.stdout).toMatch(
      /4\. rowdoctor scan, again ━━\n\nrowdoctor scan · [^\n]* · no findings\n(assumed: [^\n]*\n)*\n\(exit code 0: clean\)/,
    );
    expect(res.stdout).toMatch(
      /5\. rowdoctor verify-constraints[\s\S]*6 constraints checked · 2 ok, 2 missing, 2 invalid[\s\S]*CREATE UNIQUE INDEX CONCURRENTLY "submission_invite_id_key"/,
    );
    expect(res.stderr).toMatch(/Stopping the embedded PostgreSQL/);
    // the server's data directory is gone; a copy of the binaries (made when the checkout is out of the
    // server user's reach) is a cache kept on purpose, shared by later runs
    const leftovers = readdirSync(tmp).filter(
      (d) => d.startsWith('rowdoctor-pg-') && !d.startsWith('rowdoctor-pg-bin-'),
    );
    expect(leftovers).toEqual([]);
    rmSync(tmp, { recursive: true, force: true });
  });
});
