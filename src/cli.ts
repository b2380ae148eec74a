import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { RowdoctorError, describePgError, isPgError, lostConnectionError } from './errors.js';
import { isRecoveryConflict, RECOVERY_CONFLICT_HINT } from './catalog/recovery.js';
import { redact } from './db.js';
import { statementStats } from './repair/context.js';
import { scanCommand } from './commands/scan.js';
import { initCommand } from './commands/init.js';
import { repairCommand, type RepairCommandOptions } from './commands/repair.js';
import { undoCommand, type UndoCommandOptions } from './commands/undo.js';
import { verifyCommand, type VerifyCommandOptions } from './commands/verify.js';
import { runsCommand, type RunsCommandOptions } from './commands/runs.js';
import { planShowCommand, type PlanShowOptions } from './commands/plan-show.js';
import type { CommonOptions } from './commands/options.js';
import { withBatchFlags } from './commands/batching.js';

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;
const out = (s: string) => void process.stdout.write(s);
const collect = (value: string, previous: string[]) => [...previous, value];

/** Options shared by every command that reads a database (contract §Commands). */
function withCommonOptions(cmd: Command, formats: string, options: { noDiscover?: boolean } = {}): Command {
  cmd =
    options.noDiscover === false ? cmd : cmd.option('--no-discover', 'do not add rules discovered from the catalog');
  return cmd
    .option('--database-url <url>', 'PostgreSQL URL (else DATABASE_URL, else libpq PG* variables)')
    .option('--config <file>', 'config file (default ./rowdoctor.yml if present; .json also accepted)')
    .option('--schema <name>', 'schema to check (repeatable; default: every non-system schema)', collect, [])
    .option('--only <checks>', 'comma-separated checks: duplicate-rows, orphaned-rows, soft-delete-conflicts')
    .option('--format <format>', `output format: ${formats}`, 'text')
    .option('--no-color', 'no colour (also NO_COLOR)')
    .option(
      '--duplicates <spec>',
      "ad-hoc duplicate check, e.g. 'public.users(lower(email))' (repeatable)",
      collect,
      [],
    )
    .option(
      '--orphans <spec>',
      "ad-hoc orphan check, e.g. 'public.token.user_id -> public.users.id' (repeatable)",
      collect,
      [],
    )
    .option('--fail-on <severity>', 'lowest severity that exits 1: error or warning', 'error')
    .option('--sample <n>', 'sample groups per finding (counts are always exact)', '5')
    .option('--statement-timeout <duration>', 'statement_timeout for every query, e.g. 30s, 10min', '15min')
    .option('--debug', 'print stack traces');
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('rowdoctor')
    .description('Diagnose and repair duplicate and orphaned rows in PostgreSQL.')
    .version(version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  withCommonOptions(
    program.command('scan').description('find duplicate rows, orphaned rows and soft-delete conflicts'),
    'text|json|markdown',
  )
    .option(
      '--jobs <n>',
      'check up to n rules at once, each on its own connection, all on one snapshot (like pg_dump -j)',
      '1',
    )
    .option('--no-diagnose', 'leave out the diagnosis: since when, still happening, how the copies differ')
    .option('--recent <duration>', 'the diagnosis window for "still happening", e.g. 1h, 24h, 7d', '24h')
    .option('--show-rows <n>', 'print every row of the first n sample groups, differing columns marked', '0')
    .action(async (opts: CommonOptions) => setExit(await scanCommand(opts, out)));

  withBatchFlags(
    withCommonOptions(
      program.command('repair').description('fix declared rules: a dry run unless --apply'),
      'text|json',
    )
      .option('--apply', 'perform the repair (default: dry run, nothing changed)')
      .option('--sql', 'print the statements'),
    { help: 'at most this many groups per transaction', default: '1000' },
  )
    .option('--no-backup', 'do not copy changed rows to rowdoctor_backup (the run cannot be undone)')
    .option('--no-infer', 'do not follow inferred references when re-pointing children')
    .option('--plan-out <file>', 'dry run: also write the plan, for review (rowdoctor plan show)')
    .option('--plan <file>', 'act on the groups of this reviewed plan only, as long as they are unchanged')
    .action(async (opts: RepairCommandOptions) => setExit(await repairCommand(opts, out)));

  withBatchFlags(
    withCommonOptions(
      program
        .command('undo')
        .argument('<run-id>', 'the run to undo (printed by repair --apply)')
        .description('restore what a repair run changed: a dry run unless --apply'),
      'text|json',
    ).option('--apply', 'perform the restore (default: dry run)'),
    {
      help: "at most this many backed-up rows per transaction (one of the repair's batches is never split)",
      default: '5000',
    },
  ).action(async (runId: string, opts: UndoCommandOptions) => setExit(await undoCommand(runId, opts, out)));

  program
    .command('runs')
    .description('list the repair and undo runs recorded on this database, newest first (read-only)')
    .option('--database-url <url>', 'PostgreSQL URL (else DATABASE_URL, else libpq PG* variables)')
    .option('--format <format>', 'output format: text|json', 'text')
    .option('--limit <n>', 'at most this many runs', '50')
    .option('--statement-timeout <duration>', 'statement_timeout for every query, e.g. 30s, 10min', '15min')
    .option('--no-color', 'no colour (also NO_COLOR)')
    .option('--debug', 'print stack traces')
    .action(async (opts: RunsCommandOptions) => setExit(await runsCommand(opts, out)));

  program
    .command('plan')
    .description('saved repair plans (repair --plan-out)')
    .command('show')
    .argument('<file>', 'the plan written by repair --plan-out')
    .description('render a saved repair plan for review: per rule the counts, per group what stays, goes and moves')
    .option('--format <format>', 'output format: text|markdown|json', 'text')
    .option('--no-color', 'no colour (also NO_COLOR)')
    .option('--debug', 'print stack traces')
    .action(async (file: string, opts: PlanShowOptions) => setExit(await planShowCommand(file, opts, out)));

  withCommonOptions(
    program
      .command('verify-constraints')
      .description('check that the unique indexes and foreign keys that should exist do exist'),
    'text|json|junit',
    { noDiscover: false },
  )
    .option('--discover', 'also expect foreign keys for inferred references')
    .option('--expect <spec>', "expect a unique key, e.g. 'public.users(email)' (repeatable)", collect, [])
    .option('--expect-fk <spec>', "expect a foreign key, e.g. 'token(user_id) -> users(id)' (repeatable)", collect, [])
    .option('--emit-migration <file>', 'write the lock-safe migration to this file')
    .option('--include-inferred', "write inferred references' DDL to run, not commented out for review")
    .option('--lock-timeout <duration>', 'the lock_timeout the migration sets', '2s')
    .action(async (opts: VerifyCommandOptions) => setExit(await verifyCommand(opts, out)));

  withCommonOptions(
    program.command('init').description('introspect the database and write a starter rowdoctor.yml'),
    'text',
  )
    .option('--output <file>', 'where to write the config', 'rowdoctor.yml')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: CommonOptions & { output: string; force?: boolean }) => setExit(await initCommand(opts, out)));

  program
    .command('demo')
    .description('start an embedded PostgreSQL with damaged sample data and show what rowdoctor does')
    .addOption(new Option('--no-color', 'no colour (also NO_COLOR)'))
    .option('--debug', 'print stack traces')
    .action(async (opts: { color: boolean }) => {
      // Loaded only here: no other command needs the embedded server's code.
      const { demoCommand } = await import('./commands/demo.js');
      setExit(await demoCommand(opts, out));
    });

  return program;
}

