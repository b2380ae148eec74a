import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDemoDatabase, DEMO_DIR } from '../../src/demo/database.js';
import { urlFor } from '../support/db.js';
import { psql, runMigration } from '../support/migration.js';
import { runCli } from '../support/run.js';

let url: string;
const config = join(DEMO_DIR, 'rowdoctor.yml');
beforeAll(async () => {
  const admin = inject('pgAdminUrl');
  url = await createDemoDatabase(admin, (d) => urlFor(admin, d), `rd_mig_${Math.random().toString(36).slice(2, 8)}`);
});
afterAll(async () => {
  const c = new pg.Client(inject('pgAdminUrl'));
  await c.connect();
  await c.query(`drop database if exists ${new URL(url).pathname.slice(1)} with (force)`);
  await c.end();
});

describe(`repair, then the emitted migration (${psql ? 'psql' : 'node-postgres'}), then verify`, () => {
  it("the dry run's next-step DDL is the same text as --emit-migration", async () => {
    const dry = await runCli(['repair', '--database-url', url, '--config', config]);
    const file = join(mkdtempSync(join(tmpdir(), 'rowdoctor-mig-')), 'before.sql');
    await runCli(['verify-constraints', '--database-url', url, '--config', config, '--emit-migration', file]);
    const hint = dry.stdout
      .slice(dry.stdout.indexOf('Next step, once repaired'))
      .split('\n')
      .filter((l) => /^(SET|CREATE|ALTER|DROP) /.test(l));
    // Before the repair, rows violate each new constraint: the migration holds those steps back (an INVALID
    // index's drop with its rebuild),
    // commented out — the same statements.
    const migration = readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.replace(/^-- (?=(CREATE|ALTER|DROP) )/, ''))
      .filter((l) => /^(SET|CREATE|ALTER|DROP) /.test(l));
    expect(hint.length).toBeGreaterThanOrEqual(8);
    expect(hint).toEqual(migration);
  });

  it('after repair --apply, the migration runs unedited and verify-constraints exits 0', async () => {
    expect((await runCli(['repair', '--database-url', url, '--config', config, '--apply'])).code).toBe(0);
    const file = join(mkdtempSync(join(tmpdir(), 'rowdoctor-mig-')), 'migration.sql');
    const before = await runCli([
      'verify-constraints',
      '--database-url',
      url,
      '--config',
      config,
      '--emit-migration',
      file,
      '--format',
      'json',
    ]);
    expect(before.code).toBe(1);
    expect(JSON.parse(before.stdout).constraints.every((c: { violations: number }) => c.violations === 0)).toBe(true);
    await runMigration(url, file);
    const after = await runCli(['verify-constraints', '--database-url', url, '--config', config, '--format', 'json']);
    expect(JSON.parse(after.stdout).constraints.map((c: { status: string }) => c.status)).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
    ]);
    expect(after.code).toBe(0);
    // What the migration added really holds: a double submission is now refused.
    const c = new pg.Client(url);
    await c.connect();
    await expect(c.query('insert into submission (invite_id, created_at) values (1, now())')).rejects.toMatchObject({
      code: '23505',
    });
    await c.end();
  });
});
