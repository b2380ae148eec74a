import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, writeConfig } from '../support/run.js';

/**
 * repair: delete and soft-delete leave a group whose losers something still references — each group
 * with the reason that names what references its own rows, and a group reported skipped is left
 * exactly as it was (no loser of it deleted or soft-deleted).
 */
const FIXTURE = `
  create table users (id int primary key, email text not null, status text, deleted_at timestamptz);
  insert into users values (1, 'a@x', 'ok', null), (2, 'a@x', 'ok', null), (3, 'a@x', 'draft', null),
                           (4, 'b@x', 'ok', null), (5, 'b@x', 'ok', null),
                           (6, 'c@x', 'ok', null), (7, 'c@x', 'ok', null);
  create table post (id int primary key, user_id int references users (id), body text);
  insert into post values (1, 2, 'p'), (2, 5, 'q');
  -- tag points at users through the declared rule below only
  create table tag (id int primary key, user_id int, t text);
  insert into tag values (1, 97, 't'), (2, 7, 'u');
`;
const CONFIG = `rules:
  - { check: duplicate-rows, table: users, key: [email], where: "status <> 'draft'", repair: delete }
  - { check: duplicate-rows, table: users, key: [email], repair: soft-delete }
  - { check: orphaned-rows, table: tag, column: user_id, references: users.id, repair: set-null }
`;

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
});
afterAll(() => db.drop());

const post = 'public.post (foreign key post_user_id_fkey: 1 row)';
const tag = 'public.tag (config reference: 1 row)';
const because = (by: string) => `losers still referenced by ${by} (use repair: merge to re-point their children)`;

describe('skipped groups of repair: delete and soft-delete', () => {
  it('each name what references their own rows, and change nothing — dry run and --apply alike', async () => {
    const config = writeConfig(CONFIG);
    const before = await tableStats(db);
    const users = await db.query('select * from users order by id');
    const dry = await repairJson(db.url, config);
    expect(dry.code, dry.stderr).toBe(1);
    const applied = await repairJson(db.url, config, '--apply');
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.doc.actions).toEqual(dry.doc.actions);
    const [del, soft, nulls] = applied.doc.actions;
    expect(del!.skippedGroups).toEqual([
      { key: ['a@x'], ids: [1, 2], reason: because(post) },
      { key: ['b@x'], ids: [4, 5], reason: because(post) },
      { key: ['c@x'], ids: [6, 7], reason: because(tag) },
    ]);
    expect(del).toMatchObject({ groups: 3, skipped: 3, rowsDeleted: 0 });
    // a@x: loser 2 is referenced, loser 3 is not — the group is skipped whole, user 3 is not soft-deleted
    expect(soft!.skippedGroups).toEqual([
      { key: ['a@x'], ids: [1, 2, 3], reason: because(post) },
      { key: ['b@x'], ids: [4, 5], reason: because(post) },
      { key: ['c@x'], ids: [6, 7], reason: because(tag) },
    ]);
    expect(soft).toMatchObject({ groups: 3, skipped: 3, rowsUpdated: 0 });
    expect(nulls).toMatchObject({ groups: 1, rowsUpdated: 1 });
    // Conservation: users and posts as they were; only tag 1's dangling reference is nulled.
    expect(await db.query('select * from users order by id')).toEqual(users);
    const after = await tableStats(db);
    expect(after['public.users']).toEqual(before['public.users']);
    expect(after['public.post']).toEqual(before['public.post']);
    expect(after['public.tag']).toEqual({ rows: 2, sums: { id: '3', user_id: '7' } });
  });
});
