import type { TestDb } from './db.js';

/**
 * Schemas shaped as Rails, Django and Laravel create them (tables, indexes, foreign keys as their
 * migrations write them), with a little damage each: references the catalog does not hold.
 */

/** Rails 7: STI users, polymorphic comments, ActiveStorage (attachments, blobs, variants), acts-as-taggable-on. */
export const RAILS = `
  create schema rails;
  set search_path = rails;
  create table users (id bigint primary key, type varchar, email varchar not null, created_at timestamp(6) not null);
  insert into users values
    (1, null, 'ann@x.io', '2026-01-01'), (2, 'Admin', 'bob@x.io', '2026-01-02'), (3, null, 'cy@x.io', '2026-01-03'),
    (4, null, 'ann@x.io', '2026-01-04'), (5, 'Admin', 'bob@x.io', '2026-01-05'), (6, null, 'dee@x.io', '2026-01-06'),
    (7, null, 'ann@x.io', '2026-01-07');
  create table posts (id bigint primary key, user_id bigint not null references users, title varchar not null);
  insert into posts select g, 1 + g % 3, 'post ' || g from generate_series(1, 6) g;
  create table comments (id bigint primary key, commentable_type varchar not null, commentable_id bigint not null,
                         body text not null);
  create index index_comments_on_commentable on comments (commentable_type, commentable_id);
  insert into comments values
    (1, 'User', 1, 'a'), (2, 'User', 4, 'b'), (3, 'User', 4, 'c'), (4, 'User', 7, 'd'), (5, 'User', 2, 'e'),
    (6, 'User', 5, 'f'), (7, 'Post', 4, 'g'), (8, 'Post', 1, 'h'), (9, 'User', 3, 'i'), (10, 'User', 6, 'j'),
    (11, 'User', 40, 'orphan'), (12, 'User', 40, 'orphan'), (13, 'User', 41, 'orphan'),
    (14, 'Post', 90, 'orphan'), (15, 'Ghost', 4, 'unknown type'), (16, 'Ghost', 1, 'unknown type'),
    (17, 'Post', 2, 'k'), (18, 'Post', 3, 'l'), (19, 'Post', 5, 'm'), (20, 'Post', 6, 'n');
  create table active_storage_blobs (id bigint primary key, key varchar not null, filename varchar not null);
  create unique index index_active_storage_blobs_on_key on active_storage_blobs (key);
  insert into active_storage_blobs select g, 'k' || g, 'f' || g || '.png' from generate_series(1, 8) g;
  create table active_storage_variant_records (id bigint primary key, blob_id bigint not null references active_storage_blobs,
                                               variation_digest varchar not null);
  create unique index index_active_storage_variant_records_uniqueness
    on active_storage_variant_records (blob_id, variation_digest);
  insert into active_storage_variant_records values (1, 1, 'v1'), (2, 2, 'v1');
  create table active_storage_attachments (id bigint primary key, name varchar not null, record_type varchar not null,
                                           record_id bigint not null, blob_id bigint not null references active_storage_blobs,
                                           created_at timestamp(6) not null);
  create unique index index_active_storage_attachments_uniqueness
    on active_storage_attachments (record_type, record_id, name, blob_id);
  insert into active_storage_attachments values
    (1, 'avatar', 'User', 1, 1, '2026-02-01'), (2, 'avatar', 'User', 4, 1, '2026-02-01'),
    (3, 'avatar', 'User', 7, 2, '2026-02-01'), (4, 'image', 'ActiveStorage::VariantRecord', 1, 3, '2026-02-01'),
    (5, 'image', 'ActiveStorage::VariantRecord', 9, 4, '2026-02-01'), (6, 'avatar', 'User', 3, 5, '2026-02-01'),
    (7, 'avatar', 'User', 2, 6, '2026-02-01'), (8, 'avatar', 'User', 5, 6, '2026-02-01'),
    (9, 'image', 'ActiveStorage::VariantRecord', 2, 7, '2026-02-01');
  create table tags (id bigint primary key, name varchar not null unique, taggings_count int default 0);
  insert into tags values (1, 'red'), (2, 'blue'), (3, 'green');
  create table taggings (id bigint primary key, tag_id bigint not null references tags, taggable_type varchar,
                         taggable_id bigint, tagger_type varchar, tagger_id bigint, context varchar(128),
                         created_at timestamp not null);
  create unique index taggings_idx on taggings (tag_id, taggable_type, taggable_id, context);
  insert into taggings values
    (1, 1, 'User', 1, null, null, 'tags', '2026-03-01'), (2, 1, 'User', 4, null, null, 'tags', '2026-03-01'),
    (3, 2, 'User', 4, null, null, 'tags', '2026-03-01'), (4, 2, 'User', 7, null, null, 'tags', '2026-03-01'),
    (5, 1, 'Post', 4, null, null, 'tags', '2026-03-01'), (6, 3, 'User', 3, null, null, 'tags', '2026-03-01'),
    (7, 3, 'User', 77, null, null, 'tags', '2026-03-01'), (8, 2, 'User', 2, null, null, 'tags', '2026-03-01'),
    (9, 2, 'User', 5, null, null, 'tags', '2026-03-01'), (10, 1, 'Post', 1, null, null, 'tags', '2026-03-01');
  reset search_path;
`;

