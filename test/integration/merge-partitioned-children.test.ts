import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * Merging artists as MusicBrainz does: children that are partitioned, with unique indexes that
 * exist only on their partitions (MusicBrainz's artist_release), on a sub-partitioned partition,
 * on the partitioned table itself, or on a plain table. Every collision is folded like any other,
 * and the dry run promises exactly what --apply does.
 */
const FIXTURE = `
  create table artist (id int primary key, name text not null);
  insert into artist values (1, 'A'), (2, 'A'), (101, 'A'), (3, 'B'), (4, 'B'), (5, 'C'), (102, 'C'),
                            (6, 'D'), (103, 'E');

  -- the repro: list partitions, each with a unique index of its own, none on the table; no primary key
  create table artist_release (is_track_artist bool not null, artist int not null references artist,
                               release int not null) partition by list (is_track_artist);
  create table artist_release_t partition of artist_release for values in (true);
  create table artist_release_f partition of artist_release for values in (false);
  create unique index artist_release_t_uniq on artist_release_t (release, artist);
  create unique index artist_release_f_uniq on artist_release_f (release, artist);
  insert into artist_release values (true, 1, 10), (true, 2, 10), (false, 2, 10), (false, 101, 10),
    (true, 3, 11), (true, 4, 11), (false, 4, 12), (true, 5, 13), (true, 102, 13), (true, 6, 10);

  -- range partitions, one of them sub-partitioned with its index on the sub-partitioned partition,
  -- the other with its own leaf index; a grandchild references the partitioned table
  create table artist_track (id int not null, year int not null, medium int not null,
                             artist int not null references artist, track int not null,
                             primary key (id, year, medium)) partition by range (year);
  create table artist_track_old partition of artist_track for values from (1900) to (2000)
    partition by list (medium);
  create table artist_track_old_cd partition of artist_track_old for values in (1);
  create table artist_track_old_lp partition of artist_track_old default;
  create table artist_track_new partition of artist_track for values from (2000) to (3000);
  create unique index artist_track_old_uniq on artist_track_old (track, artist, medium);
  create unique index artist_track_new_uniq on artist_track_new (track, artist);
  insert into artist_track values (1, 1990, 1, 1, 7), (2, 1990, 1, 2, 7), (3, 1990, 2, 2, 7),
    (4, 2005, 1, 1, 8), (5, 2005, 2, 101, 8), (6, 1995, 1, 3, 9), (7, 2010, 1, 4, 9);
  create table track_note (id int primary key, track_id int not null, year int not null, medium int not null,
                           note text, foreign key (track_id, year, medium) references artist_track);
  insert into track_note values (1, 2, 1990, 1, 'x'), (2, 5, 2005, 2, 'y'), (3, 1, 1990, 1, 'z');

  -- hash partitions on the reference itself, the unique index on the partitioned table: re-pointed rows move
  create table artist_credit (artist int not null references artist, credit text not null,
                              unique (artist, credit)) partition by hash (artist);
  create table artist_credit_0 partition of artist_credit for values with (modulus 2, remainder 0);
  create table artist_credit_1 partition of artist_credit for values with (modulus 2, remainder 1);
  insert into artist_credit values (1, 'feat'), (2, 'feat'), (101, 'feat'), (3, 'solo'), (4, 'solo'), (4, 'duo');

  -- range partitions on the reference, an index per partition: a re-pointed row lands in another
  -- partition, where it collides under that partition's index
  create table artist_tag (artist int not null references artist, tag int not null, n int not null)
    partition by range (artist);
  create table artist_tag_low partition of artist_tag for values from (1) to (100);
  create table artist_tag_high partition of artist_tag for values from (100) to (1000);
  create unique index artist_tag_low_uniq on artist_tag_low (tag, artist);
  create unique index artist_tag_high_uniq on artist_tag_high (tag, artist);
  insert into artist_tag values (1, 5, 1), (101, 5, 2), (102, 6, 3), (5, 6, 4), (101, 7, 5);

  -- a plain child
  create table artist_alias (id int primary key, artist int not null references artist, alias text not null,
                             unique (artist, alias));
  insert into artist_alias values (1, 1, 'a1'), (2, 2, 'a1'), (3, 3, 'b'), (4, 4, 'b'), (5, 4, 'c');
`;
const CONFIG = 'rules:\n  - { check: duplicate-rows, table: artist, key: [name] }\n';

let db: TestDb;
let config: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
});
afterAll(() => db.drop());

