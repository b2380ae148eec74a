import { createProgress } from '../report/progress.js';
import { scanDocument } from '../report/document.js';
import { renderScanMarkdown } from '../report/scan-markdown.js';
import { renderScanText } from '../report/scan-text.js';
import { makeStyle } from '../report/style.js';
import { scan } from '../scan.js';
import { readOnly } from '../db.js';
import { printWarnings, rowSecurityWarnings, tablesRead } from '../catalog/row-security.js';
import { withReadOnlySnapshot } from './context.js';
import { creationAssumptions } from '../diagnosis/created-at.js';
import { parseDuration, parseFailOn, parseFormat, parsePositiveInt, type CommonOptions } from './options.js';

/** rowdoctor scan: find the damage, change nothing. Returns the exit code. */
export async function scanCommand(opts: CommonOptions, out: (s: string) => void): Promise<number> {
  const format = parseFormat(opts.format, ['text', 'json', 'markdown'] as const);
  const failOn = parseFailOn(opts.failOn);
  const sample = parsePositiveInt(opts.sample, '--sample');
  const jobs = parsePositiveInt(opts.jobs ?? '1', '--jobs', 1);
  const statementTimeoutMs = parseDuration(opts.statementTimeout, '--statement-timeout');
  const progress = createProgress(format === 'text' && process.stderr.isTTY === true);
  const diagnose =
    opts.diagnose === false
      ? undefined
      : {
          recentMs: parseDuration(opts.recent ?? '24h', '--recent'),
          showRows: parsePositiveInt(opts.showRows ?? '0', '--show-rows'),
        };
  const { result, database, assumptions, warnings } = await withReadOnlySnapshot(
    opts,
    async (tx, snap, conn, alongside) => ({
      warnings: [...snap.catalog.warnings, ...(await rowSecurityWarnings(tx, tablesRead(snap.rules)))],
      result: await scan(tx, snap.rules, {
        sample,
        progress,
        alongside,
        fresh: (work) => readOnly(conn.db, statementTimeoutMs, work),
        notice: (line) => process.stderr.write(`rowdoctor: ${line}\n`),
        diagnose,
      }),
      database: conn.target.display,
      assumptions: [...snap.catalog.assumptions, ...(diagnose ? creationAssumptions(snap.rules) : [])],
    }),
    // One connection more than --jobs: a retry after a recovery conflict needs a new one.
    { jobs, connections: jobs + 1 },
  );
  printWarnings(warnings);
  if (format === 'json')
    out(
      JSON.stringify(scanDocument('scan', database, result.findings, result.checks, assumptions, warnings), null, 2) +
        '\n',
    );
  const view = { database, assumptions, ...result, recentMs: diagnose?.recentMs, today: utcToday() };
  if (format === 'markdown') out(renderScanMarkdown(view));
  else if (format !== 'json') out(renderScanText(view, makeStyle(opts.color)));
  // A rule that could not run is an error of the tool's, not damage found: exit 2, like any error.
  if (result.findings.some((f) => f.error)) return 2;
  const failing = result.findings.filter((f) => f.severity === 'error' || failOn === 'warning');
  return failing.length ? 1 : 0;
}

/** The UTC date of the scan: the sparkline's last day. */
function utcToday(): string {
  return new Date().toISOString().slice(0, 10);
}
