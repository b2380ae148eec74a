import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withReadOnlySnapshot } from '../../src/commands/context.js';
import type { CommonOptions } from '../../src/commands/options.js';
import { findingJson, type FindingJson } from '../../src/report/document.js';
import { silentProgress } from '../../src/report/progress.js';
import { scan } from '../../src/scan.js';
import type { Diagnosis } from '../../src/diagnosis/types.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { writeConfig } from '../support/run.js';

// Every figure is computed again here with plain SQL (min/max, date_trunc, percentile_cont, count
// distinct per column) and compared exactly. Data is placed relative to now(): on the 30-day
// window's first instant and a microsecond before it, around UTC midnight, inside and outside the
// 24 h window, with NULL and infinite creation times.
const START = `(date_trunc('day', now() at time zone 'UTC') - interval '29 days')`; // a UTC wall-clock timestamp
const rowsSql = (table: string, created: (ts: string) => string, groups = 40) => `
  insert into ${table}
  select g, g % ${groups},
         case when g % 23 = 0 then null
              when g = 7 then ${created("'infinity'")}
              when g % 9 = 0 then ${created(`${START}`)}
              when g % 9 = 1 then ${created(`${START} - interval '1 microsecond'`)}
              when g % 9 = 2 then ${created(`date_trunc('day', now() at time zone 'UTC') - interval '3 days' - interval '1 microsecond'`)}
              when g % 9 = 3 then ${created(`(now() at time zone 'UTC') - interval '23 hours' + g * interval '250 ms'`)}
              when g % 9 = 4 then ${created(`(now() at time zone 'UTC') - interval '25 hours' - g * interval '1 minute'`)}
              else ${created(`(now() at time zone 'UTC') - g * interval '7 hours 13 minutes 1.5 seconds'`)} end,
         case when g % 3 = 0 then 'done' else 'open' end,
         json_build_object('n', g % ${groups}, 'pad', case when g % 11 = 0 then ' ' else '' end),
         case when g % 13 = 0 then null else 'x' end,
         (g % ${groups})::numeric + case when g % 17 = 0 then 0.00 else 0 end
    from generate_series(1, 200) g;`;

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table dup_tz (id int primary key, k int, created_at timestamptz, status text, payload json, note text, amount numeric);
    create table dup_ts (id int primary key, k int, inserted timestamp, status text, payload json, note text, amount numeric);
    create table dup_d (id int primary key, k int, creation_date date, status text, payload json, note text, amount numeric);
    ${rowsSql('dup_tz', (ts) => `(${ts})::timestamp at time zone 'UTC'`)}
    ${rowsSql('dup_ts', (ts) => `(${ts})::timestamp`)}
    ${rowsSql('dup_d', (ts) => `(${ts})::date`)}
    -- groups of two (each read by two primary-key look-ups), and groups found through an index on the key
    create table dup_pairs (id int primary key, k int, created_at timestamptz, status text, payload json, note text, amount numeric);
    ${rowsSql('dup_pairs', (ts) => `(${ts})::timestamp at time zone 'UTC'`, 100)}
    create table dup_ix (id int primary key, k int, created_at timestamptz, status text, payload json, note text, amount numeric);
    create index on dup_ix (k);
    ${rowsSql('dup_ix', (ts) => `(${ts})::timestamp at time zone 'UTC'`)}
    create table parent (id int primary key, deleted_at timestamptz);
    insert into parent select g, case when g % 4 = 0 then now() - g * interval '1 day 3 hours' end from generate_series(1, 30) g;
    create table child (id int primary key, parent_id int references parent, created_at timestamptz);
    insert into child select g, 1 + g % 30, case when g % 31 = 0 then null else now() - g * interval '5 hours 1 second' end
      from generate_series(1, 300) g;
  `);
  // Another session time zone than UTC, 14 hours ahead: a session-local day starts at 10:00 UTC.
  await db.exec(`alter database ${db.name} set timezone = 'Pacific/Kiritimati'`);
});
afterAll(() => db?.drop());

/** Scan in-process with the diagnosis on (as the CLI's default) and return the JSON findings. */
async function diagnosedFindings(config: string, showRows = 0): Promise<FindingJson[]> {
  const opts: CommonOptions = {
    databaseUrl: db.url,
    format: 'json',
    color: false,
    duplicates: [],
    orphans: [],
    discover: false,
    failOn: 'error',
    sample: '5',
    statementTimeout: '1min',
    schema: [],
    config: writeConfig(config),
  };
  const result = await withReadOnlySnapshot(opts, async (tx, snap) => {
    // the scan's own session is in the database's time zone, not UTC
    const tz = await tx.selectNoFrom((eb) => eb.fn<string>('current_setting', [eb.val('TimeZone')]).as('tz')).execute();
    expect(tz[0]!.tz).toBe('Pacific/Kiritimati');
    return scan(tx, snap.rules, { sample: 5, progress: silentProgress, diagnose: { recentMs: 86_400_000, showRows } });
  });
  return result.findings.map(findingJson);
}

/** A time the server rendered, as to_char(…, 'YYYY-MM-DD"T"HH24:MI:SS.US') prints it (or a date as is). */
function full(t: string | null): string | null {
  if (t === null || t.length === 10) return t;
  const [whole, fraction = ''] = t.replace(/Z$/, '').split('.');
  return `${whole}.${fraction.padEnd(6, '0')}`;
}

const COMPARED = ['k', 'status', 'payload', 'note', 'amount'];

/** The duplicate diagnosis of `table`, computed with plain SQL from the instant expression `instant` of its rows. */
async function expectedDuplicates(table: string, column: string, instant: string, dateOnly: boolean) {
  const ranked = `
    with r as (
      select x.*, case when isfinite(x.${column}) then ${instant} end as t
        from ${table} x
       where k in (select k from ${table} group by k having count(*) > 1)
    ),
    ranked as (
      select r.*, row_number() over w as rn, first_value(t) over w as t0
        from r
      window w as (partition by k order by t nulls last, id)
    ),
    copies as (select * from ranked where rn > 1)`;
  const fmt = dateOnly ? 'YYYY-MM-DD' : 'YYYY-MM-DD"T"HH24:MI:SS.US';
  const [figures] = await db.query<Record<string, string | number | null>>(`${ranked}
    select to_char(min(t) at time zone 'UTC', '${fmt}') as first,
           to_char(max(t) at time zone 'UTC', '${fmt}') as last,
           count(*) filter (where t < ${START} at time zone 'UTC')::int as before,
           count(*) filter (where t >= now() - interval '24 hours')::int as recent,
           count(*) filter (where t is null)::int as undated,
           percentile_cont(0.5) within group (order by date_part('epoch', t - t0)) as p50,
           percentile_cont(0.9) within group (order by date_part('epoch', t - t0)) as p90,
           max(date_part('epoch', t - t0)) as max
      from copies`);
  const perDay = await db.query<{ day: string; count: number }>(`${ranked}
    select to_char(date_trunc('day', t at time zone 'UTC'), 'YYYY-MM-DD') as day, count(*)::int as count
      from copies
     where t >= ${START} at time zone 'UTC'
     group by 1
     order by 1`);
  const differing: { column: string; groups: number }[] = [];
  for (const c of COMPARED) {
    // json has no equality: its text is compared
    const v = c === 'payload' ? `${c}::text` : c;
    const [{ n }] = (await db.query<{ n: number }>(`
      select count(*)::int as n
        from (select k from ${table} group by k
              having count(*) > 1 and (count(distinct ${v}) > 1 or count(${v}) between 1 and count(*) - 1)) x`)) as [
      { n: number },
    ];
    if (n > 0) differing.push({ column: c, groups: n });
  }
  differing.sort((a, b) => b.groups - a.groups || COMPARED.indexOf(a.column) - COMPARED.indexOf(b.column));
  return { figures: figures!, perDay, differing };
}

describe('diagnosis', () => {
  const cases = [
    { table: 'dup_tz', column: 'created_at', instant: 'x.created_at', dateOnly: false, declared: false },
    { table: 'dup_pairs', column: 'created_at', instant: 'x.created_at', dateOnly: false, declared: false },
    { table: 'dup_ix', column: 'created_at', instant: 'x.created_at', dateOnly: false, declared: false },
    { table: 'dup_ts', column: 'inserted', instant: `x.inserted at time zone 'UTC'`, dateOnly: false, declared: true },
    {
      table: 'dup_d',
      column: 'creation_date',
      instant: `x.creation_date::timestamp at time zone 'UTC'`,
      dateOnly: true,
      declared: false,
    },
  ];
  for (const c of cases) {
    it(`dates the copies of ${c.table} exactly (${c.declared ? 'createdAt: from the config' : 'found by name'}), whatever the session time zone`, async () => {
      const createdAt = c.declared ? `    createdAt: ${c.column}\n` : '';
      const [f] = await diagnosedFindings(
        `rules:\n  - check: duplicate-rows\n    table: ${c.table}\n    key: [k]\n${createdAt}`,
      );
      const d = f!.diagnosis as Diagnosis;
      const { figures, perDay, differing } = await expectedDuplicates(c.table, c.column, c.instant, c.dateOnly);
      expect(f!.rows).toBeGreaterThanOrEqual(100);
      expect(d.createdAt).toBe(c.column);
      expect([full(d.first), full(d.last)]).toEqual([figures.first, figures.last]);
      if (c.table === 'dup_tz') expect(d.first).toMatch(/Z$/);
      if (c.table === 'dup_ts') expect(d.first).not.toMatch(/Z$/);
      expect(d.perDay).toEqual(perDay);
      // the window's first day is in perDay; a microsecond before it counts in before
      expect(perDay[0]!.day).toBe((await db.query<{ d: string }>(`select to_char(${START}, 'YYYY-MM-DD') as d`))[0]!.d);
      expect(d.before).toBe(figures.before);
      if (c.table !== 'dup_pairs') expect(d.before).toBeGreaterThan(0);
      expect({ recent: d.recent, stillHappening: d.stillHappening }).toEqual({
        recent: figures.recent,
        stillHappening: (figures.recent as number) > 0,
      });
      // NULL and infinite creation times are counted apart, and in nothing else
      expect(d.undated).toBe(figures.undated);
      if (c.table !== 'dup_pairs') expect(d.undated).toBeGreaterThan(0);
      expect(d.perDay.reduce((n, p) => n + p.count, 0) + d.before + d.undated).toBe(f!.rows);
      expect(d.copyGap).toEqual({ p50: figures.p50, p90: figures.p90, max: figures.max });
      expect(d.signature).toBe('re-creation');
      // numeric 1 and 1.00 are equal (the type's equality), json compares by text
      expect(d.differingColumns).toEqual(differing);
      expect(differing.map((x) => x.column)).toEqual(expect.arrayContaining(['status', 'payload', 'note']));
      expect(differing.map((x) => x.column)).not.toContain('amount');
    });
  }

  it('dates orphans, and spans the deletion times of their soft-deleted parents', async () => {
    const [f] = await diagnosedFindings(
      'rules:\n  - check: orphaned-rows\n    table: child\n    column: parent_id\n    references: parent.id\n',
    );
    const d = f!.diagnosis as Diagnosis;
    const orphans = `
      with o as (
        select c.*, c.created_at as t
          from child c
         where not exists (select 1 from parent p where p.id = c.parent_id and p.deleted_at is null))`;
    const fmt = `'YYYY-MM-DD"T"HH24:MI:SS.US'`;
    const [e] = await db.query<Record<string, string | number>>(`${orphans}
      select to_char(min(t) at time zone 'UTC', ${fmt}) as first, to_char(max(t) at time zone 'UTC', ${fmt}) as last,
             count(*)::int as rows, count(*) filter (where t is null)::int as undated,
             count(*) filter (where t < ${START} at time zone 'UTC')::int as before,
             count(*) filter (where t >= now() - interval '24 hours')::int as recent,
             (select to_char(min(deleted_at) at time zone 'UTC', ${fmt}) from parent where id in (select parent_id from o)) as pfirst,
             (select to_char(max(deleted_at) at time zone 'UTC', ${fmt}) from parent where id in (select parent_id from o)) as plast
        from o`);
    const perDay = await db.query(`${orphans}
      select to_char(date_trunc('day', t at time zone 'UTC'), 'YYYY-MM-DD') as day, count(*)::int as count
        from o where t >= ${START} at time zone 'UTC' group by 1 order by 1`);
    expect(f!.rows).toBe(e!.rows);
    expect([full(d.first), full(d.last)]).toEqual([e!.first, e!.last]);
    expect(d.perDay).toEqual(perDay);
    expect([d.before, d.recent, d.undated, d.stillHappening]).toEqual([e!.before, e!.recent, e!.undated, true]);
    expect([full(d.parentDeleted!.first), full(d.parentDeleted!.last)]).toEqual([e!.pfirst, e!.plast]);
    expect(d).not.toHaveProperty('copyGap');
  });

  it('shows the rows of sample groups as PostgreSQL prints them, marking the columns that differ', async () => {
    const [f] = await diagnosedFindings('rules:\n  - check: duplicate-rows\n    table: dup_tz\n    key: [k]\n', 2);
    const [first, second, third] = f!.samples;
    expect(third!.rows).toBeUndefined();
    for (const s of [first!, second!]) {
      // values as the scan's session printed them: its time zone is +14
      await db.exec(`set timezone = 'Pacific/Kiritimati'`);
      const printed = await db.query<{ row: Record<string, string | null> }>(
        `select json_object(array['id','k','created_at','status','payload','note','amount'],
                array[id::text, k::text, created_at::text, status, payload::text, note, amount::text]) as row
           from dup_tz where k = $1
          order by case when isfinite(created_at) then created_at end nulls last, id`,
        [s.key[0]],
      );
      expect(s.rows).toEqual(printed.map((p) => p.row));
      await db.exec('reset timezone');
      expect(s.ids).toHaveLength(printed.length);
      const differs = COMPARED.filter((c) => new Set(printed.map((p) => p.row[c])).size > 1);
      expect(s.differingColumns).toEqual(differs.filter((c) => c !== 'amount'));
    }
  });
});
