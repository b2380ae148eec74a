import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli } from '../support/run.js';

/**
 * The diagnosis joins the table's rows to its own work tables by the rule's key, and a key expression
 * or `where` is the application's SQL, unqualified: a table column named like a work-table column
 * (n, gid, ids, id …) must still mean the table's column. Each rule is diagnosed, with the counts the
 * scan gives without the diagnosis, and the dates the server computes.
 */
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table t (id int primary key, n int, gid int, ids int, t int, rn int, gap int, created_at timestamptz not null);
    -- Pairs (the lookups by lowest and highest id) and groups of three (the join back by key).
    insert into t select g, g % 500, g % 400, g % 300, g % 200, g % 250, g % 350, timestamptz '2026-01-01' + g * interval '1 hour'
      from generate_series(1, 1000) g;
  `);
});
afterAll(() => db.drop());

interface Finding {
  groups: number;
  rows: number;
  error?: { message: string };
  diagnosis?: { first: string; last: string } | null;
}
async function scanOne(key: string, ...more: string[]): Promise<Finding> {
  const res = await runCli([
    'scan',
    '--duplicates',
    `t(${key})`,
    '--database-url',
    db.url,
    '--no-discover',
    '--config',
    '/dev/null',
    '--format',
    'json',
    ...more,
  ]);
  expect(res.code, res.stdout + res.stderr).toBe(1);
  return (JSON.parse(res.stdout) as { findings: Finding[] }).findings[0]!;
}

describe('a key expression over columns named like the diagnosis’ own', () => {
  for (const key of ['abs(n)', '(gid % 200)', '(ids + 0)', 'abs(t)', '(rn * 1)', 'abs(gap)', '(id % 300)']) {
    it(`t(${key})`, async () => {
      const plain = await scanOne(key, '--no-diagnose');
      const diagnosed = await scanOne(key);
      expect(diagnosed.error).toBeUndefined();
      expect({ groups: diagnosed.groups, rows: diagnosed.rows }).toEqual({ groups: plain.groups, rows: plain.rows });
      const [expected] = await db.query<{ first: string }>(
        `select to_char(min(created_at) at time zone 'UTC', 'YYYY-MM-DD') as first
           from (select created_at, row_number() over (partition by ${key} order by created_at, id) as k from t) x
          where k > 1`,
      );
      expect(diagnosed.diagnosis?.first.slice(0, 10)).toBe(expected!.first);
    });
  }
});
