import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

// Row-level security in force for the connecting role: it sees tenant a's users only. Tokens of
// tenant b's users then look orphaned to it, though their parents exist.
let db: TestDb;
let role: string;
let asRole: string;
beforeAll(async () => {
  db = await freshDatabase(`
    create table users (id int primary key, tenant text not null, email text not null);
    insert into users values (1, 'a', 'x'), (2, 'a', 'x'), (3, 'b', 'y'), (4, 'b', 'y');
    create table token (id int primary key, user_id int, n int not null);
    insert into token values (1, 1, 10), (2, 2, 20), (3, 3, 30), (4, 4, 40), (5, 99, 50);
    alter table users enable row level security;
    create policy tenant_a on users using (tenant = 'a');
  `);
  role = `rd_app_${randomBytes(4).toString('hex')}`;
  await db.exec(`
    create role ${role} login password 'rls-test';
    grant create on database ${db.name} to ${role};
    grant usage, create on schema public to ${role};
    grant select, insert, update, delete on all tables in schema public to ${role};`);
  const u = new URL(db.url);
  u.username = role;
  u.password = 'rls-test';
  asRole = u.toString();
});
afterAll(async () => {
  await db.drop();
  const admin = await freshDatabase();
  await admin.exec(`drop role if exists ${role}`);
  await admin.drop();
});

const ORPHANS = 'rules:\n  - check: orphaned-rows\n    table: token\n    column: user_id\n    references: users.id\n';
const MERGE = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [tenant, email]\n    repair: merge\n';

describe('row-level security in force for the connected role', () => {
  it('scan warns on stderr and in JSON that counts cover only the visible rows', async () => {
    const args = ['scan', '--config', writeConfig(ORPHANS), '--no-discover', '--format', 'json'];
    const res = await runCli([...args, '--database-url', asRole]);
    expect(res.stderr).toMatch(/warning: row-level security is in force on public\.users for role "rd_app_\w+"/);
    const doc = JSON.parse(res.stdout) as { warnings: unknown[]; findings: { rows: number }[] };
    expect(doc.warnings).toEqual([
      { code: 'rls', table: 'public.users', message: expect.stringMatching(/counts cover only the rows/) as string },
    ]);
    expect(doc.findings[0]!.rows).toBe(3); // what this role sees: tokens 3, 4 (hidden parents) and 5
    // the owner sees every row: no warning, the true count
    const owner = await runCli([...args, '--database-url', db.url]);
    expect(owner.stderr).toBe('');
    expect((JSON.parse(owner.stdout) as { warnings: unknown[]; findings: { rows: number }[] }).warnings).toEqual([]);
    expect((JSON.parse(owner.stdout) as { findings: { rows: number }[] }).findings[0]!.rows).toBe(1);
  });

  it('verify-constraints warns too', async () => {
    const res = await runCli([
      'verify-constraints',
      '--config',
      writeConfig(ORPHANS),
      '--format',
      'json',
      '--database-url',
      asRole,
    ]);
    expect(res.stderr).toMatch(/warning: row-level security is in force on public\.users/);
    expect((JSON.parse(res.stdout) as { warnings: { code: string }[] }).warnings.map((w) => w.code)).toEqual(['rls']);
  });

  it('repair (dry run and --apply) refuses with exit 2, changing nothing', async () => {
    const before = await db.checksums();
    for (const config of [ORPHANS.replace('users.id\n', 'users.id\n    repair: delete\n'), MERGE])
      for (const extra of [[], ['--apply']]) {
        const res = await runCli([
          'repair',
          '--config',
          writeConfig(config),
          '--no-discover',
          '--database-url',
          asRole,
          ...extra,
        ]);
        expect(res.code).toBe(2);
        expect(res.stdout).toBe('');
        expect(res.stderr).toMatch(/Row-level security is in force for role "rd_app_\w+" on public\.users/);
        expect(res.stderr).toMatch(/Nothing was changed/);
        expect(res.stderr).toMatch(/BYPASSRLS/);
      }
    expect(await db.checksums()).toEqual(before);
  });

  it('undo refuses too, changing nothing', async () => {
    const applied = await runCli([
      'repair',
      '--config',
      writeConfig(MERGE),
      '--no-discover',
      '--apply',
      '--format',
      'json',
      '--database-url',
      db.url,
    ]);
    expect(applied.code).toBe(0);
    const before = await db.checksums();
    const runId = (JSON.parse(applied.stdout) as { runId: string }).runId;
    await db.exec(`grant usage, create on schema rowdoctor_backup to ${role};
                   grant select, insert, update on all tables in schema rowdoctor_backup to ${role};
                   grant usage on all sequences in schema rowdoctor_backup to ${role};`);
    const res = await runCli(['undo', runId, '--apply', '--database-url', asRole]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/Row-level security is in force for role "rd_app_\w+" on public\.users: undo/);
    expect(await db.checksums()).toEqual(before);
  });
});
