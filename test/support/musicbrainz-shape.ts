import { insertSql, rng } from './data.js';

/**
 * A schema shaped like MusicBrainz's around `artist` (issue #27): a few hundred tables, about forty
 * of which reference `artist` — credits, aliases, tags and ratings keyed by (artist, …), link tables
 * `l_artist_<entity>` / `l_<entity>_artist` with unique (entity0, entity1, link), the 1:1
 * `artist_meta`, and `artist_release` partitioned by list with unique indexes only on its partitions —
 * and `groups` groups of duplicate artists whose children collide under those keys.
 *
 * One group (`refusedGroup`) is related to itself through `l_artist_artist`, whose CHECK forbids an
 * artist linked to itself: the server refuses that merge, so it is the one group left unmerged.
 */
export interface MusicBrainzShape {
  sql: string;
  /** Tables in the schema (partitions not counted). */
  tables: number;
  /** Tables with a foreign key into artist. */
  references: number;
  groups: number;
  /** Artist rows a full merge deletes (every group's losers but the refused group's). */
  losers: number;
  /** The ids of every duplicate artist, survivors and losers. */
  duplicateIds: number[];
  /** The ids of the group the server refuses to merge. */
  refusedGroup: number[];
}

const ENTITIES = [
  'area',
  'event',
  'genre',
  'instrument',
  'label',
  'mood',
  'place',
  'recording',
  'release',
  'release_group',
  'series',
  'url',
  'work',
];

/** Per-entity satellite tables (MusicBrainz has these for most entities). */
const SATELLITES = [
  'alias',
  'annotation',
  'gid_redirect',
  'meta',
  'tag',
  'tag_raw',
  'rating',
  'rating_raw',
  'attribute',
  'edit',
  'subscribe',
  'collection',
];

