import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { expectNothingLost, ledger } from '../support/ledger.js';
import { runCli } from '../support/run.js';

let db: TestDb;
afterEach(() => db.drop());

// The conservation check every write test leans on must itself be able to fail.
describe('the ledger check', () => {
  it('passes after a merge that backed up what it deleted, and fails when a row vanishes without a backup', async () => {
    db = await freshDatabase(`
      create table item (id int primary key, k int not null, price numeric not null);
      insert into item values (1, 1, 1.5), (2, 1, 2.25), (3, 2, 3);
      create table line (id int primary key, item_id int references item (id), qty int not null);
      insert into line values (1, 1, 10), (2, 2, 20), (3, 3, 30);
    `);
    const before = await ledger(db);
    const res = await runCli([
      'repair',
      '--database-url',
      db.url,
      '--duplicates',
      'item(k)',
      '--no-discover',
      '--apply',
    ]);
    expect(res.code, res.stderr).toBe(0);
    await expectNothingLost(db, before);
    await db.exec('delete from line where id = 3');
    await expect(expectNothingLost(db, before)).rejects.toThrow(/public\.line: rows now/);
    await db.exec('insert into line values (3, 3, 31)');
    await expect(expectNothingLost(db, before)).rejects.toThrow(/public\.line\.qty: sum/);
  });
});
