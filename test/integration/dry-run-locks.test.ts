import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { holdLock } from '../support/locks.js';
import { runCli, writeConfig } from '../support/run.js';

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table users (id int primary key, email text not null);
    insert into users select i, 'u' || (i % 10) || '@x' from generate_series(1, 30) i;
    create table token (id int primary key, user_id int references users (id));
    insert into token select i, 1 + i % 30 from generate_series(1, 60) i;
  `);
});
afterAll(() => db.drop());

const MERGE = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n';

describe('a dry run takes no row locks', () => {
  it('beside an application transaction holding rows of a group, it neither waits nor skips: it plans that group', async () => {
    const release = await holdLock(db, 'select * from users where id in (1, 11, 21) for update');
    try {
      const res = await runCli([
        'repair',
        '--config',
        writeConfig(MERGE),
        '--no-discover',
        '--format',
        'json',
        '--lock-timeout',
        '10min', // were it to wait for the lock, it would wait far longer than the test
        '--database-url',
        db.url,
      ]);
      expect(res.code).toBe(1); // work to do
      const doc = JSON.parse(res.stdout) as { actions: Record<string, number>[] };
      expect(doc.actions[0]).toMatchObject({ groups: 10, rowsDeleted: 20, childRowsRepointed: 40, skipped: 0 });
    } finally {
      await release();
    }
  }, 60_000);
});
