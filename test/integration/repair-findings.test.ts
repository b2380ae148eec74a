import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

// repair reports what it found without scanning first where it can: a duplicate rule's findings
// come from the groups its repair enumerates. They must be exactly what `scan` reports — counts
// and samples — for every kind of key, and whether the samples come from the hash bucket or not.
const FIXTURE = `
  create table ticket (id int primary key, code text, lower_code text, tenant int, deleted_at timestamptz);
  -- 3,000 duplicated codes (enough for the 1-in-256 sample bucket to hold groups), 2 or 3 rows each,
  -- a few NULL codes and soft-deleted rows that must not count.
  insert into ticket select g, 'c' || (g % 3000), upper('c' || (g % 3000)), g % 2, case when g % 97 = 0 then now() end
    from generate_series(1, 7500) g;
  insert into ticket select 10000 + g, null, null, 1, null from generate_series(1, 5) g;
  create table device (tenant_id int, id int, serial text, primary key (tenant_id, id));
  insert into device select g % 3, g, 's' || (g % 7) from generate_series(1, 40) g;
  insert into device values (9, 1, null), (9, 2, null);                -- NULLs: one more group (nullsNotDistinct)
  -- composite primary key whose parts sort differently as text ([1, 10] vs [1, 9]); 3,000 groups
  create table reading (site int, seq int, val text, primary key (site, seq));
  insert into reading select s, g, 'v' || g from generate_series(1, 3000) g, (values (9), (10)) v(s);
  -- no primary key: ids are ctids, sorted as tids ((0,9) before (0,10)), not as text
  create table loose (val text);
  insert into loose select 'v' || (g % 3000) from generate_series(1, 6000) g;
  create table badge (id int primary key, holder text);
  create index on badge (holder);
  insert into badge select g, 'h' || (g % 10) from generate_series(1, 35) g;
`;

const CONFIG = `rules:
  - { check: duplicate-rows, table: ticket, key: [code] }
  - { check: duplicate-rows, table: ticket, key: [{ expr: "lower(lower_code)" }, tenant] }
  - { check: duplicate-rows, table: device, key: [serial], nullsNotDistinct: true }
  - { check: duplicate-rows, table: badge, key: [holder] }
  - { check: duplicate-rows, table: reading, key: [val] }
`;

let db: TestDb;
let config: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
});
afterAll(() => db.drop());

const json = async (args: string[]) => {
  // repair's findings carry no diagnosis (that is scan's): compare with the scan's findings without one
  const diagnose = args[0] === 'scan' ? ['--no-diagnose'] : [];
  const res = await runCli([
    ...args,
    ...diagnose,
    '--database-url',
    db.url,
    '--no-discover',
    '--format',
    'json',
    '--sample',
    '3',
  ]);
  expect(res.code, res.stderr).not.toBe(2);
  return JSON.parse(res.stdout) as { findings: { groups: number; rows: number; samples: unknown[] }[] };
};

describe('repair reports the same findings as scan', () => {
  it('in a dry run: the first rule from its enumeration, the others scanned first (as with --apply)', async () => {
    const scan = await json(['scan', '--config', config]);
    // Rows of one code share their tenant (g, g+3000, g+6000 have one parity): both ticket rules agree.
    const [row] = await db.query<{ groups: string; rows: string }>(`select count(*) as groups, sum(n - 1) as rows from
      (select code, count(*) as n from ticket where code is not null and deleted_at is null group by code having count(*) > 1) d`);
    const oracle = [Number(row!.groups), Number(row!.rows)];
    expect(scan.findings.map((f) => [f.groups, f.rows])).toEqual([oracle, oracle, [8, 34], [10, 25], [3000, 3000]]);
    // Bucket samples of a composite key: ids in key order, each part compared in its own type.
    const reading = scan.findings[4]!.samples as { ids: number[][] }[];
    expect(reading).toHaveLength(3);
    for (const sample of reading) expect(sample.ids.map((id) => id[0])).toEqual([9, 10]);
    // Where no index serves the key, samples come from the hash bucket, not the first keys in order.
    expect(scan.findings[0]!.samples).toHaveLength(3);
    expect(scan.findings[0]!.samples[0]).not.toMatchObject({ key: ['c0'] });
    const dry = await json(['repair', '--config', config]);
    expect(dry.findings).toEqual(scan.findings);
  });

  it('bucket samples of a table without a primary key list ctids in physical order', async () => {
    const scan = await json(['scan', '--duplicates', 'loose(val)']);
    const samples = scan.findings[0]!.samples as { ids: string[] }[];
    expect(samples).toHaveLength(3);
    const tid = (t: string) => t.slice(1, -1).split(',').map(Number) as [number, number];
    for (const { ids } of samples) {
      expect(ids).toHaveLength(2);
      const [a, b] = ids.map(tid) as [[number, number], [number, number]];
      expect(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])).toBe(true);
    }
  });

  it('with --apply: the first rule from its enumeration, the others scanned before any write', async () => {
    const scan = await json(['scan', '--config', config]);
    const applied = await json(['repair', '--config', config, '--apply', '--no-backup']);
    expect(applied.findings).toEqual(scan.findings);
    expect((await json(['scan', '--config', config])).findings).toEqual([]);
  });
});
