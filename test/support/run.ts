import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withReadOnlySnapshot } from '../../src/commands/context.js';
import type { CommonOptions } from '../../src/commands/options.js';
import { findingJson, type FindingJson } from '../../src/report/document.js';
import { silentProgress } from '../../src/report/progress.js';
import { scan } from '../../src/scan.js';
import { brokenForeignKeys } from './foreign-keys.js';

export const BIN = fileURLToPath(new URL('../../bin/rowdoctor.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run bin/rowdoctor.js as a subprocess, as a CI job or an operator would. After every `undo --apply`
 * that ran (exit 0 or 1), every validated foreign key of its database must hold (the server's
 * anti-join, test/support/foreign-keys.ts): no undo may leave a violation behind, hidden by the
 * replica mode it restores in.
 */
export async function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  const res = await spawnCli(args, options);
  const url = args[args.indexOf('--database-url') + 1];
  if (args[0] === 'undo' && args.includes('--apply') && url && args.includes('--database-url') && res.code !== 2) {
    const broken = await brokenForeignKeys(url);
    if (broken.length)
      throw new Error(`undo left foreign keys violated:\n  ${broken.join('\n  ')}\n${res.stdout}${res.stderr}`);
  }
  return res;
}

function spawnCli(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, NO_COLOR: '1', DATABASE_URL: '', ...options.env };
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A repair's JSON document (contract §JSON), as the tests read it. */
export interface RepairDoc {
  runId: string;
  actions: (Record<string, number> & { skippedGroups: { key: unknown[]; ids: unknown[]; reason: string }[] })[];
}

/**
 * `repair --config <config> --no-discover --format json` against `url`, plus `args` (`--apply` …):
 * its exit code, stderr and document (null when it printed none: exit 2).
 */
export async function repairJson(
  url: string,
  config: string,
  ...args: string[]
): Promise<CliResult & { doc: RepairDoc }> {
  const res = await runCli([
    'repair',
    '--database-url',
    url,
    '--config',
    config,
    '--no-discover',
    '--format',
    'json',
    ...args,
  ]);
  return { ...res, doc: (res.stdout.trim() ? JSON.parse(res.stdout) : null) as RepairDoc };
}

/** An undo's JSON document (contract §JSON), as the tests read it. */
export interface UndoDoc {
  restored: number;
  reverted: number;
  conflicts: number;
  conflictSamples: { table: string; key: unknown[]; reason: string }[];
}

/** `undo <runId> --format json` against `url`, plus `args` (`--apply` …): exit code, output and document. */
export async function undoJson(url: string, runId: string, ...args: string[]): Promise<CliResult & { doc: UndoDoc }> {
  const res = await runCli(['undo', runId, '--database-url', url, '--format', 'json', ...args]);
  return { ...res, doc: (res.stdout.trim() ? JSON.parse(res.stdout) : null) as UndoDoc };
}

/** A database's table checksums (TestDb.checksums) without rowdoctor's backups: the application's tables. */
export function userTables(sums: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));
}

/** Write a config to a temp file; returns its path. */
export function writeConfig(text: string, ext = 'yml'): string {
  const dir = mkdtempSync(join(tmpdir(), 'rowdoctor-cfg-'));
  const file = join(dir, `rowdoctor.${ext}`);
  writeFileSync(file, text);
  return file;
}

/** Scan in-process and return the findings as the JSON document spells them. */
export async function scanFindings(
  url: string,
  options: Partial<CommonOptions> & { configText?: string } = {},
): Promise<FindingJson[]> {
  const { configText, ...rest } = options;
  const opts: CommonOptions = {
    databaseUrl: url,
    format: 'json',
    color: false,
    duplicates: [],
    orphans: [],
    discover: true,
    failOn: 'error',
    sample: '5',
    statementTimeout: '1min',
    schema: [],
    config: configText ? writeConfig(configText) : '/dev/null',
    ...rest,
  };
  const result = await withReadOnlySnapshot(opts, (tx, snap) =>
    scan(tx, snap.rules, { sample: Number(opts.sample), progress: silentProgress }),
  );
  return result.findings.map(findingJson);
}
