import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { duplicateCounts, insertSql, pick, rng } from '../support/data.js';
import { scanFindings } from '../support/run.js';

const r = rng(3);
interface User {
  id: number;
  email: string | null;
  active: boolean;
  deleted: boolean;
}
const users: User[] = Array.from({ length: 400 }, (_, i) => ({
  id: i + 1,
  email: r() < 0.05 ? null : `${pick(r, ['ann', 'bob', 'cy'])}${Math.floor(r() * 60)}@${pick(r, ['x.io', 'X.IO'])}`,
  active: r() < 0.7,
  deleted: r() < 0.2,
}));

let db: TestDb;
let serverVersion = 0;

/** A CREATE UNIQUE INDEX CONCURRENTLY that fails on duplicates leaves an INVALID index behind. */
async function failedConcurrentIndex(statement: string): Promise<void> {
  await expect(db.exec(statement)).rejects.toMatchObject({ code: '23505' });
}

beforeAll(async () => {
  db = await freshDatabase(`
    create table app_user (id int primary key, email text, active boolean not null, deleted_at timestamptz);
    ${insertSql(
      'app_user',
      ['id', 'email', 'active', 'deleted_at'],
      users.map((u) => [u.id, u.email, u.active, u.deleted ? '2026-03-03' : null]),
    )}

    create table customers (id bigint primary key, deleted_at timestamptz);
    insert into customers select g, case when g = 3 then now() end from generate_series(1, 10) g;
    create table categories (id int primary key);
    insert into categories select generate_series(1, 5);
    create table boxes (id int primary key);
    insert into boxes select generate_series(1, 5);
    create table person (person_id int primary key);
    insert into person select generate_series(1, 5);
    create table item (
      item_id int primary key,            -- its own primary key: never inferred
      customer_id int,                    -- -> customers(id)        (X + s)
      "categoryId" int,                   -- -> categories(id)       (y -> ies, camelCase)
      box_id int,                         -- -> boxes(id)            (X + es)
      person_id text,                     -- person.person_id is int: incompatible, not inferred
      tenant_id int                       -- no table named tenant: not inferred
    );
    insert into item values (1, 1, 1, 1, 'x', 1), (2, 11, 9, 1, 'y', 1), (3, 3, 1, 6, null, 1), (4, null, null, null, null, null);
    -- Most values do exist in each parent: the evidence that makes a name a reference.
    insert into item select g, (array[2, 4, 5, 6, 7, 8, 9, 10])[g - 4], 2 + g % 4, 2 + g % 4, null, 1
      from generate_series(5, 12) g;

    create table event (id int, customer_id int, at date not null) partition by range (at);
    create table event_2026_01 partition of event for values from ('2026-01-01') to ('2026-02-01');
    create table event_2026_02 partition of event for values from ('2026-02-01') to ('2026-03-01');
    insert into event values (1, 1, '2026-01-05'), (2, 42, '2026-01-06'), (3, 43, '2026-02-07');
    insert into event select g, g, '2026-02-08' from generate_series(4, 10) g where g <> 3;

    create table orders (id int primary key, customer_ref bigint references customers (id));
    insert into orders values (1, 1), (2, 3), (3, 3), (4, null);

    create schema "Clinic";
    create table "Clinic"."Patient" (id int primary key, "Email" text, deleted_at timestamptz);
    insert into "Clinic"."Patient" values (1, 'a@x', null), (2, 'a@x', null), (3, 'a@x', null), (4, 'b@x', null), (5, 'b@x', now());
    create table "Clinic"."Appointment" (id int primary key, "patientId" int);
    insert into "Clinic"."Appointment" values (1, 1), (2, 9), (3, 9), (4, 2), (5, 3), (6, 4);
  `);
  serverVersion = Number((await db.query<{ v: string }>("select current_setting('server_version_num') as v"))[0]!.v);
  await failedConcurrentIndex(
    'create unique index concurrently app_user_email_active on app_user (email) where active',
  );
  await failedConcurrentIndex('create unique index concurrently app_user_email_ci on app_user (lower(email))');
  if (serverVersion >= 150000) {
    await db.exec('create table nnd (id int primary key, a int, b int)');
    await db.exec(
      'insert into nnd values (1, 1, null), (2, 1, null), (3, 1, null), (4, 2, 2), (5, null, 5), (6, 2, 3)',
    );
    await failedConcurrentIndex('create unique index concurrently nnd_ab on nnd (a, b) nulls not distinct');
  }
});
afterAll(() => db.drop());

