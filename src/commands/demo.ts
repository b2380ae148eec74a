import { join } from 'node:path';
import { startEmbeddedPostgres } from '../embedded.js';
import { createDemoDatabase, DEMO_DIR } from '../demo/database.js';
import { makeStyle } from '../report/style.js';
import { scanCommand } from './scan.js';
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
    const url = await createDemoDatabase(server.adminUrl, server.urlFor);
    const common: CommonOptions = {
      databaseUrl: url, config: join(DEMO_DIR, 'rowdoctor.yml'), format: 'text', color: opts.color,
      duplicates: [], orphans: [], discover: true, failOn: 'error', sample: '3', statementTimeout: '1min', schema: [],
    };

    out(c.bold('\n━━ 1. rowdoctor scan ━━  (config: fixtures/demo/rowdoctor.yml, plus what the catalog reveals)\n\n'));
    const scanExit = await scanCommand(common, out);
    out(`\n(exit code ${scanExit}: ${scanExit === 1 ? 'problems found — a CI job would fail here' : 'clean'})\n`);

    out(c.bold('\n━━ What each finding means, and the command that fixes it ━━\n\n'));
    for (const line of EXPLANATIONS) out(`${line}\n`);
    out(`\nThe database was ${c.bold('not changed')}: scan runs in a READ ONLY transaction.\n`);
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
  '  submissions. Fix: `rowdoctor repair` (dry run), then `--apply`: the first submission survives and the',
  '  others\' files are re-pointed to it before they are deleted.',
  '• cloud_provider_accounts(provider, provider_account_id): CREATE UNIQUE INDEX CONCURRENTLY failed on',
  '  accounts claimed twice and left an INVALID index. Declare the rule in rowdoctor.yml to repair it, then',
  '  `rowdoctor verify-constraints --emit-migration` writes the DROP/CREATE … CONCURRENTLY to rebuild it.',
  '• refresh_token.user_id: a bulk delete of users raced sign-outs; the tokens point at nobody (missing) or',
  '  at soft-deleted users. The foreign key was added NOT VALID because VALIDATE failed on them.',
  '  Fix: `rowdoctor repair --apply` deletes them (backed up first), then VALIDATE CONSTRAINT succeeds.',
  '• moodle_token / cloud_provider_accounts .user_id: live rows of soft-deleted users; the foreign key',
  '  cannot see soft deletes. Decide per table: declare an orphaned-rows rule (delete, soft-delete or set-null).',
  '• moodle_token(moodle_user_id): soft-deleted tokens still hold their key under a plain UNIQUE constraint,',
  '  so the next login\'s INSERT fails with 23505. Fix: `repair` with purge-deleted (or revive), and make the',
  '  constraint a partial unique index WHERE deleted_at IS NULL.',
  '• audit_event.user_id (warning): looks like a reference to users.id but has no foreign key.',
];
