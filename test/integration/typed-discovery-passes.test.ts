import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog/load.js';
import { freshDatabase, type TestDb } from '../support/db.js';

/**
 * Discovery weighs a polymorphic pair in one grouped pass over its rows (issue #22): the type values
 * come from a loose scan of the (type, id) index Rails and Laravel create, one probe per value. The
 * server counts what was read: the rows of `comments` that discovery's statements read, in this
 * transaction (pg_stat_get_xact_tuples_returned), must be one table's worth, not two. Serial plans only, so every
 * tuple is counted by this backend.
 */
const ROWS = 6000;
const SCHEMA = `
  create table users (id bigint primary key);
  insert into users select generate_series(1, 500);
  create table posts (id bigint primary key);
  insert into posts select generate_series(1, 300);
  create table comments (id bigint primary key, commentable_type varchar not null, commentable_id bigint not null);
  insert into comments
  select g, case when g % 3 = 0 then 'Post' when g % 100 = 1 then 'Ghost' else 'User' end, 1 + g % 290
    from generate_series(1, ${ROWS}) g;
  create index index_comments_on_commentable on comments (commentable_type, commentable_id);
`;

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(SCHEMA);
  await db.exec('vacuum analyze');
});
afterAll(() => db.drop());

describe('discovery of a polymorphic pair', () => {
  it('reads the pair once: one grouped pass, the type values from its index', async () => {
    const kysely = new Kysely<Record<string, never>>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) }),
    });
    try {
      const { read, references } = await kysely.transaction().execute(async (tx) => {
        await sql`set local max_parallel_workers_per_gather = 0`.execute(tx);
        const catalog = await loadCatalog(tx, {
          schemas: ['public'],
          softDelete: { columns: [], tables: new Map() },
          weighReferences: true,
        });
        const { rows } = await sql<{ read: string }>`
          -- Rows a sequential scan of comments returned, and entries its indexes returned (idx_tup_read).
          select pg_stat_get_xact_tuples_returned('comments'::regclass)
               + (select coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0)
                    from pg_index
                   where indrelid = 'comments'::regclass)
                 as read`.execute(tx);
        return { read: Number(rows[0]!.read), references: catalog.typedReferences.map((r) => r.type) };
      });
      expect(references).toEqual(['Post', 'User']);
      // One pass reads every row once; the loose scan adds a probe or two per type value.
      expect(read).toBeGreaterThanOrEqual(ROWS);
      expect(read).toBeLessThan(ROWS + 50);
    } finally {
      await kysely.destroy();
    }
  });
});
