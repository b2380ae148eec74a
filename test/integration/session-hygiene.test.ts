import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

// A role hardened as the PostgreSQL docs recommend: pg_temp searched last. Unqualified, a work table
// name then resolves to a user's table of the same name: rowdoctor must name every one `pg_temp.…`.
const FIXTURE = `
  create table account (id int primary key, email text not null, score int not null);
  insert into account select i, 'user' || (i % 40) || '@x', i from generate_series(1, 100) i;
  create table login (id int primary key, account_id int references account (id), n int not null);
  insert into login select i, 1 + i % 100, i from generate_series(1, 300) i;
  create table token (id int primary key, account_id int, n int not null);
  insert into token select i, case when i % 7 = 0 then 1000 + i else 1 + i % 100 end, i from generate_series(1, 70) i;
`;

const CONFIG = `rules:
  - check: duplicate-rows
    table: account
    key: [email]
    repair: merge
  - check: orphaned-rows
    table: token
    column: account_id
    references: account.id
    repair: delete
`;

let db: TestDb;
let decoys: string[];
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  await db.exec(`alter database ${db.name} set search_path = public, pg_temp`);
  const oids = await db.query<{ o: number }>(
    "select oid::int as o from pg_class where relname in ('account', 'login', 'token') and relkind = 'r'",
  );
  decoys = [
    'rd_groups',
    'rd_members',
    ...Array.from({ length: 30 }, (_, i) => `rd_t${i + 1}`),
    ...oids.map((r) => `rd_gone_${r.o}`),
  ];
  for (const name of decoys)
    await db.exec(
      `create table public.${name} (note text); insert into public.${name} values ('belongs to the user');`,
    );
});
afterAll(() => db.drop());

async function decoysIntact(): Promise<void> {
  const left = await db.query<{ relname: string }>(
    "select relname from pg_class where relnamespace = 'public'::regnamespace and relname like 'rd\\_%'",
  );
  expect(left.map((r) => r.relname).sort()).toEqual([...decoys].sort());
  for (const name of decoys)
    expect(await db.query(`select note from public.${name}`)).toEqual([{ note: 'belongs to the user' }]);
}

async function totals() {
  const [r] = await db.query<{ a: number; l: number; lsum: number; t: number }>(`
    select (select count(*)::int from account) as a, (select count(*)::int from login) as l,
           (select sum(n)::int from login) as lsum, (select count(*)::int from token) as t`);
  return r!;
}

describe('a role whose search_path puts pg_temp last', () => {
  it('the user tables named like every work table survive a dry run and an apply, with the expected counts', async () => {
    const before = await totals();
    const checksums = await db.checksums();
    const args = ['repair', '--database-url', db.url, '--config', writeConfig(CONFIG), '--no-discover'];
    const dry = await runCli([...args, '--format', 'json']);
    expect(dry.stderr).toBe('');
    await decoysIntact();
    expect(await db.checksums()).toEqual(checksums); // a dry run changes nothing at all

    const res = await runCli([...args, '--apply', '--format', 'json']);
    await decoysIntact();
    const doc = JSON.parse(res.stdout) as { actions: { rowsDeleted: number; childRowsRepointed: number }[] };
    expect(doc.actions).toEqual((JSON.parse(dry.stdout) as { actions: unknown }).actions);
    // 100 accounts over 40 emails: 60 merged away; their logins re-pointed, none lost; 10 orphan tokens deleted
    const merge = doc.actions[0]!;
    const orphans = doc.actions[1]!;
    expect(merge.rowsDeleted).toBe(60);
    expect(orphans.rowsDeleted).toBe(10);
    const after = await totals();
    expect(after).toEqual({ a: before.a - 60, l: before.l, lsum: before.lsum, t: before.t - 10 });
    // the server agrees: the unique index builds, the FK validates
    await db.exec('create unique index on account (email)');
    await db.exec('alter table login add foreign key (account_id) references account (id)');
  });
});