describe('a merge whose children are partitioned', () => {
  it('folds collisions under partition-only, sub-partition and partitioned-table keys; the dry run is the apply', async () => {
    const original = await db.checksums();
    const before = await tableStats(db);
    const dry = await repairJson(db.url, config);
    expect(dry.code, dry.stderr).not.toBe(2);
    expect(await db.checksums()).toEqual(original);
    const applied = await repairJson(db.url, config, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.doc.actions).toEqual(dry.doc.actions);
    const [action] = applied.doc.actions;
    expect(action).toMatchObject({ groups: 3, rowsDeleted: 4, skipped: 0 });
    // artist_release (4): 2 into 1 on (true, 10); 2 and 101 both land on (false, 1, 10); 4 into 3 on
    // (true, 11); 102 into 5 on (true, 13). artist_track (2): 2 into 1 in old/cd (its lp row keeps its
    // medium); 101 into 1 in new. artist_credit (3): two 'feat', one 'solo'. artist_tag (2): 102's tag 6
    // lands in the low partition next to 5's, 101's tag 5 next to 1's. artist_alias (2): 'a1', 'b'.
    expect(action!.childRowsMerged).toBe(13);

    // conservation: the artists merged away and the child rows folded are exactly the rows gone
    const after = await tableStats(db);
    expect(before['public.artist']!.rows - after['public.artist']!.rows).toBe(4);
    const children = Object.keys(before).filter((t) => t !== 'public.artist');
    expect(children.reduce((n, t) => n + before[t]!.rows - after[t]!.rows, 0)).toBe(action!.childRowsMerged);
    // nothing names a merged-away artist, and the grandchildren follow their track's survivor
    for (const t of ['artist_release', 'artist_track', 'artist_credit', 'artist_tag', 'artist_alias'])
      expect(await db.query(`select * from ${t} where artist in (2, 101, 4, 102)`), t).toEqual([]);
    expect(await db.query('select id, track_id, year, medium from track_note order by id')).toEqual([
      { id: 1, track_id: 1, year: 1990, medium: 1 },
      { id: 2, track_id: 4, year: 2005, medium: 1 },
      { id: 3, track_id: 1, year: 1990, medium: 1 },
    ]);
    // the re-pointed tag rows moved into the partition their new artist belongs to
    expect(await db.query('select artist, tag from artist_tag_low order by tag')).toEqual([
      { artist: 1, tag: 5 },
      { artist: 5, tag: 6 },
      { artist: 1, tag: 7 },
    ]);

    // a re-run finds nothing to do
    const again = await repairJson(db.url, config, '--apply');
    expect(again.doc.actions[0]).toMatchObject({
      groups: 0,
      rowsDeleted: 0,
      childRowsRepointed: 0,
      childRowsMerged: 0,
    });

    const undo = await runCli(['undo', applied.doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const restored = await db.checksums();
    for (const [t, sum] of Object.entries(original)) expect(restored[t], t).toBe(sum);
  }, 180_000);
});

describe('a partition-only unique index on a stored generated column', () => {
  it('refuses the re-point in the dry run as --apply meets it (the copy carries the partition key)', async () => {
    const gen = await freshDatabase(`
      create table org (id int primary key, name text not null);
      insert into org values (1, 'a'), (2, 'a'), (3, 'b');
      create table team (kind int not null, org_id int not null references org, code text not null,
                         k text generated always as (org_id::text || '/' || lower(code)) stored)
        partition by list (kind);
      create table team_1 partition of team for values in (1);
      create table team_2 partition of team for values in (2);
      create unique index team_1_k on team_1 (k);
      insert into team (kind, org_id, code) values (1, 1, 'X'), (1, 2, 'x'), (2, 2, 'X'), (2, 3, 'y');
    `);
    try {
      const cfg = writeConfig('rules:\n  - { check: duplicate-rows, table: org, key: [name], repair: merge }\n');
      const original = await gen.checksums();
      const dry = await repairJson(gen.url, cfg);
      expect(await gen.checksums()).toEqual(original);
      const applied = await repairJson(gen.url, cfg, '--apply');
      expect(applied.doc.actions, applied.stderr).toEqual(dry.doc.actions);
      // team (1, 2, 'x') would become '1/x', which (1, 1, 'X') holds in team_1: refused in both
      expect(dry.doc.actions[0]).toMatchObject({ groups: 1, skipped: 1 });
      expect(dry.doc.actions[0]!.skippedGroups[0]!.reason).toMatch(/unique key team_1_k on public\.team_1 \(23505\)/);
    } finally {
      await gen.drop();
    }
  });
});
