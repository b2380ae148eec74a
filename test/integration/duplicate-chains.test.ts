import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withReadOnlySnapshot } from '../../src/commands/context.js';
import type { CommonOptions } from '../../src/commands/options.js';
import { scanUnits } from '../../src/checks/duplicate-nesting.js';
import { findingJson, type FindingJson } from '../../src/report/document.js';
import { silentProgress } from '../../src/report/progress.js';
import { scan } from '../../src/scan.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { writeConfig } from '../support/run.js';

// Duplicate-rows rules on one table whose keys nest are checked in one pass (one sort, a rollup):
// each rule's finding must be exactly the finding of scanning that rule alone — counts, samples,
// diagnosis — and rules whose nesting the server does not prove keep their own pass.
const ROWS = 3000;
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    create collation und (provider = icu, locale = 'und');
    create table sub (
      id int primary key, num int, t text, u uuid, ts timestamptz, status text not null,
      amount numeric, c text collate ci, d text collate und, deleted_at timestamptz, created_at timestamptz);
    -- Small domains that collide at every level of every chain; a NULL in each key column; 1 = 1.00 in
    -- amount; case variants in c; d in an ICU collation ('a' < 'B', unlike bytes); drafts and soft-deleted rows. Row 1 (the first a probe reads) has
    -- num = 1 and t = 'ab1'.
    insert into sub
    select g,
           case when g % 17 = 0 then null else g % 40 end,
           case when g % 13 = 0 then null else (array['Ab', 'ab', 'AB', 'cd', 'Cd', 'xy', 'mz', 'zz'])[1 + g % 8] || (g % 25) end,
           case when g % 11 = 0 then null else md5((g % 60)::text)::uuid end,
           case when g % 19 = 0 then null else timestamptz '2026-11-01 00:00+00' + (g % 45) * interval '7 hours 1 second' end,
           case when g % 7 = 0 then 'draft' else 'active' end,
           (g % 30)::numeric + case when g % 4 = 0 then 0.00 else 0 end,
           (array['Bob', 'bob', 'BOB', 'ann'])[1 + g % 4] || (g % 10),
           case when g % 23 = 0 then null else (array['a', 'B', 'á', 'A', 'b', 'Z', 'z'])[1 + g % 7] || (g % 9) end,
           case when g % 10 = 0 then now() - interval '1 day' end,
           case when g % 29 = 0 then null else now() - g * interval '37 minutes 3 seconds' end
      from generate_series(1, ${ROWS}) g;
    create function stable_tag(x text) returns text stable language sql as $$ select x || current_setting('TimeZone') $$;
    -- Volatile on one branch only: on row 1's value ('ab1' < 'm') it inlines to x and folds.
    create function vol_tag(x text) returns text volatile language sql
      as $$ select case when x < 'm' then x else x || random()::text end $$;
    analyze sub;
  `);
});
afterAll(() => db?.drop());

interface Scanned {
  findings: FindingJson[];
  units: number[][];
  /** Rows the scan read from sub by sequential scans, in its own transaction (the server's count). */
  read: number;
  /** What the scan told the operator: a chain whose shared pass failed says so. */
  notices: string[];
}

interface How {
  sample: number;
  diagnose: boolean;
  showRows?: number;
  jobs?: number;
}

/** Scan `rules` (config rule lines) in-process, as the CLI does, and ask the server what it read. */
async function scanned(rules: string[], how: How): Promise<Scanned> {
  const opts: CommonOptions = {
    databaseUrl: db.url,
    format: 'json',
    color: false,
    duplicates: [],
    orphans: [],
    discover: false,
    failOn: 'error',
    sample: String(how.sample),
    statementTimeout: '1min',
    schema: [],
    config: writeConfig(`rules:\n${rules.map((r) => `  - ${r}\n`).join('')}`),
  };
  const jobs = how.jobs ?? 1;
  return withReadOnlySnapshot(
    opts,
    async (tx, snap, _conn, alongside) => {
      // The counters below are this backend's: parallel workers would count their rows elsewhere.
      await sql`set local max_parallel_workers_per_gather = 0`.execute(tx);
      const readSoFar = async () =>
        Number(
          (await sql<{ n: string }>`select pg_stat_get_xact_tuples_returned('sub'::regclass) as n`.execute(tx)).rows[0]!
            .n,
        );
      const before = await readSoFar();
      const notices: string[] = [];
      const result = await scan(tx, snap.rules, {
        sample: how.sample,
        progress: silentProgress,
        notice: (line) => notices.push(line),
        alongside,
        ...(how.diagnose ? { diagnose: { recentMs: 86_400_000, showRows: how.showRows ?? 0 } } : {}),
      });
      const read = (await readSoFar()) - before;
      const units = (await scanUnits(tx, snap.rules)).map((u) => u.rules);
      return { findings: result.findings.map(findingJson), units, read, notices };
    },
    { jobs, connections: jobs + 1 },
  );
}

const rule = (key: string, extra = '') => `{ check: duplicate-rows, table: sub, key: ${key}${extra} }`;

/** Each rule alone, its findings in the rules' order: what the rules together must report. */
async function alone(rules: string[], how: How): Promise<FindingJson[]> {
  const each = await Promise.all(rules.map((r) => scanned([r], how)));
  return each.flatMap((s) => s.findings);
}

const HOWS: How[] = [
  { sample: 5, diagnose: true },
  { sample: 1, diagnose: true, showRows: 1 },
  { sample: 40, diagnose: false },
  { sample: 0, diagnose: false },
];

// Nested chains of two and three rules over int, text, uuid and timestamptz columns, written in no
// particular order (the chain orders them coarse → fine), in a where scope, with soft-deleted rows.
const CHAINS: Record<string, string[]> = {
  'text: a column, it with an int, an expression over it': [
    rule('[t]'),
    rule('[num, t]'),
    rule('[{ expr: "lower(t)" }]'),
  ],
  'int, uuid and timestamptz, each key a prefix of the next': [rule('[num, u, ts]'), rule('[num]'), rule('[num, u]')],
  'an immutable expression over a timestamptz, and a two-part coarse key with an expression': [
    rule(`[{ expr: "date_trunc('day', ts at time zone 'UTC')" }]`),
    rule('[u, ts]'),
    rule('[{ expr: "upper(t)" }, num]'),
    rule('[num, t]'),
  ],
  'in a where scope': [
    rule('[{ expr: "md5(t)" }]', `, where: "status <> 'draft'"`),
    rule('[t, num]', `, where: "status <> 'draft'"`),
  ],
  'a text expression in an ICU collation (sorted bytewise, sampled in its own order)': [
    rule('[{ expr: "trim(d)" }]'),
    rule('[d, num]'),
  ],
  'soft-deleted rows included': [
    rule('[u]', ', includeSoftDeleted: true'),
    rule('[ts, u]', ', includeSoftDeleted: true'),
  ],
};

describe('duplicate-rows rules whose keys nest, in one pass', () => {
  for (const [name, rules] of Object.entries(CHAINS))
    it(`reports for each rule exactly what it reports alone: ${name}`, async () => {
      for (const how of HOWS) {
        const together = await scanned(rules, how);
        const expected = await alone(rules, how);
        const label = JSON.stringify(how);
        // every rule is in a chain, and finds duplicates here, so every rule's finding is compared
        expect(
          together.units.every((u) => u.length > 1),
          label,
        ).toBe(true);
        expect(together.notices, label).toEqual([]); // no chain fell back to a pass per rule
        expect(
          expected.map((f) => f.key),
          label,
        ).toHaveLength(rules.length);
        expect(together.findings, label).toEqual(expected);
      }
    });

  it('makes one chain of the nested rules and one pass over the table (the server counts the rows read)', async () => {
    const rules = CHAINS['text: a column, it with an int, an expression over it']!;
    const together = await scanned(rules, { sample: 0, diagnose: false });
    // one full pass, plus the row a proof reads its values from; alone each rule reads every row
    expect(together.read).toBeGreaterThanOrEqual(ROWS);
    expect(together.read).toBeLessThan(ROWS * 1.5);
    expect(together.units).toEqual([[2, 0, 1]]); // lower(t) ⊂ t ⊂ (num, t)
    const each = await Promise.all(rules.map((r) => scanned([r], { sample: 0, diagnose: false })));
    expect(each.map((s) => s.read)).toEqual([ROWS, ROWS, ROWS]);
  });

  it('reports what each rule reports alone, in the rules’ order, with --jobs 2 and other rules between', async () => {
    const rules = [
      rule('[num, u]'),
      rule('[status]'),
      rule('[t]'),
      rule('[num]'),
      rule('[{ expr: "lower(t)" }]'),
      rule('[c]'),
    ];
    for (const how of [
      { sample: 5, diagnose: true, jobs: 2 },
      { sample: 5, diagnose: true, jobs: 1 },
    ]) {
      const together = await scanned(rules, how);
      expect(together.units).toEqual([[3, 0], [1], [4, 2], [5]]);
      expect(together.notices).toEqual([]);
      expect(together.findings).toEqual(await alone(rules, { sample: 5, diagnose: true }));
    }
  });

  it('falls back to a pass per rule when the shared pass fails: the failing rule is its own error finding', async () => {
    // 100 / (num - 7) folds on row 1 (num = 1), so the chain is proven, and fails on the rows with num = 7.
    const rules = [rule('[{ expr: "100 / (num - 7)" }]'), rule('[num]')];
    const together = await scanned(rules, { sample: 5, diagnose: true });
    expect(together.units).toEqual([[0, 1]]);
    expect(together.notices).toEqual([
      expect.stringMatching(/the pass they share failed \(division by zero.*checking each on its own/),
    ]);
    expect(together.findings).toEqual(await alone(rules, { sample: 5, diagnose: true }));
    expect(together.findings[0]).toMatchObject({ error: { message: expect.stringMatching(/division by zero/) } });
    expect(together.findings[1]).toMatchObject({ key: ['num'] });
    expect(together.findings[1]!.error).toBeUndefined();
  });
});

// Sets the server does not prove nested: each rule keeps its own pass and its own answer. Where a
// wrong chain would split the finer rule's groups, the data makes it show.
const UNPROVEN: Record<string, string[]> = {
  'a STABLE function': [rule('[{ expr: "stable_tag(t)" }]'), rule('[t]')],
  'a function VOLATILE on a branch the probe row does not take': [rule('[{ expr: "vol_tag(t)" }]'), rule('[t]')],
  'an expression with now()': [rule(`[{ expr: "t || to_char(now(), 'YYYY')" }]`), rule('[t]')],
  'an expression naming a column outside the finer key': [rule('[{ expr: "lower(status)" }]'), rule('[t]')],
  'a column outside the finer key': [rule('[status]'), rule('[num, t]')],
  'a numeric key (1.0 = 1.00)': [rule('[{ expr: "round(amount)" }]'), rule('[amount]')],
  'a nondeterministic collation': [rule('[{ expr: "lower(c)" }]'), rule('[c]'), rule('[c, num]')],
  'different where scopes': [rule('[t]', `, where: "status = 'active'"`), rule('[num, t]')],
  'soft-deleted rows in one rule only': [rule('[u]', ', includeSoftDeleted: true'), rule('[u, ts]')],
  'NULLS NOT DISTINCT': [rule('[t]', ', nullsNotDistinct: true'), rule('[num, t]')],
};

describe('duplicate-rows rules not proven nested', () => {
  for (const [name, rules] of Object.entries(UNPROVEN))
    it(`keeps a pass per rule: ${name}`, async () => {
      const how = { sample: 5, diagnose: true };
      const together = await scanned(rules, how);
      expect(together.units).toEqual(rules.map((_, i) => [i]));
      expect(together.findings).toEqual(await alone(rules, how));
      expect(together.findings.length).toBeGreaterThan(0);
    });
});
