import pg from 'pg';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** Where the demo's schema, data and config live (shipped with the package). */
export const DEMO_DIR = fileURLToPath(new URL('../../fixtures/demo/', import.meta.url));

/**
 * Create the demo database: the damaged schema and data, then a CREATE UNIQUE INDEX CONCURRENTLY
 * that fails on the duplicates in it and leaves an INVALID index behind, as in production.
 * Fixture files hold several statements, so they go over a plain client (simple protocol).
 */
export async function createDemoDatabase(
  adminUrl: string,
  urlFor: (db: string) => string,
  name = 'rowdoctor_demo',
): Promise<string> {
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  try {
    await admin.query(`create database ${admin.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name);
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query(await readFile(`${DEMO_DIR}schema.sql`, 'utf8'));
    await client.query(await readFile(`${DEMO_DIR}failed-index.sql`, 'utf8')).then(
      () => {
        throw new Error('the demo index build was expected to fail on duplicates');
      },
      (e: { code?: string }) => {
        if (e.code !== '23505') throw e;
      },
    );
    await client.query('analyze');
  } finally {
    await client.end();
  }
  return url;
}
