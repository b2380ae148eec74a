import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, undoJson, userTables, writeConfig } from '../support/run.js';

/**
 * Backup tables hold values of the application's own types (enums, domains, composites) as text,
 * with the type's name recorded: an application migration that drops or replaces such a type is
 * neither blocked by rowdoctor_backup nor cascades into it, and undo casts the values back.
 * (runCli checks, after every undo --apply, that every foreign key of the database holds.)
 */
let db: TestDb;
afterEach(() => db.drop());

// Every column of the application's own types: an enum (also in a join table's primary key), a
// domain, a composite and an array of the enum.
const SCHEMA = `
  create type mood as enum ('happy', 'sad');
  create domain email as text check (value like '%@%');
  create type address as (street text, zip int);
  create table person (id int primary key, mail email not null, mood mood, home address, moods mood[]);
  create table pet (id int primary key, owner_id int references person, kind mood not null);
  create table person_mood (person_id int not null references person, mood mood not null,
                            primary key (person_id, mood));
  insert into person values (1, 'a@x', 'happy', '("1 Main St",123)', '{happy}'),
                            (2, 'a@x', 'sad', '("Elm, 9",9)', '{sad,happy}'),
                            (3, 'b@x', null, null, null);
  insert into pet values (10, 2, 'sad'), (11, 1, 'happy');
  insert into person_mood values (1, 'happy'), (2, 'sad'), (3, 'happy');
`;

/** What an application migration does to retire the types: move the columns to text, drop the types. */
const RETIRE = `
  alter table person alter column mail type text, alter column mood type text, alter column home type text,
                     alter column moods type text[];
  alter table pet alter column kind type text;
  alter table person_mood alter column mood type text;
  drop type mood; drop domain email; drop type address;
`;

/** ... and one that brings them back, as they were. */
const RESTORE = `
  create type mood as enum ('happy', 'sad');
  create domain email as text check (value like '%@%');
  create type address as (street text, zip int);
  alter table person alter column mail type email, alter column mood type mood using mood::mood,
                     alter column home type address using home::address, alter column moods type mood[] using moods::mood[];
  alter table pet alter column kind type mood using kind::mood;
  alter table person_mood alter column mood type mood using mood::mood;
`;

async function merge(): Promise<string> {
  const config = writeConfig('rules:\n  - { check: duplicate-rows, table: person, key: [mail], repair: merge }\n');
  const repair = await repairJson(db.url, config, '--apply');
  expect(repair.code, repair.stderr).toBe(0);
  return repair.doc.runId;
}

describe('backups of values of the application types', () => {
  it('do not keep the application from dropping its types, and undo restores them once they are back', async () => {
    db = await freshDatabase(SCHEMA);
    const original = userTables(await db.checksums());
    const runId = await merge();
    expect(await db.query('select person_id, mood::text from person_mood order by 1, 2')).toEqual([
      { person_id: 1, mood: 'happy' },
      { person_id: 1, mood: 'sad' },
      { person_id: 3, mood: 'happy' },
    ]);
    // Before: "cannot drop type mood because other objects depend on it" (the backup's columns).
    await db.exec(RETIRE);
    await db.exec(RESTORE);
    const applied = await undoJson(db.url, runId, '--apply');
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.doc).toMatchObject({ restored: 1, reverted: 2, conflicts: 0 });
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('record the type each column held, and nothing in rowdoctor_backup depends on an application type', async () => {
    db = await freshDatabase(SCHEMA);
    await merge();
    const depending = await db.query(`
      select c.relname, format_type(d.refobjid, null) as type
        from pg_depend d
        join pg_class c on c.oid = d.objid and d.classid = 'pg_class'::regclass
       where c.relnamespace = 'rowdoctor_backup'::regnamespace and d.refclassid = 'pg_type'::regclass
         and d.refobjid in ('mood'::regtype, 'email'::regtype, 'address'::regtype, 'mood[]'::regtype)`);
    expect(depending).toEqual([]);
    const recorded = await db.query(`
      select a.attname as column, col_description(a.attrelid, a.attnum) as type
        from pg_attribute a
       where a.attrelid = (select oid from pg_class where relname like '%_person'
                             and relnamespace = 'rowdoctor_backup'::regnamespace)
         and col_description(a.attrelid, a.attnum) is not null
       order by a.attnum`);
    expect(recorded).toEqual([
      { column: 'mail', type: 'public.email' },
      { column: 'mood', type: 'public.mood' },
      { column: 'home', type: 'public.address' },
      { column: 'moods', type: 'public.mood[]' },
    ]);
  });

  it('kept with their types by an earlier version are turned into text when a repair next writes there', async () => {
    db = await freshDatabase(SCHEMA);
    const original = userTables(await db.checksums());
    const first = await merge();
    // As an earlier version left it: the backup's columns of the person table hold the types.
    const [backup] = await db.query<{ t: string }>(`
      select format('%I.%I', 'rowdoctor_backup', backup_table) as t from rowdoctor_backup.tables
       where table_name = 'person'`);
    await db.exec(`
      alter table ${backup!.t} alter column mail type email, alter column mood type mood using mood::mood,
                  alter column home type address using home::address, alter column moods type mood[] using moods::mood[];
      insert into person values (4, 'c@x', 'sad', null, null), (5, 'c@x', 'happy', null, null)`);
    const second = await merge();
    expect(
      await db.query(`select count(*)::int as n from pg_attribute a where a.attrelid = '${backup!.t}'::regclass
                             and a.atttypid not in ('text'::regtype) and a.attname in ('mail', 'mood', 'home', 'moods')`),
    ).toEqual([{ n: 0 }]);
    await db.exec(RETIRE);
    await db.exec(RESTORE);
    for (const runId of [second, first]) {
      const applied = await undoJson(db.url, runId, '--apply');
      expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    }
    await db.exec('delete from person where id in (4, 5)');
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('are undone in place while the types stay, the re-keyed join table included', async () => {
    db = await freshDatabase(SCHEMA);
    const original = userTables(await db.checksums());
    const runId = await merge();
    const dry = await undoJson(db.url, runId);
    expect(dry.doc).toMatchObject({ restored: 1, reverted: 2, conflicts: 0 });
    const applied = await undoJson(db.url, runId, '--apply');
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });
});
