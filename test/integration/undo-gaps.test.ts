import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, undoJson, userTables, writeConfig } from '../support/run.js';

/**
 * What undo must see that it once missed: cascaded children the application changed since, a row
 * two rules updated, a column added since and written.
 * (runCli checks, after every undo --apply, that every foreign key of the database holds.)
 */
let db: TestDb;
afterEach(() => db.drop());

const undo = (runId: string, ...args: string[]) => undoJson(db.url, runId, ...args);

async function merge(rules: string, ...args: string[]): Promise<string> {
  const repair = await repairJson(db.url, writeConfig(`rules:\n${rules}`), '--apply', ...args);
  expect(repair.code, repair.stderr).toBe(0);
  return repair.doc.runId;
}

describe('a parent whose ON UPDATE CASCADE children the application changed since', () => {
  it('stays as the repair left it, with them: both are conflicts, and the key still holds', async () => {
    db = await freshDatabase(`
      create table users (id int primary key, email text not null);
      create table address (id int primary key, user_id int references users (id), kind text not null,
                            unique (user_id, kind));
      create table shipment (id int primary key, user_id int, address_kind text, weight int not null,
                             foreign key (user_id, address_kind) references address (user_id, kind) on update cascade);
      insert into users values (1, 'a'), (2, 'a'), (3, 'b');
      insert into address values (1, 2, 'home'), (2, 1, 'work'), (3, 3, 'home');
      insert into shipment values (1, 2, 'home', 5), (2, 3, 'home', 7);
    `);
    const runId = await merge('  - { check: duplicate-rows, table: users, key: [email], repair: merge }\n');
    // The application weighs shipment 1 again: it now holds what neither the repair nor the run had.
    await db.exec('update shipment set weight = 6 where id = 1');
    const dry = await undo(runId);
    const applied = await undo(runId, '--apply');
    expect(applied.code).toBe(1);
    expect(applied.doc.conflicts).toBe(dry.doc.conflicts);
    expect(applied.doc.conflictSamples.map((s) => s.table).sort()).toEqual(['public.address', 'public.shipment']);
    // Address 1 keeps pointing at user 1 with shipment 1: reverting it alone would orphan the shipment.
    expect(await db.query('select id, user_id from address order by id')).toEqual([
      { id: 1, user_id: 1 },
      { id: 2, user_id: 1 },
      { id: 3, user_id: 3 },
    ]);
    expect(await db.query('select id, user_id, weight from shipment order by id')).toEqual([
      { id: 1, user_id: 1, weight: 6 },
      { id: 2, user_id: 3, weight: 7 },
    ]);
  });
});

describe('a row two rules updated, undone batch by batch', () => {
  it('is counted once: the undo reports what its dry run said, and no negative conflicts', async () => {
    db = await freshDatabase(`
      create table customer (id int primary key, email text not null);
      create table product (id int primary key, sku text not null);
      create table orders (id int primary key, customer_id int references customer, product_id int references product);
      insert into customer values (1, 'a'), (2, 'a'), (3, 'b'), (4, 'b');
      insert into product values (1, 'x'), (2, 'x'), (3, 'y'), (4, 'y');
      insert into orders values (10, 2, 2), (11, 4, 4), (12, 2, 1), (13, 1, 4);
    `);
    const original = userTables(await db.checksums());
    const runId = await merge(
      '  - { check: duplicate-rows, table: customer, key: [email], repair: merge }\n' +
        '  - { check: duplicate-rows, table: product, key: [sku], repair: merge }\n',
      '--batch-size',
      '1',
    );
    const dry = await undo(runId);
    expect(dry.doc).toMatchObject({ restored: 4, reverted: 4, conflicts: 0 });
    const applied = await undo(runId, '--apply', '--batch-size', '1');
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.doc).toMatchObject({ restored: 4, reverted: 4, conflicts: 0 });
    expect(userTables(await db.checksums())).toEqual(original);
  });
});

describe('a column added since the repair', () => {
  it('that the application set on a re-pointed row makes that row a conflict', async () => {
    db = await freshDatabase(`
      create table org (id int primary key, name text not null);
      insert into org values (1, 'x'), (2, 'x');
      create table team (id int primary key, org_id int not null references org);
      insert into team values (10, 2), (11, 2), (12, 1);
    `);
    const runId = await merge('  - { check: duplicate-rows, table: org, key: [name], repair: merge }\n');
    await db.exec(`alter table team add column note text; update team set note = 'kept' where id = 10`);
    const dry = await undo(runId);
    expect(dry.doc).toMatchObject({ restored: 1, reverted: 1, conflicts: 1 });
    expect(dry.doc.conflictSamples).toEqual([expect.objectContaining({ table: 'public.team', key: [10] })]);
    const applied = await undo(runId, '--apply');
    expect(applied.code).toBe(1);
    expect(applied.doc).toMatchObject({ restored: 1, reverted: 1, conflicts: 1 });
    expect(await db.query('select id, org_id, note from team order by id')).toEqual([
      { id: 10, org_id: 1, note: 'kept' },
      { id: 11, org_id: 2, note: null },
      { id: 12, org_id: 1, note: null },
    ]);
  });
});