export function musicBrainzShape({ groups = 36, singles = 300, seed = 27 } = {}): MusicBrainzShape {
  const r = rng(seed);
  const out: string[] = [];
  let tables = 0;
  const table = (ddl: string) => {
    out.push(ddl);
    tables++;
  };

  // The other entities and their satellites: the bulk of the catalog, a few rows each.
  for (const e of ENTITIES) {
    table(`create table ${e} (id int primary key, name text not null);`);
    out.push(`insert into ${e} select g, '${e} ' || g from generate_series(1, 50) g;`);
  }
  for (const e of ENTITIES)
    for (const s of SATELLITES)
      table(
        `create table ${e}_${s} (id int primary key, ${e} int not null references ${e}, v int not null default 0);`,
      );
  for (let i = 0; i < ENTITIES.length; i++)
    for (let j = i; j < ENTITIES.length; j++) {
      const [a, b] = [ENTITIES[i]!, ENTITIES[j]!];
      table(
        `create table l_${a}_${b} (id int primary key, link int not null, entity0 int not null references ${a},
                                   entity1 int not null references ${b}, unique (entity0, entity1, link));`,
      );
    }

  // artist and what references it.
  table("create table artist (id int primary key, name text not null, comment text not null default '');");
  const refs: { name: string; ddl: string; columns: string[]; rows: (artist: number, k: number) => unknown[][] }[] = [];
  const keyed = (name: string, other: string, pk: string) =>
    refs.push({
      name,
      // a table keyed by a unique constraint has an id of its own, as MusicBrainz's do
      ddl: `create table ${name} (${pk.startsWith('unique') ? 'id int generated always as identity primary key, ' : ''}
                                  artist int not null references artist, ${other} int not null, v int not null,
                                  ${pk});`,
      columns: ['artist', other, 'v'],
      // a small range of `other`: siblings in a group share some, and collide once re-pointed
      rows: (a, k) => [
        [a, 1 + ((a + k) % 3), k],
        [a, 4 + (a % 2), k],
      ],
    });
  keyed('artist_tag', 'tag', 'primary key (artist, tag)');
  keyed('artist_rating_raw', 'editor', 'primary key (artist, editor)');
  keyed('artist_tag_raw', 'tag', 'primary key (artist, tag)');
  keyed('artist_annotation', 'annotation', 'primary key (artist, annotation)');
  keyed('artist_ipi', 'ipi', 'primary key (artist, ipi)');
  keyed('artist_isni', 'isni', 'primary key (artist, isni)');
  keyed('edit_artist', 'edit', 'primary key (edit, artist)');
  keyed('editor_collection_artist', 'collection', 'primary key (collection, artist)');
  keyed('editor_subscribe_artist', 'editor', 'unique (editor, artist)');
  keyed('artist_attribute', 'attribute_type', 'unique (artist, attribute_type)');
  for (const e of ['event', 'label', 'place', 'recording', 'series', 'work'])
    keyed(`artist_${e}`, e, `primary key (${e}, artist)`);
  refs.push({
    name: 'artist_alias',
    ddl: `create table artist_alias (id int generated always as identity primary key,
                                     artist int not null references artist, name text not null, v int not null,
                                     unique (artist, name));`,
    columns: ['artist', 'name', 'v'],
    rows: (a, k) => [[a, `alias ${a % 2}`, k]],
  });
  refs.push({
    name: 'artist_credit_name',
    ddl: `create table artist_credit_name (artist_credit int not null, position int not null,
                                           artist int not null references artist, v int not null,
                                           primary key (artist_credit, position));`,
    columns: ['artist_credit', 'position', 'artist', 'v'],
    rows: (a, k) => [
      [a, 0, a, k],
      [a, 1, a, k],
    ],
  });
  refs.push({
    name: 'artist_gid_redirect',
    ddl: `create table artist_gid_redirect (gid int primary key, new_id int not null references artist, v int not null);`,
    columns: ['gid', 'new_id', 'v'],
    rows: (a, k) => [[a * 10, a, k]],
  });
  refs.push({
    name: 'artist_meta',
    ddl: `create table artist_meta (id int primary key references artist, rating int, v int not null);`,
    columns: ['id', 'rating', 'v'],
    rows: (a, k) => [[a, a % 100, k]],
  });
  // MusicBrainz's artist_release: list partitions, unique indexes only on the partitions, no primary key.
  refs.push({
    name: 'artist_release',
    ddl: `create table artist_release (is_track_artist bool not null, artist int not null references artist,
                                       release int not null references release, v int not null)
            partition by list (is_track_artist);
          create table artist_release_nonva partition of artist_release for values in (false);
          create table artist_release_va partition of artist_release for values in (true);
          create unique index artist_release_nonva_idx_uniq on artist_release_nonva (release, artist);
          create unique index artist_release_va_idx_uniq on artist_release_va (release, artist);`,
    columns: ['is_track_artist', 'artist', 'release', 'v'],
    // every artist on one compilation (release 10): two duplicate artists on it collide
    rows: (a, k) => [
      [a % 2 === 0, a, 1 + (a % 4), k],
      [true, a, 10, k],
    ],
  });
  refs.push({
    name: 'artist_release_group',
    ddl: `create table artist_release_group (is_track_artist bool not null, artist int not null references artist,
                                             release_group int not null references release_group, v int not null)
            partition by list (is_track_artist);
          create table artist_release_group_nonva partition of artist_release_group for values in (false);
          create table artist_release_group_va partition of artist_release_group for values in (true);
          create unique index artist_release_group_nonva_idx_uniq
            on artist_release_group_nonva (release_group, artist);
          create unique index artist_release_group_va_idx_uniq on artist_release_group_va (release_group, artist);`,
    columns: ['is_track_artist', 'artist', 'release_group', 'v'],
    rows: (a, k) => [[false, a, 1 + (a % 3), k]],
  });
  for (const e of ENTITIES) {
    const link = (name: string, artistSide: 'entity0' | 'entity1') => {
      const other = artistSide === 'entity0' ? 'entity1' : 'entity0';
      refs.push({
        name,
        ddl: `create table ${name} (id int generated always as identity primary key, link int not null,
                                    ${artistSide} int not null references artist,
                                    ${other} int not null references ${e}, v int not null,
                                    unique (entity0, entity1, link));`,
        columns: ['link', artistSide, other, 'v'],
        // MusicBrainz's l_artist_url: two duplicate artists with the same Discogs link collide
        rows: (a, k) => [
          [1, a, 1 + (a % 2), k],
          [2, a, 1 + (a % 5), k],
        ],
      });
    };
    link(`l_artist_${e}`, 'entity0');
    if (e < 'artist') link(`l_${e}_artist`, 'entity1');
  }
  // Artists related to artists; an artist is never related to itself.
  refs.push({
    name: 'l_artist_artist',
    ddl: `create table l_artist_artist (id int generated always as identity primary key, link int not null,
                                        entity0 int not null references artist, entity1 int not null references artist,
                                        v int not null, unique (entity0, entity1, link), check (entity0 <> entity1));`,
    columns: ['link', 'entity0', 'entity1', 'v'],
    rows: () => [],
  });
  for (const ref of refs) {
    out.push(ref.ddl);
    tables++;
  }
  // As MusicBrainz does: every column referencing artist is indexed (deleting an artist checks each).
  for (const ref of refs)
    for (const c of ['artist', 'entity0', 'entity1', 'new_id'].filter((c) => ref.columns.includes(c)))
      out.push(`create index on ${ref.name} (${c});`);

  // Artists: `singles` with a name of their own, then the duplicate groups (2 or 3 rows), interleaved by id.
  const artists: [number, string][] = [];
  const duplicateIds: number[] = [];
  const grouped: number[][] = [];
  let id = 0;
  for (let i = 0; i < singles; i++) artists.push([++id, `single ${i}`]);
  for (let g = 0; g < groups; g++) {
    const size = 2 + (g % 2);
    const members: number[] = [];
    for (let m = 0; m < size; m++) {
      members.push(++id);
      artists.push([id, `duplicate ${g}`]);
    }
    grouped.push(members);
    duplicateIds.push(...members);
  }
  // ids not in name order, so survivors are not simply the lowest ids of the listing
  artists.sort(() => r() - 0.5);
  out.push(insertSql('artist', ['id', 'name'], artists));
  const refused = grouped[Math.floor(groups / 2)]!;
  for (const ref of refs) {
    const rows = artists.flatMap(([a], k) => ref.rows(a, k));
    if (ref.name === 'l_artist_artist') {
      // the refused group's first artist is related to its second; singles relate to the groups' artists
      rows.push([7, refused[0], refused[1], 0]);
      // a single related to two artists of a group: once merged, two rows for one relation, folded
      for (const [g, members] of grouped.entries())
        rows.push([1, 1 + g, members[0], g], [1, 1 + g, members[members.length - 1], g]);
    }
    out.push(insertSql(ref.name, ref.columns, rows));
  }
  out.push('analyze;');
  const losers = grouped.filter((m) => m !== refused).reduce((n, m) => n + m.length - 1, 0);
  return {
    sql: out.join('\n'),
    tables,
    references: refs.reduce((n, ref) => n + (ref.name === 'l_artist_artist' ? 2 : 1), 0),
    groups,
    losers,
    duplicateIds,
    refusedGroup: refused,
  };
}
