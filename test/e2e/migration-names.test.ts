import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runMigration } from '../support/migration.js';
import { runCli, writeConfig } from '../support/run.js';

let db: TestDb;

beforeAll(async () => {
  // A table already holds the name PostgreSQL's pattern gives the first expression index.
  db = await freshDatabase(`
    create table users (id int primary key, email text, nick text);
    create table users_expr_key (id int);
    insert into users values (1, 'A@x', 'Bob'), (2, 'b@x', 'al');
  `);
});
afterAll(() => db.drop());

describe('--emit-migration names', () => {
  it('gives two expression indexes on one table distinct names that no relation holds; the migration runs', async () => {
    const config = writeConfig(`
rules:
  - { check: duplicate-rows, table: users, key: [{ expr: "lower(email)" }], repair: report }
  - { check: duplicate-rows, table: users, key: [{ expr: "lower(nick)" }], repair: report }
`);
    const file = join(mkdtempSync(join(tmpdir(), 'rowdoctor-mig-')), 'names.sql');
    const res = await runCli([
      'verify-constraints',
      '--database-url',
      db.url,
      '--config',
      config,

      '--emit-migration',
      file,
    ]);
    expect(res.code).toBe(1);
    const creates = readFileSync(file, 'utf8').match(/CREATE UNIQUE INDEX CONCURRENTLY "[^"]+"/g);
    expect(creates).toEqual([
      'CREATE UNIQUE INDEX CONCURRENTLY "users_expr_key1"',
      'CREATE UNIQUE INDEX CONCURRENTLY "users_expr_key2"',
    ]);
    await runMigration(db.url, file);
    // The server now holds both, valid: verify agrees.
    const after = await runCli(['verify-constraints', '--database-url', db.url, '--config', config]);
    expect(after.code).toBe(0);
    const valid = await db.query<{ n: string }>(
      `select count(*) as n from pg_index where indrelid = 'users'::regclass and indisunique and indisvalid and not indisprimary`,
    );
    expect(Number(valid[0]!.n)).toBe(2);
  });
});