describe('discovery', () => {
  it('turns an INVALID partial unique index into a duplicate check under its predicate, soft-deleted rows included', async () => {
    const findings = await scanFindings(db.url, { only: 'duplicate-rows' });
    const f = findings.find((x) => x.table === 'public.app_user' && x.where !== null);
    const expected = duplicateCounts(users, (u) => (u.email === null || !u.active ? undefined : u.email));
    expect(f).toMatchObject({ key: ['email'], where: 'active', source: 'discovered', severity: 'error', ...expected });
  });

  it('turns an INVALID expression index into a duplicate check on that expression', async () => {
    const findings = await scanFindings(db.url, { only: 'duplicate-rows' });
    const f = findings.find((x) => x.table === 'public.app_user' && x.key[0] === 'lower(email)');
    const expected = duplicateCounts(users, (u) => (u.email === null ? undefined : u.email.toLowerCase()));
    expect(f).toMatchObject({ where: null, ...expected });
  });

  it('keeps the NULLS NOT DISTINCT semantics of an INVALID index (PostgreSQL 15+)', async ({ skip }) => {
    if (serverVersion < 150000) skip();
    const findings = await scanFindings(db.url, { only: 'duplicate-rows' });
    // (1, NULL) three times is one group of 3 rows under NULLS NOT DISTINCT; (NULL, 5) is alone.
    expect(findings.find((x) => x.table === 'public.nnd')).toMatchObject({ groups: 1, rows: 2 });
  });

  it('infers X_id / XId references to X, Xs, Xes and y→ies tables, and nothing else', async () => {
    const findings = await scanFindings(db.url, { only: 'orphaned-rows' });
    const inferred = findings
      .filter((f) => f.inferred)
      .map((f) => `${f.table}(${f.columns!.join()}) -> ${f.references}`);
    expect(inferred.sort()).toEqual([
      'Clinic.Appointment(patientId) -> Clinic.Patient(id)',
      'public.event(customer_id) -> public.customers(id)',
      'public.item(box_id) -> public.boxes(id)',
      'public.item(categoryId) -> public.categories(id)',
      'public.item(customer_id) -> public.customers(id)',
    ]);
    const item = (col: string) => findings.find((f) => f.table === 'public.item' && f.columns![0] === col)!;
    expect(item('customer_id')).toMatchObject({ missingParent: 1, deletedParent: 1, severity: 'warning' });
    expect(item('categoryId')).toMatchObject({ missingParent: 1, deletedParent: 0 });
    expect(item('box_id')).toMatchObject({ missingParent: 1 });
  });

  it('checks a partitioned table once, through its parent, across every partition', async () => {
    const findings = await scanFindings(db.url, { only: 'orphaned-rows' });
    const events = findings.filter((f) => f.table.startsWith('public.event'));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ table: 'public.event', missingParent: 2, groups: 2 });
  });

  it('checks a valid foreign key into a soft-deleting table for rows whose parent is soft-deleted', async () => {
    const findings = await scanFindings(db.url, { only: 'orphaned-rows' });
    expect(findings.find((f) => f.table === 'public.orders')).toMatchObject({
      references: 'public.customers(id)',
      missingParent: 0,
      deletedParent: 2,
      groups: 1,
      inferred: false,
      severity: 'error',
    });
  });

  it('handles mixed-case names in a non-public schema, from a config that uses exact catalog names', async () => {
    const findings = await scanFindings(db.url, {
      configText: 'rules:\n  - check: duplicate-rows\n    table: Clinic.Patient\n    key: [Email]\n',
      only: 'duplicate-rows',
      schema: ['Clinic'],
    });
    expect(findings).toEqual([
      expect.objectContaining({ table: 'Clinic.Patient', key: ['Email'], groups: 1, rows: 2 }),
    ]);
  });

  it('--no-discover leaves only declared rules', async () => {
    expect(await scanFindings(db.url, { discover: false })).toEqual([]);
  });
});
