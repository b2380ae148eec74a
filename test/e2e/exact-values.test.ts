import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

// Ids and keys a double cannot hold: 2^53 + 1 and + 2 are distinct rows, and a numeric with 22 digits.
const BIG = ['9007199254740993', '9007199254740994', '9007199254740995'];
const FINE = '0.1000000000000000000001';

let db: TestDb;
let config: string;

beforeAll(async () => {
  db = await freshDatabase(`
    create table account (id bigint primary key, email text not null, balance numeric);
    insert into account values (${BIG[0]}, 'a@x', 1), (${BIG[1]}, 'a@x', 2), (${BIG[2]}, 'b@x', 3), (7, 'b@x', 4);
    create table blob (id int primary key, body text not null);
    insert into blob select i, repeat('x', 1048576) from generate_series(1, 2) i;
    create table price (id int primary key, amount numeric not null);
    insert into price values (1, ${FINE}), (2, ${FINE}), (3, 0.1);
  `);
  config = writeConfig(`
rules:
  - { check: duplicate-rows, table: account, key: [email], repair: merge }
  - { check: duplicate-rows, table: price, key: [amount], repair: delete }
  - { check: duplicate-rows, table: blob, key: [body], repair: delete }
`);
});
afterAll(() => db.drop());

/** The text table's last column, its wrapped lines joined again. */
function sampleColumn(text: string): string {
  return text
    .split('\n')
    .map((line) => line.split('│').at(-2)?.trim() ?? '')
    .join('');
}

describe('exact values', () => {
  it('prints bigint ids above 2^53 and long numerics exactly in scan JSON (strings where a double would round)', async () => {
    const res = await runCli([
      'scan',
      '--database-url',
      db.url,
      '--config',
      config,
      '--no-discover',
      '--format',
      'json',
    ]);
    expect(res.code).toBe(1);
    const doc = JSON.parse(res.stdout);
    const account = doc.findings.find((f: { table: string }) => f.table === 'public.account');
    expect(account.samples).toEqual([
      { key: ['a@x'], ids: [BIG[0], BIG[1]] },
      { key: ['b@x'], ids: [7, BIG[2]] },
    ]);
    const price = doc.findings.find((f: { table: string }) => f.table === 'public.price');
    // The two rows share the long value; 0.1 is another key, which a double would have merged with it.
    expect(price.groups).toBe(1);
    expect(price.samples).toEqual([{ key: [FINE], ids: [1, 2] }]);
  });

  it('prints them exactly in the scan text and the repair plan', async () => {
    const scan = await runCli(['scan', '--database-url', db.url, '--config', config, '--no-discover']);
    for (const v of [...BIG, FINE]) expect(sampleColumn(scan.stdout)).toContain(v);
    const repair = await runCli(['repair', '--database-url', db.url, '--config', config, '--no-discover']);
    for (const v of [...BIG.slice(0, 2), FINE]) expect(repair.stdout).toContain(v);
    expect(repair.stdout).not.toMatch(/9007199254740992|9007199254741000/);
    const json = JSON.parse(
      (await runCli(['repair', '--database-url', db.url, '--config', config, '--no-discover', '--format', 'json']))
        .stdout,
    );
    expect(JSON.stringify(json)).not.toMatch(/9007199254740992|9007199254741000/);
    expect(JSON.stringify(json)).toContain(`"${BIG[1]}"`);
  });

  it('renders a 1 MB key in the text table cut to a readable length (before: the layout never finished)', async () => {
    const scan = await runCli(['scan', '--database-url', db.url, '--config', config, '--no-discover']);
    expect(scan.code).toBe(1);
    expect(sampleColumn(scan.stdout)).toContain('… (1,048,576');
    expect(scan.stdout.length).toBeLessThan(20_000);
  });
});
