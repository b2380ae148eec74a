import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli } from '../support/run.js';

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table account (id int primary key, email text);
    insert into account values (1, 'a'), (2, 'a'), (3, 'b');
    create table session (id int primary key, account_id int references account (id));   -- no index on account_id
    insert into session values (1, 2);
    create table login (id int primary key, account_id int references account (id));
    create index on login (account_id);                                                     -- indexed: no warning
  `);
});
afterAll(() => db.drop());

describe('repair dry run: references with no supporting index', () => {
  it('names the unindexed referencing column, with the CREATE INDEX CONCURRENTLY to run first', async () => {
    const res = await runCli(['repair', '--database-url', db.url, '--duplicates', 'account(email)', '--no-discover']);
    expect(res.stdout).toMatch(
      /Before you apply: 1 referencing column has no index, so every batch scans the whole child table\./,
    );
    expect(res.stdout).toContain(
      'CREATE INDEX CONCURRENTLY "session_account_id_idx" ON "public"."session" ("account_id");   -- public.session(account_id), foreign key session_account_id_fkey: <1 s per scan × 1 batch without it',
    );
    expect(res.stdout).not.toMatch(/"login"/);
  });

  it('says nothing once the index exists', async () => {
    await db.exec('CREATE INDEX CONCURRENTLY "session_account_id_idx" ON "public"."session" ("account_id")');
    const res = await runCli(['repair', '--database-url', db.url, '--duplicates', 'account(email)', '--no-discover']);
    expect(res.stdout).not.toMatch(/Before you apply/);
  });
});
