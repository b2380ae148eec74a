import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, scanFindings } from '../support/run.js';

// Keys compared as the server compares them: an index's own collation, and a type's own equality
// from a schema that is not on the search_path. Every count is checked against the server's own
// answer, and every repair against the constraint it was for: after it, the index builds.
const FIXTURE = `
  create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
  create table member (id int primary key, email text not null);
  insert into member values (1, 'Bob'), (2, 'bob'), (3, 'BOB'), (4, 'alice'), (5, 'Carol'), (6, 'carol');
  create table message (id int primary key, member_id int not null references member (id));
  insert into message values (1, 2), (2, 3), (3, 4);

  create schema extensions;
  create extension citext schema extensions;
  create table tag (id int primary key, name extensions.citext not null, weight numeric not null);
  insert into tag values (1, 'Rust', 1.0), (2, 'rust', 1.00), (3, 'RUST', 2), (4, 'go', 3), (5, 'Go', 3.000);
  create table post_tag (id int primary key, tag_id int not null references tag (id));
  insert into post_tag values (1, 2), (2, 3), (3, 5), (4, 1);

  -- 2,000 groups, each of two rows equal under their type's equality but not as text.
  create table amount (id int primary key, v numeric not null, label extensions.citext not null);
  insert into amount
  select g * 2 - 1 + k, (g || case k when 0 then '.0' else '.00' end)::numeric,
         case k when 0 then 'Tag' else 'TAG' end || g
    from generate_series(1, 2000) g, generate_series(0, 1) k;

  create table profile (id int primary key, nick text);
  insert into profile values (1, null), (2, ''), (3, 'x'), (4, 'x'), (5, 'y');
`;

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  // What a failed CREATE UNIQUE INDEX CONCURRENTLY leaves behind: an INVALID index, here case-insensitive.
  await expect(
    db.exec('create unique index concurrently member_email_ci on member (email collate ci)'),
  ).rejects.toThrow(/could not create unique index/);
});
afterAll(() => db.drop());

describe('samples', () => {
  it('list every row of each sampled group: 1.0 with 1.00, Tag1 with TAG1 (citext)', async () => {
    const findings = await scanFindings(db.url, { duplicates: ['amount(v)', 'amount(label)'], discover: false });
    expect(findings).toHaveLength(2);
    for (const f of findings) {
      expect(f).toMatchObject({ groups: 2000, rows: 2000 });
      expect(f.samples).toHaveLength(5);
      for (const sample of f.samples) expect(sample.ids).toHaveLength(2);
    }
  });
});

describe('expressions compared as the server normalises them', () => {
  it("a declared coalesce(nick, '') replaces the discovered COALESCE(nick, ''::text): reported once", async () => {
    await expect(
      db.exec("create unique index concurrently profile_nick_key on profile ((coalesce(nick, '')))"),
    ).rejects.toThrow(/could not create unique index/);
    const expected = await serverExcess('profile', "coalesce(nick, '')");
    expect(expected).toBe(2);
    const findings = await scanFindings(db.url, { duplicates: ["profile(coalesce(nick, ''))"] });
    const profile = findings.filter((f) => f.table === 'public.profile');
    expect(profile).toHaveLength(1);
    expect(profile[0]).toMatchObject({ source: 'flag', groups: 2, rows: expected });
    await db.exec('drop index profile_nick_key');
  });
});

/** Σ(count − 1) over the groups the server forms for this GROUP BY: the rows a unique index would reject. */
async function serverExcess(table: string, key: string): Promise<number> {
  const [row] = await db.query<{ n: string }>(
    `select coalesce(sum(n - 1), 0) as n from (select count(*) as n from ${table} group by ${key}) g`,
  );
  return Number(row!.n);
}

