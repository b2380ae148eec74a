import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { expectNothingLost, ledger } from '../support/ledger.js';
import { runCli } from '../support/run.js';

let db: TestDb;
afterEach(() => db.drop());

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

// Re-pointing address.user_id rewrites shipment through the server's ON UPDATE action: those rows
// are backed up too, and undo puts them back.
const schema = (action: string) => `
  create table users (id int primary key, email text not null);
  create table address (id int primary key, user_id int references users (id), kind text not null,
                        unique (user_id, kind));
  create table shipment (id int primary key, user_id int, address_kind text, weight int not null,
                         foreign key (user_id, address_kind) references address (user_id, kind) on update ${action});
  insert into users values (1, 'a'), (2, 'a'), (3, 'b');
  insert into address values (1, 2, 'home'), (2, 1, 'work'), (3, 3, 'home');
  insert into shipment values (1, 2, 'home', 5), (2, 3, 'home', 7);
`;

describe('rows a merge rewrites through ON UPDATE actions', () => {
  for (const action of ['cascade', 'set null']) {
    it(`ON UPDATE ${action.toUpperCase()}: backed up with the merge, restored by undo, the key valid again`, async () => {
      db = await freshDatabase(schema(action));
      const before = userTables(await db.checksums());
      const stats = await ledger(db);
      const repair = await runCli([
        ...['repair', '--database-url', db.url, '--duplicates', 'users(email)', '--no-discover'],
        ...['--apply', '--format', 'json'],
      ]);
      expect(repair.code, repair.stderr).toBe(0);
      await expectNothingLost(db, stats);
      const { runId } = JSON.parse(repair.stdout) as { runId: string };
      const backedUp = await db.query("select 1 from rowdoctor_backup.tables where table_name = 'shipment'");
      expect(backedUp).toHaveLength(1);
      const undo = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
      expect(undo.code, undo.stdout + undo.stderr).toBe(0);
      expect(userTables(await db.checksums())).toEqual(before);
      // Ask the server: the foreign key holds for every row again.
      await db.exec(`
        alter table shipment drop constraint shipment_user_id_address_kind_fkey;
        alter table shipment add foreign key (user_id, address_kind) references address (user_id, kind);`);
    });
  }
});