/** Print an error once, as a paragraph a person can act on; exit 2 unless the error says otherwise. */
export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof RowdoctorError) {
    process.stderr.write(`rowdoctor: ${redact(e.message)}\n${e.hint ? `  ${redact(e.hint)}\n` : ''}`);
    if (debug && e.cause instanceof Error) process.stderr.write(`${e.cause.stack}\n`);
    return e.exitCode;
  }
  if (isPgError(e)) {
    const hint = isRecoveryConflict(e) ? `  ${RECOVERY_CONFLICT_HINT}\n` : '';
    process.stderr.write(`rowdoctor: ${redact(describePgError(e))}\n${hint}`);
    return 2;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(
    `rowdoctor: internal error: ${redact(err.message)}\n` +
      '  This is a bug in rowdoctor; run again with --debug and report the output.\n',
  );
  if (debug) process.stderr.write(`${redact(err.stack ?? '')}\n`);
  return 2;
}

/** For `npm run bench`: peak memory and the longest repair statement, on stderr, at exit. */
function reportStats(): void {
  if (process.env.ROWDOCTOR_REPORT_STATS !== '1') return;
  process.on('exit', () => {
    const stats = {
      maxRssKb: process.resourceUsage().maxRSS,
      longestStatementMs: Math.round(statementStats.longestMs),
      longestStatement: statementStats.longestSql,
      longestTransactionMs: Math.round(statementStats.longestTransactionMs),
      batches: statementStats.batches,
    };
    process.stderr.write(`rowdoctor-stats ${JSON.stringify(stats)}\n`);
  });
}

/** `--format json` anywhere in argv: then even an error is one JSON document on stdout. */
function wantsJson(argv: string[]): boolean {
  return argv.some((a, i) => a === '--format=json' || (a === '--format' && argv[i + 1] === 'json'));
}

/** Contract §Exit codes: `{ tool, schemaVersion, command, error: { message, sqlstate, detail, hint } }`. */
export function errorDocument(command: string, e: unknown) {
  const pg = isPgError(e) ? e : e instanceof Error && isPgError(e.cause) ? e.cause : null;
  const message =
    e instanceof CommanderError ? e.message.replace(/^error: /, '') : e instanceof Error ? e.message : String(e);
  const hint =
    e instanceof RowdoctorError
      ? (e.hint ?? null)
      : pg && isRecoveryConflict(pg)
        ? RECOVERY_CONFLICT_HINT
        : (pg?.hint ?? null);
  return {
    tool: 'rowdoctor',
    schemaVersion: 1,
    command,
    error: {
      message: redact(message),
      sqlstate: pg?.code ?? null,
      detail: pg?.detail ? redact(pg.detail) : null,
      hint: hint ? redact(hint) : null,
    },
  };
}

async function main(argv: string[]): Promise<void> {
  reportStats();
  const debug = argv.includes('--debug');
  const command = argv.slice(2).find((a) => !a.startsWith('-')) ?? '';
  const printErrorJson = (e: unknown) => {
    if (wantsJson(argv)) out(JSON.stringify(errorDocument(command, e), null, 2) + '\n');
  };
  const program = buildProgram((code) => {
    process.exitCode = code;
  });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and --version exit 0; every usage error is exit 2 (commander's own default is 1).
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      if (process.exitCode === 2) printErrorJson(e);
    } else {
      const err = lostConnectionError(e);
      process.exitCode = reportError(err, debug);
      printErrorJson(err);
    }
  }
}

await main(process.argv);
