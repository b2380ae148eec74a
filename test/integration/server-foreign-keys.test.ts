import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, scanFindings, writeConfig } from '../support/run.js';

// Orphans as the server's own foreign-key check finds them: MATCH FULL, the constraint's operators
// in the parent's collation, and ONLY the parent's own rows under INHERITS. The oracle is the
// server itself: every child row inserted, one by one, into an empty copy that carries the key.
const FIXTURE = `
  create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

  create table site (region int, code int, primary key (region, code));
  insert into site values (1, 1), (1, 2);
  create table visit (id int primary key, region int, code int);
  insert into visit values (1, 1, 1), (2, 1, null), (3, null, null), (4, null, 7), (5, 9, 9), (6, 1, 2);
  alter table visit add constraint visit_site_fkey foreign key (region, code) references site match full not valid;

  create table animal (id int primary key, name text);
  create table dog (breed text) inherits (animal);
  insert into animal values (1, 'cat');
  insert into dog values (2, 'rex', 'collie');
  create table vet_visit (id int primary key, animal_id int);
  insert into vet_visit values (1, 1), (2, 2), (3, 2), (4, 3);
  alter table vet_visit add constraint vet_visit_animal_fkey foreign key (animal_id) references animal not valid;
`;

let db: TestDb;
let version: number;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  const [v] = await db.query<{ v: number }>(`select current_setting('server_version_num')::int as v`);
  version = v!.v;
});
afterAll(() => db.drop());

/** How many rows of `child` the server's check of `fk` (its definition) rejects, asked row by row. */
async function serverRejects(child: string, fk: string): Promise<number> {
  await db.exec(`
    create table rd_oracle (like ${child});
    alter table rd_oracle add foreign key ${fk};
    create temp table rd_oracle_n as select 0 as n;
    do $$
    declare r ${child};
    begin
      for r in select * from only ${child} loop
        begin
          insert into rd_oracle select (r).*;
        exception when foreign_key_violation then
          update rd_oracle_n set n = n + 1;
        end;
      end loop;
    end $$;`);
  const [row] = await db.query<{ n: number }>('select n from rd_oracle_n');
  await db.exec('drop table rd_oracle; drop table rd_oracle_n');
  return row!.n;
}

const orphanConfig = (table: string, columns: string[], parent: string, parentColumns: string[]) =>
  writeConfig(`rules:
  - check: orphaned-rows
    table: ${table}
    columns: [${columns.join(', ')}]
    references: { table: ${parent}, columns: [${parentColumns.join(', ')}] }
    repair: delete
`);

async function repairThenValidate(config: string, table: string, constraint: string) {
  const res = await runCli(['repair', '--database-url', db.url, '--config', config, '--apply', '--format', 'json']);
  expect(res.code).toBe(0);
  await db.exec(`alter table ${table} validate constraint ${constraint}`);
  return JSON.parse(res.stdout).actions[0];
}

describe('orphans as the server checks its foreign keys', () => {
  it('MATCH FULL: (1, NULL) and (NULL, 7) are violations, (NULL, NULL) is not; repair leaves the key valid', async () => {
    const expected = await serverRejects('visit', '(region, code) references site match full');
    expect(expected).toBe(3);
    const f = (await scanFindings(db.url)).find((x) => x.table === 'public.visit');
    expect(f).toMatchObject({ check: 'orphaned-rows', rows: expected, missingParent: expected, groups: 3 });
    const action = await repairThenValidate(
      orphanConfig('visit', ['region', 'code'], 'site', ['region', 'code']),
      'visit',
      'visit_site_fkey',
    );
    expect(action).toMatchObject({ rowsDeleted: 3 });
    expect(await db.query('select id from visit order by id')).toEqual([{ id: 1 }, { id: 3 }, { id: 6 }]);
  });

  it('an INHERITS parent: rows of the inheriting table are not parents; repair leaves the key valid', async () => {
    const expected = await serverRejects('vet_visit', '(animal_id) references animal');
    expect(expected).toBe(3);
    const f = (await scanFindings(db.url)).find((x) => x.table === 'public.vet_visit');
    expect(f).toMatchObject({ rows: expected, missingParent: expected, groups: 2 });
    const action = await repairThenValidate(
      orphanConfig('vet_visit', ['animal_id'], 'animal', ['id']),
      'vet_visit',
      'vet_visit_animal_fkey',
    );
    expect(action).toMatchObject({ rowsDeleted: 3 });
    expect(await db.query('select count(*)::int as n from animal')).toEqual([{ n: 2 }]);
  });

  it('a case-insensitive child column compares in its default-collation parent’s collation (PG < 18)', async () => {
    const create = `
      create table person (email text primary key);
      insert into person values ('Bob');
      create table login (id int primary key, email text collate ci);
      insert into login values (1, 'Bob'), (2, 'bob'), (3, 'BOB'), (4, null);
      alter table login add constraint login_email_fkey foreign key (email) references person not valid;`;
    if (version >= 180000) {
      // PostgreSQL 18 refuses such a key: nothing to compare, and nothing rowdoctor could meet.
      await expect(db.exec(create)).rejects.toThrow(/cannot be implemented/);
      return;
    }
    await db.exec(create);
    const expected = await serverRejects('login', '(email) references person');
    expect(expected).toBe(2);
    const f = (await scanFindings(db.url)).find((x) => x.table === 'public.login');
    expect(f).toMatchObject({ rows: expected, missingParent: expected });
    const action = await repairThenValidate(
      orphanConfig('login', ['email'], 'person', ['email']),
      'login',
      'login_email_fkey',
    );
    expect(action).toMatchObject({ rowsDeleted: 2 });
  });
});
