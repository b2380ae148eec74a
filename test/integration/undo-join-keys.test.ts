import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { loadPagila, pagilaAvailable } from '../support/pagila.js';
import { repairJson, runCli, undoJson, userTables, writeConfig } from '../support/run.js';

/**
 * Join tables keyed by their references: a merge re-points rows and so changes their primary key.
 * The backup records the key each row has after the repair, and undo finds them by it.
 * (runCli checks, after every undo --apply, that every foreign key of the database holds.)
 */
let db: TestDb;
afterEach(() => db.drop());

const undo = (runId: string, ...args: string[]) => undoJson(db.url, runId, ...args);

/** Two rules, one repair --apply: tags merged by name, posts by slug. */
async function mergeTagsAndPosts(...args: string[]) {
  const config = writeConfig(
    'rules:\n' +
      '  - { check: duplicate-rows, table: tag, key: [name], repair: merge }\n' +
      '  - { check: duplicate-rows, table: post, key: [slug], repair: merge }\n',
  );
  const repair = await repairJson(db.url, config, '--apply', ...args);
  expect(repair.code, repair.stderr).toBe(0);
  return repair;
}

describe('a join table keyed by the references a merge re-points', () => {
  it('two merges, both halves of the key moved, some rows merged into siblings: undone bit for bit', async () => {
    db = await freshDatabase(`
      create table tag (id int primary key, name text not null);
      insert into tag values (1, 'red'), (2, 'blue'), (3, 'red'), (4, 'blue'), (5, 'green');
      create table post (id int primary key, slug text not null);
      insert into post values (1, 'a'), (2, 'a'), (3, 'b');
      create table "PostTag" ("postId" int not null references post, "tagId" int not null references tag, n int,
                              primary key ("postId", "tagId"));
      -- (2,3) moves to (1,1); (1,3) collides with (1,1) and merges into it; (3,4) moves to (3,2).
      insert into "PostTag" values (1, 1, 10), (1, 3, 11), (2, 3, 12), (3, 4, 13), (2, 5, 14), (3, 2, 15);
      create table post_tag_note (id int primary key, post_id int, tag_id int, body text,
                                  foreign key (post_id, tag_id) references "PostTag" on update cascade);
      insert into post_tag_note values (1, 2, 5, 'moves with its row'), (2, 3, 2, 'stays');
    `);
    const original = userTables(await db.checksums());
    const repair = await mergeTagsAndPosts('--batch-size', '1');
    expect(userTables(await db.checksums())).not.toEqual(original);
    const dry = await undo(repair.doc.runId);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    const applied = await undo(repair.doc.runId, '--apply', '--batch-size', '1');
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.doc).toMatchObject({
      restored: dry.doc.restored,
      reverted: dry.doc.reverted,
      conflicts: 0,
    });
    expect(userTables(await db.checksums())).toEqual(original);
  });

  for (const batches of [[], ['--batch-size', '1']])
    it(`two merges move a join-table row and its child keyed by it, nothing written since: no conflict (undo ${
      batches.join(' ') || 'in one transaction'
    })`, async () => {
      db = await freshDatabase(`
        create table tag (id int primary key, name text not null);
        insert into tag values (1, 'red'), (3, 'red'), (5, 'x');
        create table post (id int primary key, slug text not null);
        insert into post values (1, 'a'), (2, 'a'), (3, 'b');
        create table "PostTag" ("postId" int not null references post, "tagId" int not null references tag, n int,
                                primary key ("postId", "tagId"));
        insert into "PostTag" values (2, 3, 12), (3, 5, 13), (1, 5, 14);
        -- Keyed by its reference: each merge re-keys it (its post_id and tag_id are references too).
        create table post_tag_note (post_id int, tag_id int, k int, body text, primary key (post_id, tag_id, k),
                                    foreign key (post_id, tag_id) references "PostTag" on update cascade);
        insert into post_tag_note values (2, 3, 1, 'moves twice'), (3, 5, 1, 'stays');
      `);
      const original = userTables(await db.checksums());
      const repair = await mergeTagsAndPosts(...batches);
      expect(await db.query('select post_id, tag_id from post_tag_note order by 1, 2')).toEqual([
        { post_id: 1, tag_id: 1 },
        { post_id: 3, tag_id: 5 },
      ]);
      // Before: PostTag (1,1) was a conflict ("changed since the repair"): its note was looked for
      // under the key it had before the run; and undone in one transaction, the note was left
      // naming a PostTag row that was gone.
      const dry = await undo(repair.doc.runId);
      expect(dry.doc).toMatchObject({ restored: 2, reverted: 2, conflicts: 0 });
      const applied = await undo(repair.doc.runId, '--apply', ...batches);
      expect(applied.code, applied.stdout + applied.stderr).toBe(0);
      expect(applied.doc).toMatchObject({ restored: 2, reverted: 2, conflicts: 0 });
      expect(userTables(await db.checksums())).toEqual(original);
    });

  it('a re-pointed row the application changed since is a conflict, found by its new key', async () => {
    db = await freshDatabase(`
      create table tag (id int primary key, name text not null);
      insert into tag values (1, 'red'), (2, 'blue'), (3, 'red');
      create table "PostTag" ("postId" int not null, "tagId" int not null references tag (id), n int,
                              primary key ("postId", "tagId"));
      insert into "PostTag" values (1, 3, 10), (2, 3, 20), (2, 2, 30);
    `);
    const config = writeConfig('rules:\n  - { check: duplicate-rows, table: tag, key: [name], repair: merge }\n');
    const repair = await repairJson(db.url, config, '--apply');
    expect(repair.code, repair.stderr).toBe(0);
    await db.exec(`update "PostTag" set n = 21 where "postId" = 2 and "tagId" = 1`);
    const applied = await undo(repair.doc.runId, '--apply');
    expect(applied.code).toBe(1);
    expect(applied.doc).toMatchObject({ restored: 1, reverted: 1, conflicts: 1 });
    expect(applied.doc.conflictSamples).toEqual([
      expect.objectContaining({ table: 'public.PostTag', reason: 'changed since the repair' }),
    ]);
    // Tag 3 is back; the row the application changed stays on tag 1, as it left it.
    expect(await db.query(`select "postId", "tagId", n from "PostTag" order by 1, 2`)).toEqual([
      { postId: 1, tagId: 3, n: 10 },
      { postId: 2, tagId: 1, n: 21 },
      { postId: 2, tagId: 2, n: 30 },
    ]);
  });
});

