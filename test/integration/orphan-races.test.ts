import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { untilRepairWaits } from '../support/locks.js';
import { runCli, writeConfig } from '../support/run.js';

let db: TestDb;
afterEach(() => db.drop());

const ORPHANS =
  'rules:\n  - check: orphaned-rows\n    table: token\n    column: user_id\n    references: users.id\n    repair: delete\n';

describe('an orphan repair next to the application', () => {
  it('a parent revived while the repair runs keeps its children', async () => {
    db = await freshDatabase(`
      create table users (id int primary key, deleted_at timestamptz);
      insert into users values (1, null), (2, '2026-01-01');
      create table token (id int primary key, user_id int, n int not null);
      insert into token values (1, 1, 10), (2, 2, 20), (3, 2, 30), (4, 99, 40);
    `);
    // the application revives user 2, and has not committed yet
    const app = new pg.Client(db.url);
    await app.connect();
    await app.query('begin');
    await app.query('update users set deleted_at = null where id = 2');
    const repair = runCli([
      'repair',
      '--config',
      writeConfig(ORPHANS),
      '--no-discover',
      '--apply',
      '--format',
      'json',
      '--lock-timeout',
      '30s',
      '--database-url',
      db.url,
    ]);
    await untilRepairWaits(db); // on the deleted parent it is about to judge by
    await app.query('commit');
    await app.end();
    const res = await repair;
    expect(res.code, res.stderr).toBe(0);
    expect((JSON.parse(res.stdout) as { actions: Record<string, number>[] }).actions[0]).toMatchObject({
      rowsDeleted: 1,
    });
    expect(await db.query('select id, user_id from token order by id')).toEqual([
      { id: 1, user_id: 1 },
      { id: 2, user_id: 2 },
      { id: 3, user_id: 2 },
    ]);
    expect(await db.query('select sum(n)::int as n from token')).toEqual([{ n: 60 }]);
  });
});
