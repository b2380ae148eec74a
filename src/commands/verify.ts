import { writeFile } from 'node:fs/promises';
import { readOnly } from '../db.js';
import type { Assumption } from '../catalog/types.js';
import { assumptionJson } from '../report/document.js';
import { printWarnings, rowSecurityWarnings, tablesRead, type Warning } from '../catalog/row-security.js';
import { makeStyle } from '../report/style.js';
import { renderVerifyJunit } from '../report/verify-junit.js';
import { renderVerifyText, verifySummary } from '../report/verify-text.js';
import { migrationText, verifyConstraints } from '../verify/verify.js';
import type { Verdict } from '../verify/types.js';
import { connect, prepare, snapshot } from './context.js';
import { parseDuration, parseFormat, type CommonOptions } from './options.js';

export interface VerifyCommandOptions extends CommonOptions {
  expect: string[];
  expectFk: string[];
  emitMigration?: string;
  includeInferred?: boolean;
  lockTimeout: string;
}

/** rowdoctor verify-constraints: are the unique indexes and foreign keys that should exist there? */
export async function verifyCommand(opts: VerifyCommandOptions, out: (s: string) => void): Promise<number> {
  const format = parseFormat(opts.format, ['text', 'json', 'junit'] as const);
  parseDuration(opts.lockTimeout, '--lock-timeout');
  const { loaded, statementTimeoutMs } = await prepare({ ...opts, discover: false });
  const conn = await connect(opts);
  try {
    // Expectations come from declared rules; --discover adds inferred references, nothing else.
    const { snap, warnings } = await readOnly(conn.db, statementTimeoutMs, async (tx) => {
      const snap = await snapshot(tx, { ...opts, discover: false }, loaded, {
        weighReferences: opts.discover === true ? 'all' : undefined,
      });
      return { snap, warnings: [...snap.catalog.warnings, ...(await rowSecurityWarnings(tx, tablesRead(snap.rules)))] };
    });
    printWarnings(warnings);
    const verdicts = await verifyConstraints(conn.db, snap.catalog, snap.rules, {
      expect: opts.expect,
      expectFk: opts.expectFk,
      discover: opts.discover === true,
      lockTimeout: opts.lockTimeout,
      statementTimeoutMs,
    });
    const migration = { includeInferred: opts.includeInferred === true };
    // Inferred references are expected only with --discover: only then are they assumptions here.
    const assumptions = snap.catalog.assumptions.filter(
      (a) => opts.discover === true || a.kind.includes('soft-delete'),
    );
    if (opts.emitMigration)
      await writeFile(opts.emitMigration, migrationText(verdicts, conn.target.display, migration));
    if (format === 'json')
      out(JSON.stringify(verifyDocument(verdicts, conn.target.display, assumptions, warnings), null, 2) + '\n');
    else if (format === 'junit') out(renderVerifyJunit(verdicts, conn.target.display));
    else out(renderVerifyText(verdicts, conn.target.display, makeStyle(opts.color), migration, assumptions));
    if (opts.emitMigration) process.stderr.write(`rowdoctor: wrote ${opts.emitMigration}\n`);
    return verdicts.every((v) => v.status === 'ok' || (v.status === 'unenforceable' && !v.violations)) ? 0 : 1;
  } finally {
    await conn.close();
  }
}

export function verifyDocument(
  verdicts: Verdict[],
  database: string,
  assumptions: Assumption[] = [],
  warnings: Warning[] = [],
) {
  const s = verifySummary(verdicts);
  return {
    tool: 'rowdoctor',
    schemaVersion: 1,
    command: 'verify-constraints',
    database,
    warnings,
    findings: [],
    constraints: verdicts.map((v) => ({
      kind: v.kind,
      table: v.table,
      columns: v.columns,
      ...(v.references ? { references: v.references } : {}),
      where: v.where,
      status: v.status,
      detail: v.detail,
      violations: v.violations,
      ddl: v.ddl,
    })),
    assumptions: assumptions.map(assumptionJson),
    summary: {
      findings: 0,
      rows: verdicts.reduce((n, v) => n + (v.violations ?? 0), 0),
      checks: verdicts.length,
      constraints: verdicts.length,
      ...s,
    },
  };
}