/** Django 5: contenttypes, auth, a blog app, django-taggit, the admin log (text object_id). */
export const DJANGO = `
  create schema django;
  set search_path = django;
  create table django_content_type (id serial primary key, app_label varchar(100) not null, model varchar(100) not null,
                                    constraint django_content_type_app_label_model_76bd3d3b_uniq unique (app_label, model));
  insert into django_content_type (id, app_label, model) values
    (1, 'auth', 'user'), (2, 'blog', 'entry'), (3, 'taggit', 'tag'), (4, 'legacy', 'widget');
  create table auth_user (id serial primary key, username varchar(150) not null unique, email varchar(254) not null);
  insert into auth_user values (1, 'ann', 'ann@x.io'), (2, 'bob', 'bob@x.io'), (3, 'ann2', 'ann@x.io'),
                               (4, 'cy', 'cy@x.io'), (5, 'bob2', 'bob@x.io');
  create table blog_entry (id bigserial primary key, author_id int not null references auth_user deferrable initially deferred,
                           headline varchar(255) not null);
  insert into blog_entry values (1, 1, 'one'), (2, 2, 'two'), (3, 3, 'three'), (4, 4, 'four');
  create table taggit_tag (id serial primary key, name varchar(100) not null unique, slug varchar(100) not null unique);
  insert into taggit_tag values (1, 'red', 'red'), (2, 'blue', 'blue');
  create table taggit_taggeditem (id serial primary key, object_id int not null,
                                  content_type_id int not null references django_content_type deferrable initially deferred,
                                  tag_id int not null references taggit_tag deferrable initially deferred,
                                  constraint taggit_taggeditem_content_type_id_object_id_tag_id_4bb97a8e_uniq
                                    unique (content_type_id, object_id, tag_id));
  insert into taggit_taggeditem (id, object_id, content_type_id, tag_id) values
    (1, 1, 1, 1), (2, 3, 1, 1), (3, 3, 1, 2), (4, 2, 1, 2), (5, 5, 1, 2), (6, 1, 2, 1), (7, 3, 2, 2),
    (8, 9, 2, 1), (9, 4, 1, 1), (10, 12, 4, 1);
  create table django_admin_log (id serial primary key, action_time timestamptz not null, object_id text,
                                 object_repr varchar(200) not null, action_flag smallint not null,
                                 change_message text not null,
                                 content_type_id int references django_content_type deferrable initially deferred,
                                 user_id int not null references auth_user deferrable initially deferred);
  insert into django_admin_log (id, action_time, object_id, object_repr, action_flag, change_message, content_type_id, user_id)
  values
    (1, '2026-01-01', '1', 'ann', 2, '[]', 1, 1), (2, '2026-01-01', '3', 'ann2', 2, '[]', 1, 1),
    (3, '2026-01-01', '2', 'two', 1, '[]', 2, 2), (4, '2026-01-01', '31', 'gone', 3, '[]', 2, 2),
    (5, '2026-01-01', 'x-1', 'not a key', 3, '[]', 2, 2), (6, '2026-01-01', '5', 'bob2', 2, '[]', 1, 4),
    (7, '2026-01-01', '4', 'cy', 2, '[]', 1, 4), (8, '2026-01-01', '1', 'one', 2, '[]', 2, 1),
    (9, '2026-01-02', '3', 'three', 2, '[]', 2, 1), (10, '2026-01-02', '4', 'four', 2, '[]', 2, 1);
  reset search_path;
`;

