import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';

/** psql when the machine has one (on PATH, else PostgreSQL 15's); null where it has none. */
export const psql =
  ['psql', '/usr/lib/postgresql/15/bin/psql'].find((p) => spawnSync(p, ['--version']).status === 0) ?? null;

/** Run a migration file as an operator would: psql -f (no single transaction); node-postgres where psql is absent. */
export async function runMigration(url: string, file: string): Promise<void> {
  if (psql) {
    execFileSync(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', file], { stdio: 'pipe' });
    return;
  }
  await runMigrationStatements(url, file);
}

/** Run a migration file's statements one by one through node-postgres, as psql would without -1. */
export async function runMigrationStatements(url: string, file: string): Promise<void> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const statements = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('--'))
      .join('\n')
      .split(/;\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}