describe('equality is the index’s or the key’s own', () => {
  it('finds what an INVALID unique index on (email COLLATE ci) finds: Bob/bob/BOB and Carol/carol', async () => {
    const expected = await serverExcess('member', 'email collate ci');
    expect(expected).toBe(3);
    const [f] = await scanFindings(db.url);
    expect(f).toMatchObject({ check: 'duplicate-rows', table: 'public.member', groups: 2, rows: expected });
    // Every row of each sampled group, whatever its case.
    expect(f!.samples.map((s) => s.ids)).toEqual([
      [1, 2, 3],
      [5, 6],
    ]);
  });

  it('rebuilds that index with its COLLATE, and reports it as another key than a plain (email)', async () => {
    const res = await runCli(['verify-constraints', '--database-url', db.url, '--format', 'json']);
    const verdicts = JSON.parse(res.stdout).constraints as { status: string; ddl: string[]; violations: number }[];
    expect(verdicts).toHaveLength(1);
    expect(verdicts[0]).toMatchObject({ status: 'invalid', violations: 3 });
    expect(verdicts[0]!.ddl.join('\n')).toContain('(email COLLATE "public"."ci")');
    const plain = await runCli(
      ['verify-constraints', '--database-url', db.url, '--format', 'json'].concat(['--expect', 'member(email)']),
    );
    const [expected] = JSON.parse(plain.stdout).constraints as { status: string; detail: string }[];
    expect(expected!.status).toBe('mismatch');
    expect(expected!.detail).toMatch(/email compares with collation ci .* expected collation "default"/);
  });

  it('merges citext duplicates from a schema off the search_path; the unique index then builds', async () => {
    const flags = ['--database-url', db.url, '--duplicates', 'tag(name)', '--no-discover', '--format', 'json'];
    expect((await scanFindings(db.url, { duplicates: ['tag(name)'], discover: false }))[0]).toMatchObject({
      groups: 2,
      rows: await serverExcess('tag', 'name'),
    });
    const before = await db.query<{ n: string; w: string }>('select count(*) as n, sum(weight) as w from tag');
    const dry = JSON.parse((await runCli(['repair', ...flags])).stdout);
    expect(dry.actions[0]).toMatchObject({ groups: 2, rowsDeleted: 3, childRowsRepointed: 3 });
    const applied = JSON.parse((await runCli(['repair', ...flags, '--apply'])).stdout);
    expect(applied.actions[0]).toEqual(dry.actions[0]);
    expect(await db.query('select id, name from tag order by id')).toEqual([
      { id: 1, name: 'Rust' },
      { id: 4, name: 'go' },
    ]);
    expect(await db.query('select tag_id from post_tag order by id')).toEqual([
      { tag_id: 1 },
      { tag_id: 1 },
      { tag_id: 4 },
      { tag_id: 1 },
    ]);
    // Conservation: the deleted rows are in the backup, and come back with undo.
    const after = await db.query<{ n: string }>('select count(*) as n from tag');
    expect(Number(before[0]!.n) - Number(after[0]!.n)).toBe(3);
    await db.exec('create unique index tag_name_key on tag (name)');
    await db.exec('drop index tag_name_key');
    const undo = await runCli(['undo', applied.runId, '--database-url', db.url, '--apply', '--format', 'json']);
    expect(undo.code).toBe(0);
    expect(await db.query<{ n: string; w: string }>('select count(*) as n, sum(weight) as w from tag')).toEqual(before);
  });

  it('repairs the case-insensitive duplicates; the INVALID index’s own DDL then builds it', async () => {
    const config = ['--database-url', db.url, '--duplicates', 'member(email collate ci)', '--no-discover'];
    const res = await runCli(['repair', ...config, '--apply', '--format', 'json']);
    expect(JSON.parse(res.stdout).actions[0]).toMatchObject({ groups: 2, rowsDeleted: 3, childRowsRepointed: 2 });
    expect(await serverExcess('member', 'email collate ci')).toBe(0);
    const verify = await runCli(['verify-constraints', '--database-url', db.url, '--format', 'json']);
    const [verdict] = JSON.parse(verify.stdout).constraints as { violations: number; ddl: string[] }[];
    expect(verdict!.violations).toBe(0);
    for (const statement of verdict!.ddl) await db.exec(statement);
    expect(await db.query("select indisvalid from pg_index where indexrelid = 'member_email_ci'::regclass")).toEqual([
      { indisvalid: true },
    ]);
    await expect(db.exec("insert into member values (9, 'ALICE')")).rejects.toThrow(/duplicate key/);
  });
});
