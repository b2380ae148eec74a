import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

export interface TestDb {
  name: string;
  url: string;
  /** Run SQL over the simple protocol (several statements allowed: fixtures). */
  exec(text: string): Promise<void>;
  query<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  /** md5 of every row of every user table, in a stable order: "did anything change?". */
  checksums(): Promise<Record<string, string>>;
  drop(): Promise<void>;
}

export function urlFor(adminUrl: string, database: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** A fresh, empty database on the shared server, dropped by `drop()`. */
export async function freshDatabase(setupSql?: string): Promise<TestDb> {
  const adminUrl = inject('pgAdminUrl');
  const name = `rd_test_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = urlFor(adminUrl, name);
  const client = new pg.Client(url);
  await client.connect();
  const db: TestDb = {
    name,
    url,
    async exec(text) {
      await client.query(text);
    },
    async query(text, values) {
      return (await client.query(text, values as unknown[])).rows;
    },
    async checksums() {
      const tables = await client.query<{ t: string }>(`
        select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%' order by 1`);
      const out: Record<string, string> = {};
      for (const { t } of tables.rows) {
        const r = await client.query<{ h: string }>(
          `select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as h from ${t} x`,
        );
        out[t] = r.rows[0]!.h;
      }
      return out;
    },
    async drop() {
      await client.end();
      const a = new pg.Client(adminUrl);
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
  if (setupSql) await db.exec(setupSql);
  return db;
}

/**
 * What the server raises for `statement` (run in a transaction that is rolled back): its SQLSTATE
 * and constraint name. Tests compare rowdoctor's reasons with it rather than with a code they
 * assume, since majors differ (an ON UPDATE RESTRICT key: 23001 on some, 23503 on others).
 */
export async function serverRefusal(db: TestDb, statement: string): Promise<{ code: string; constraint?: string }> {
  await db.exec('begin');
  try {
    await db.exec(statement);
  } catch (e) {
    const { code, constraint } = e as { code: string; constraint?: string };
    return { code, constraint };
  } finally {
    await db.exec('rollback');
  }
  throw new Error(`the server took "${statement}" without an error`);
}
