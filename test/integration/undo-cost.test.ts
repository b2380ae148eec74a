import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { brokenForeignKeys } from '../support/foreign-keys.js';
import { tablesRead as read } from '../support/tables-read.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * Undo's cost follows the run, not the schema: in a schema of 1,000 tables, undoing a run that
 * changed 10 reads those 10 tables and that run's backup tables, and no other — not the 990 others,
 * not the backup tables of an earlier run. Asserted by what the server counted (pg_stat_all_tables),
 * not by a clock.
 */
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    do $$
    begin
      for i in 1..990 loop
        execute format('create table filler_%s (id int primary key, note text)', i);
        execute format('insert into filler_%s values (1, %L)', i, 'n');
      end loop;
    end $$;
    -- Two families of five: a run merges each parent and re-points its four children.
    create table org (id int primary key, name text not null);
    insert into org select i, 'o' || (i % 10) from generate_series(1, 40) i;
    create table shop (id int primary key, name text not null);
    insert into shop select i, 's' || (i % 10) from generate_series(1, 40) i;
    do $$
    begin
      for i in 1..4 loop
        execute format('create table org_child_%s (id int primary key, org_id int references org)', i);
        execute format('insert into org_child_%s select g, 1 + g %% 40 from generate_series(1, 50) g', i);
        execute format('create table shop_child_%s (id int primary key, shop_id int references shop)', i);
        execute format('insert into shop_child_%s select g, 1 + g %% 40 from generate_series(1, 50) g', i);
      end loop;
    end $$;
  `);
});
afterAll(() => db.drop());

const tablesRead = (schema: string) => read(db, schema);

const merge = (table: string) =>
  writeConfig(`rules:\n  - { check: duplicate-rows, table: ${table}, key: [name], repair: merge }\n`);

describe('undo of a run that changed 10 tables of a 1,000-table schema', () => {
  it('reads those tables and that run’s backups only', async () => {
    const earlier = await repairJson(db.url, merge('shop'), '--apply');
    expect(earlier.code, earlier.stderr).toBe(0);
    const repair = await repairJson(db.url, merge('org'), '--apply');
    expect(repair.code, repair.stderr).toBe(0);
    const ours = await db.query<{ backup_table: string }>(
      "select backup_table from rowdoctor_backup.tables where table_name like 'org%' order by 1",
    );
    expect(ours).toHaveLength(5);

    await db.query('select pg_stat_reset()');
    // The database given by DATABASE_URL: runCli's check of every foreign key after an undo would
    // read every table; it runs below, once the statistics are read.
    const undo = await runCli(['undo', repair.doc.runId, '--apply', '--format', 'json'], {
      env: { DATABASE_URL: db.url },
    });
    expect(undo.code, undo.stdout + undo.stderr).toBe(0);
    expect(await tablesRead('public')).toEqual(['org', 'org_child_1', 'org_child_2', 'org_child_3', 'org_child_4']);
    // rowdoctor's own bookkeeping (runs, tables, undone) and this run's backups; no backup of the shop run.
    const backupsRead = await tablesRead('rowdoctor_backup');
    expect(backupsRead.filter((t) => /^\d+_/.test(t)).sort()).toEqual(ours.map((r) => r.backup_table).sort());
    expect(await brokenForeignKeys(db.url)).toEqual([]);
  });
});
