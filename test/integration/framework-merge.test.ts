import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { danglingBySql, DJANGO, LARAVEL, MAPPINGS, RAILS, type Mapping } from '../support/frameworks.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * A merge on a Rails, Django or Laravel schema, with no reference declared: rows that name a loser
 * through a polymorphic or generic reference move to the survivor — only those whose type names the
 * merged table — and those that then collide under the child's unique key (an ActiveStorage
 * attachment, a tagging, a morphOne image) are merged in turn. Nothing is left naming a missing
 * parent, the dry run counts what the apply does, undo puts every table back bit for bit.
 */
const CASES: {
  name: string;
  fixture: string;
  merged: string;
  key: string;
  mappings: Mapping[];
  /** Rows of another type holding a loser's id: never touched. */
  untouched: string;
  /** The type value that names no table (a warning in the repair's output too, with its row count). */
  unknown: [table: string, type: string, rows: string];
  changed: Record<string, number>;
}[] = [
  {
    name: 'Rails: STI users, polymorphic comments, ActiveStorage, acts-as-taggable-on',
    fixture: RAILS,
    merged: 'rails.users',
    key: 'email',
    mappings: MAPPINGS.filter((x) => x.table.startsWith('rails.')),
    untouched: `select id, commentable_type as t, commentable_id as i from rails.comments where commentable_type <> 'User'
                union all select id, taggable_type, taggable_id from rails.taggings where taggable_type <> 'User'
                union all select id, record_type, record_id from rails.active_storage_attachments where record_type <> 'User'`,
    // 3 users; attachments (User 4, avatar, blob 1) and (User 5, avatar, blob 6); taggings (1, User 4),
    // (2, User 7) after (2, User 4) moved, (2, User 5)
    unknown: ['rails.comments', 'Ghost', '2'],
    changed: { 'rails.users': -3, 'rails.active_storage_attachments': -2, 'rails.taggings': -3, 'rails.comments': 0 },
  },
  {
    name: 'Django: contenttypes, taggit, the admin log with a text object_id',
    fixture: DJANGO,
    merged: 'django.auth_user',
    key: 'email',
    mappings: MAPPINGS.filter((x) => x.table.startsWith('django.')),
    untouched: `select id, content_type_id::text as t, object_id::text as i from django.taggit_taggeditem where content_type_id <> 1
                union all select id, content_type_id::text, object_id from django.django_admin_log where content_type_id <> 1`,
    unknown: ['django.taggit_taggeditem', '4', '1'],
    changed: { 'django.auth_user': -2, 'django.taggit_taggeditem': -2, 'django.django_admin_log': 0 },
  },
  {
    name: 'Laravel: morphs with a morph map',
    fixture: LARAVEL,
    merged: 'laravel.users',
    key: 'email',
    mappings: MAPPINGS.filter((x) => x.table.startsWith('laravel.')),
    untouched: `select id::text, commentable_type as t, commentable_id as i from laravel.comments where commentable_type not in ('user', 'users')
                union all select id::text, imageable_type, imageable_id from laravel.images where imageable_type <> 'user'
                union all select id::text, taggable_type, taggable_id from laravel.taggables where taggable_type <> 'user'`,
    unknown: ['laravel.comments', 'App\\Models\\Podcast', '1'],
    changed: { 'laravel.users': -1, 'laravel.images': -1, 'laravel.taggables': -1, 'laravel.comments': 0 },
  },
];

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(RAILS + DJANGO + LARAVEL);
});
afterAll(() => db.drop());

/** Per mapping and type: the ids (as text) that name no row of the type's table. */
async function dangling(mappings: Mapping[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const m of mappings)
    for (const type of Object.keys(m.types)) out[`${m.table} ${type}`] = await danglingBySql(db, m, type);
  return out;
}

const counts = async (tables: string[]) =>
  Object.fromEntries(
    await Promise.all(
      tables.map(async (t) => [t, Number((await db.query<{ n: string }>(`select count(*) as n from ${t}`))[0]!.n)]),
    ),
  );

