import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';
import { until } from '../support/poll.js';

// scan --jobs n checks up to n rules at once, on n connections that share one snapshot.
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table account (id int primary key, email text, deleted_at timestamptz);
    insert into account select g, 'u' || (g % 40), case when g % 9 = 0 then now() end from generate_series(1, 100) g;
    create table session (id int primary key, account_id int, token text);
    insert into session select g, g % 130, 't' || (g % 70) from generate_series(1, 200) g;
    create table slow_a (id int primary key, k text);
    insert into slow_a values (1, 'x');
    create table slow_b (id int primary key, k text);
    insert into slow_b values (1, 'x');
    create table item (id int primary key, k text);
    insert into item values (1, 'a'), (2, 'b');
  `);
});
afterAll(() => db.drop());

const json = async (args: string[]) => {
  const res = await runCli(['scan', '--database-url', db.url, '--no-discover', '--format', 'json', ...args]);
  expect(res.code, res.stderr).not.toBe(2);
  return JSON.parse(res.stdout) as { findings: { table: string; rows: number }[]; summary: unknown };
};

describe('scan --jobs', () => {
  it('reports exactly what one job reports, in the same order', async () => {
    const config = writeConfig(`rules:
  - { check: duplicate-rows, table: account, key: [email] }
  - { check: orphaned-rows, table: session, column: account_id, references: account.id }
  - { check: duplicate-rows, table: session, key: [token] }
  - { check: soft-delete-conflicts, table: account, key: [email] }
  - { check: duplicate-rows, table: session, key: [account_id, token] }
`);
    const one = await json(['--config', config]);
    expect(one.findings.length).toBeGreaterThanOrEqual(4);
    for (const jobs of ['2', '3', '8']) expect(await json(['--config', config, '--jobs', jobs])).toEqual(one);
  });

  it('sees one moment of the database: a row committed mid-scan is in no rule’s count', async () => {
    // slow_a and slow_b each take a second (their scope sleeps); item's rule runs after one of
    // them. Duplicates inserted into item while they sleep must not show up.
    const config = writeConfig(`rules:
  - { check: duplicate-rows, table: slow_a, key: [k], where: "pg_sleep(1) is not null" }
  - { check: duplicate-rows, table: slow_b, key: [k], where: "pg_sleep(1) is not null" }
  - { check: duplicate-rows, table: item, key: [k] }
`);
    for (const jobs of ['1', '2']) {
      await db.exec('delete from item where id > 2');
      const scan = json(['--config', config, '--jobs', jobs]);
      await waitForSleepingScan();
      await db.exec("insert into item values (3, 'a'), (4, 'b')");
      expect((await scan).findings, `--jobs ${jobs}`).toEqual([]);
      expect((await json(['--config', config, '--jobs', jobs])).findings).toEqual([
        expect.objectContaining({ table: 'public.item', rows: 2 }),
      ]);
    }
  });

  it("a check failing on one connection is that rule's error finding; the other rules still run; exit 2", async () => {
    // Passes the server's LIMIT 0 validation, fails on the first row with id 1.
    const config = writeConfig(`rules:
  - { check: duplicate-rows, table: account, key: [email] }
  - { check: duplicate-rows, table: session, key: [token], where: "1 / (id - 1) >= 0" }
  - { check: duplicate-rows, table: item, key: [k] }
`);
    const res = await runCli([
      'scan',
      '--database-url',
      db.url,
      '--no-discover',
      '--config',
      config,
      '--jobs',
      '2',
      '--format',
      'json',
    ]);
    expect(res.code).toBe(2);
    const doc = JSON.parse(res.stdout);
    expect(
      doc.findings.map((f: { table: string; error?: { message: string } }) => [f.table, f.error?.message ?? null]),
    ).toEqual([
      ['public.account', null],
      ['public.session', expect.stringMatching(/division by zero \(SQLSTATE 22012\)/)],
      ['public.item', null],
    ]);
  });

  it('refuses a --jobs that is not a whole number ≥ 1', async () => {
    const res = await runCli(['scan', '--database-url', db.url, '--no-discover', '--jobs', '0']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--jobs expects a whole number ≥ 1, got "0"/);
  });
});

/** Until rowdoctor's first check is running (its snapshot is taken by then). */
async function waitForSleepingScan(): Promise<void> {
  await until(
    'rowdoctor’s first check is running',
    async () =>
      (
        await db.query(`select 1 from pg_stat_activity where application_name = 'rowdoctor' and datname = current_database()
                                   and state = 'active' and query like '%pg_sleep%' and query not like '%limit 0%'`)
      ).length > 0,
  );
}