/** Laravel 11: morphs with a morph map (aliases, singular and plural) and full class names. */
export const LARAVEL = `
  create schema laravel;
  set search_path = laravel;
  create table users (id bigserial primary key, name varchar(255) not null, email varchar(255) not null);
  insert into users values (1, 'ann', 'ann@x.io'), (2, 'bob', 'bob@x.io'), (3, 'ann', 'ann@x.io'), (4, 'cy', 'cy@x.io');
  create table posts (id bigserial primary key, title varchar(255) not null);
  insert into posts values (1, 'p1'), (2, 'p2'), (3, 'p3');
  create table videos (id bigserial primary key, title varchar(255) not null);
  insert into videos values (1, 'v1'), (2, 'v2');
  create table comments (id bigserial primary key, body text not null, commentable_type varchar(255) not null,
                         commentable_id bigint not null);
  create index comments_commentable_type_commentable_id_index on comments (commentable_type, commentable_id);
  insert into comments (id, body, commentable_type, commentable_id) values
    (1, 'a', 'App\\Models\\Post', 1), (2, 'b', 'App\\Models\\Video', 2), (3, 'c', 'user', 3), (4, 'd', 'user', 1),
    (5, 'e', 'App\\Models\\Post', 8), (6, 'f', 'users', 3), (7, 'g', 'App\\Models\\Podcast', 1),
    (8, 'h', 'App\\Models\\Post', 2), (9, 'i', 'App\\Models\\Video', 1), (10, 'j', 'user', 4), (11, 'k', 'user', 2);
  create table images (id bigserial primary key, url varchar(255) not null, imageable_type varchar(255) not null,
                       imageable_id bigint not null);
  create unique index images_imageable_unique on images (imageable_type, imageable_id);
  insert into images (id, url, imageable_type, imageable_id) values
    (1, 'u1', 'user', 1), (2, 'u3', 'user', 3), (3, 'p1', 'post', 1), (4, 'u2', 'user', 2), (5, 'u9', 'user', 9);
  create table tags (id bigserial primary key, name varchar(255) not null);
  insert into tags values (1, 'red'), (2, 'blue');
  create table taggables (id bigserial primary key, tag_id bigint not null references tags,
                          taggable_type varchar(255) not null, taggable_id bigint not null);
  -- morphToMany's pivot, here with an id and a unique key (Laravel's default keyless one: undo-nokey-versions.test.ts)
  create unique index taggables_unique on taggables (tag_id, taggable_type, taggable_id);
  create index taggables_taggable_type_taggable_id_index on taggables (taggable_type, taggable_id);
  insert into taggables (tag_id, taggable_type, taggable_id) values (1, 'user', 1), (1, 'user', 3), (2, 'user', 3), (2, 'App\\Models\\Post', 1),
                               (1, 'user', 4), (2, 'user', 2);
  reset search_path;
`;

/** A polymorphic or generic reference of these schemas, and the table each type value names (the frameworks' rules). */
export interface Mapping {
  table: string;
  typeColumn: string;
  idColumn: string;
  types: Record<string, string>;
}

export const MAPPINGS: Mapping[] = [
  {
    table: 'rails.comments',
    typeColumn: 'commentable_type',
    idColumn: 'commentable_id',
    types: { User: 'rails.users', Post: 'rails.posts' },
  },
  {
    table: 'rails.active_storage_attachments',
    typeColumn: 'record_type',
    idColumn: 'record_id',
    types: { User: 'rails.users', 'ActiveStorage::VariantRecord': 'rails.active_storage_variant_records' },
  },
  {
    table: 'rails.taggings',
    typeColumn: 'taggable_type',
    idColumn: 'taggable_id',
    types: { User: 'rails.users', Post: 'rails.posts' },
  },
  {
    table: 'django.taggit_taggeditem',
    typeColumn: 'content_type_id',
    idColumn: 'object_id',
    types: { '1': 'django.auth_user', '2': 'django.blog_entry' },
  },
  {
    table: 'django.django_admin_log',
    typeColumn: 'content_type_id',
    idColumn: 'object_id',
    types: { '1': 'django.auth_user', '2': 'django.blog_entry' },
  },
  {
    table: 'laravel.comments',
    typeColumn: 'commentable_type',
    idColumn: 'commentable_id',
    types: {
      'App\\Models\\Post': 'laravel.posts',
      'App\\Models\\Video': 'laravel.videos',
      user: 'laravel.users',
      users: 'laravel.users',
    },
  },
  {
    table: 'laravel.images',
    typeColumn: 'imageable_type',
    idColumn: 'imageable_id',
    types: { user: 'laravel.users', post: 'laravel.posts' },
  },
  {
    table: 'laravel.taggables',
    typeColumn: 'taggable_type',
    idColumn: 'taggable_id',
    types: { user: 'laravel.users', 'App\\Models\\Post': 'laravel.posts' },
  },
];

/** Rows of one type whose id (as text) is no key of the type's table (as text): per id, how many. */
export async function danglingBySql(db: TestDb, m: Mapping, type: string) {
  const parent = m.types[type]!;
  const rows = await db.query<{ id: string; n: number }>(
    `select c.${m.idColumn}::text as id, count(*)::int as n
       from ${m.table} c
      where c.${m.typeColumn}::text = $1 and c.${m.idColumn} is not null
        and not exists (select 1 from ${parent} p where p.id::text = c.${m.idColumn}::text)
      group by 1 order by 1`,
    [type],
  );
  return { rows: rows.reduce((n, r) => n + r.n, 0), groups: rows.length, keys: rows.map((r) => r.id) };
}