describe.skipIf(!pagilaAvailable)('pagila: duplicate actors merged, film_actor(actor_id, film_id) re-pointed', () => {
  it('undo restores every table bit for bit', async () => {
    db = await freshDatabase();
    await loadPagila(db.url);
    // A second PENELOPE GUINESS: films actor 1 plays in too (they merge), and films only she plays in (they move).
    await db.exec(`
      insert into actor (actor_id, first_name, last_name, last_update)
      values (1001, 'PENELOPE', 'GUINESS', '2020-01-01 00:00+00');
      insert into film_actor (actor_id, film_id, last_update)
      select 1001, film_id, '2020-01-02 00:00+00' from film_actor where actor_id = 1 order by film_id limit 5;
      insert into film_actor (actor_id, film_id, last_update)
      select 1001, f.film_id, '2020-01-03 00:00+00'
        from film f
       where not exists (select 1 from film_actor fa where fa.actor_id = 1 and fa.film_id = f.film_id)
       order by f.film_id limit 7;`);
    const original = userTables(await db.checksums());
    const repair = await runCli([
      ...['repair', '--database-url', db.url, '--duplicates', 'actor(first_name, last_name)', '--no-discover'],
      ...['--apply', '--format', 'json'],
    ]);
    expect(repair.code, repair.stderr).toBe(0);
    const { runId } = JSON.parse(repair.stdout) as { runId: string };
    expect(await db.query('select count(*)::int as n from film_actor where actor_id = 1001')).toEqual([{ n: 0 }]);
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.doc.conflicts).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });
});