describe('merging through references the catalog does not hold', () => {
  for (const c of CASES)
    it(c.name, async () => {
      const config = writeConfig(
        `rules:\n  - { check: duplicate-rows, table: ${c.merged}, key: [${c.key}], repair: merge }\n`,
      );
      const original = await db.checksums();
      const before = await dangling(c.mappings);
      const tables = Object.keys(c.changed);
      const rowsBefore = await counts(tables);
      const untouched = await db.query(c.untouched);

      const dry = await repairJson(db.url, config);
      expect(dry.code, dry.stderr).toBe(1);
      expect(await db.checksums()).toEqual(original); // a dry run changes nothing, backups included
      const apply = await repairJson(db.url, config, '--apply');
      expect(apply.code, apply.stderr).toBe(0);
      expect(dry.doc.actions).toEqual(apply.doc.actions);
      expect(apply.doc.actions[0]).toMatchObject({ skipped: 0 });
      // Type values that name no table are reported by the repair as by scan: their rows are left alone.
      for (const res of [dry, apply]) {
        const warnings = (res.doc as unknown as { warnings: { code: string; table: string; message: string }[] })
          .warnings;
        const unknown = warnings
          .filter((w) => w.code === 'unknown-polymorphic-type' && w.table.startsWith(c.merged.split('.')[0]!))
          .map((w) => [w.table, ...(w.message.match(/'(.*)' in (\d+) row/)?.slice(1) ?? [])]);
        expect(unknown).toEqual([c.unknown]);
        expect(res.stderr).toContain(`rowdoctor: warning: ${c.unknown[0]}.`);
      }

      // Conservation: no row names a missing parent that did not before, through any reference kind.
      expect(await dangling(c.mappings)).toEqual(before);
      const rowsAfter = await counts(tables);
      for (const t of tables) expect(rowsAfter[t]! - rowsBefore[t]!, t).toBe(c.changed[t]);
      const merged = -Object.entries(c.changed).reduce((n, [t, d]) => (t === c.merged ? n : n + d), 0);
      expect(apply.doc.actions[0]!.childRowsMerged).toBe(merged);
      // Rows of other types (a Post 4 is not a User 4) and unknown types are not touched.
      expect(await db.query(c.untouched)).toEqual(untouched);
      const undo = await runCli(['undo', apply.doc.runId, '--database-url', db.url, '--apply']);
      expect(undo.code, undo.stderr).toBe(0);
      const now = await db.checksums();
      for (const [t, sum] of Object.entries(original))
        if (!t.startsWith('rowdoctor_backup.')) expect(now[t], t).toBe(sum);
    });
});

describe('a delete through references the catalog does not hold', () => {
  it('keeps an orphan that a polymorphic row still names, and deletes one only another type names', async () => {
    await db.exec(`
      create schema del;
      create table del.owners (id int primary key);
      insert into del.owners values (1);
      create table del.items (id int primary key, owner_id int not null);
      insert into del.items values (1, 1), (2, 9), (3, 8);
      create table del.notes (id int primary key, notable_type text not null, notable_id int not null);
      insert into del.notes values (1, 'Item', 2), (2, 'Owner', 3), (3, 'Item', 1);`);
    const config = writeConfig(`
rules:
  - { check: orphaned-rows, table: del.items, column: owner_id, references: del.owners.id, repair: delete }
references:
  - table: del.notes
    polymorphic: { type: notable_type, id: notable_id }
    types: { Item: del.items, Owner: del.owners }
`);
    const res = await repairJson(db.url, config, '--apply');
    expect(res.code, res.stderr).toBe(1); // a group skipped
    expect(res.doc.actions[0], JSON.stringify(res.doc.actions)).toMatchObject({ rowsDeleted: 1, skipped: 1 });
    expect(res.doc.actions[0]!.skippedGroups[0]!.reason).toBe(
      "orphan rows still referenced by del.notes (config polymorphic reference (notable_type = 'Item'): 1 row) " +
        'were left in place',
    );
    // Item 2 is named by note 1 and stays; note 2 names Owner 3, not Item 3, which goes.
    expect(await db.query('select id from del.items order by id')).toEqual([{ id: 1 }, { id: 2 }]);
  });
});
