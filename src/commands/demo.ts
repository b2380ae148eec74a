import { join } from 'node:path';
import { startEmbeddedPostgres } from '../embedded.js';
import { createDemoDatabase, DEMO_DIR } from '../demo/database.js';
import { makeStyle } from '../report/style.js';
import { scanCommand } from './scan.js';
import { repairCommand } from './repair.js';
import { verifyCommand } from './verify.js';
import type { CommonOptions } from './options.js';

/**
 * rowdoctor demo: an embedded PostgreSQL with damage modelled on real incidents, scanned as an
 * operator would. Everything lives in a temp directory and is removed at the end (or on Ctrl-C).
 */
export async function demoCommand(opts: { color: boolean }, out: (s: string) => void): Promise<number> {
  const c = makeStyle(opts.color);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log('Starting an embedded PostgreSQL in a temp directory (nothing is installed or left behind)…');
  const server = await startEmbeddedPostgres();
  const cleanup = () => void server.stop();
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  try {
    log('Loading the damaged sample database (fixtures/demo/schema.sql)…');
    // The embedded server has no TLS: a PGSSLMODE of the user's (verify-full, say) must not fail the demo.
    const plain = (url: string) => `${url}?sslmode=disable`;
    const url = await createDemoDatabase(plain(server.adminUrl), (db) => plain(server.urlFor(db)));
    const common: CommonOptions = {
      databaseUrl: url,
      config: join(DEMO_DIR, 'rowdoctor.yml'),
      format: 'text',
      color: opts.color,
      duplicates: [],
      orphans: [],
      discover: true,
      failOn: 'error',
      sample: '3',
      statementTimeout: '1min',
      schema: [],
    };

    const section = (title: string) => out(c.bold(`\n━━ ${title} ━━\n\n`));
    const exit = (code: number, meaning: string) => out(`\n(exit code ${code}: ${meaning})\n`);
    const repairOpts = {
      ...common,
      batchSize: '1000',
      lockTimeout: '2s',
      maxReplicaLag: '10s',
      maxTransactionTime: '200ms',
      backup: true,
      infer: true,
    };

    section('1. rowdoctor scan  (config: fixtures/demo/rowdoctor.yml, plus what the catalog reveals)');
    exit(await scanCommand(common, out), 'problems found — a CI job would fail here');
    section('What each finding means');
    for (const line of EXPLANATIONS) out(`${line}\n`);

    section('2. rowdoctor repair  (a dry run: the plan, nothing changed)');
    exit(await repairCommand(repairOpts, out), 'the plan would change rows');
    section('3. rowdoctor repair --apply  (batches of at most 1000 groups and ~200ms, each row backed up first)');
    exit(await repairCommand({ ...repairOpts, apply: true }, out), 'completed');
    section('4. rowdoctor scan, again');
    const rescan = await scanCommand(common, out);
    exit(rescan, rescan === 0 ? 'clean' : 'problems remain');
    section('5. rowdoctor verify-constraints  (what is now safe to add, and the migration it would write)');
    const verifyOpts = { ...common, expect: [], expectFk: [], lockTimeout: '2s', discover: false };
    exit(
      await verifyCommand(verifyOpts, out),
      'constraints are missing: run the migration above with psql -f, then verify again',
    );
    return 0;
  } finally {
    process.removeListener('SIGINT', cleanup);
    process.removeListener('SIGTERM', cleanup);
    log('Stopping the embedded PostgreSQL and removing its data directory…');
    await server.stop();
  }
}

const EXPLANATIONS = [
  '• submission(invite_id): a double-click beat a read-then-update guard, so one invite has two or three',
  "  submissions. repair merges them: the first submission survives, the others' files are re-pointed to it.",
  '  Its diagnosis: copies 0.3 s apart (a double submit), still happening today — add the unique index and an',
  '  idempotency key now — and two groups whose copies differ in status: look at those before merging.',
  '• cloud_provider_accounts(provider, provider_account_id): two users claimed one OneDrive account, so',
  '  CREATE UNIQUE INDEX CONCURRENTLY failed and left an INVALID index (discovery found it by itself).',
  '  Its diagnosis: the second claims came weeks after the first (a re-creation, not a double click).',
  '• refresh_token.user_id: a bulk delete of users raced sign-outs; the tokens point at nobody (missing) or',
  '  at soft-deleted users. Its foreign key had to be added NOT VALID. repair deletes them, backed up first.',
  '  Its diagnosis: tokens were issued to users deleted three weeks ago as late as today (still happening).',
  '• moodle_token / cloud_provider_accounts .user_id: live rows of soft-deleted users, which no foreign key',
  '  can see.',
  '• moodle_token(moodle_user_id): soft-deleted tokens still hold their key under a plain UNIQUE constraint,',
  "  so the next login's INSERT fails with 23505. repair purges them (purge-deleted).",
  '• audit_event.user_id: looks like a reference to users.id but has no foreign key; events of users that',
  '  are gone. repair clears the reference (set-null) and keeps the events.',
];
