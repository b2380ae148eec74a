import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * Undo finds the rows a repair updated by their after-image, md5(row::text), and a row prints
 * differently under another TimeZone, DateStyle or extra_float_digits. An undo run from a session
 * set up otherwise than the repair's (another operator's machine) still restores every row.
 */
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table org (id int primary key, name text not null);
    insert into org values (1, 'a'), (2, 'a'), (3, 'b');
    create table team (id int primary key, org_id int not null references org, created timestamptz not null,
                       due date not null, score float8 not null);
    insert into team values (10, 2, '2024-01-01 10:00+00', '2024-03-04', 0.1), (11, 1, '2024-01-02 10:00+00', '2024-03-05', 0.2);
  `);
});
afterAll(() => db.drop());

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

describe('undo from a session with other settings than the repair’s', () => {
  it('restores every row, with no false conflict', async () => {
    const original = userTables(await db.checksums());
    const config = writeConfig('rules:\n  - { check: duplicate-rows, table: org, key: [name], repair: merge }\n');
    const repair = await repairJson(db.url, config, '--apply', '--format', 'json');
    expect(repair.code, repair.stderr).toBe(0);
    const elsewhere = { PGOPTIONS: '-c TimeZone=Asia/Tokyo -c DateStyle=SQL,DMY -c extra_float_digits=0' };
    const undo = await runCli(['undo', repair.doc.runId, '--database-url', db.url, '--apply', '--format', 'json'], {
      env: elsewhere,
    });
    expect(undo.code, undo.stdout + undo.stderr).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });
});
