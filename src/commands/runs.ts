import { readOnly } from '../db.js';
import { listRuns } from '../journal/runs.js';
import { renderRunsText } from '../report/runs-text.js';
import { connect } from './context.js';
import { parseDuration, parseFormat, parsePositiveInt } from './options.js';

export interface RunsCommandOptions {
  databaseUrl?: string;
  format: string;
  color: boolean;
  limit: string;
  statementTimeout: string;
}

/** rowdoctor runs: the repair and undo runs recorded on this database, newest first. Read-only. */
export async function runsCommand(opts: RunsCommandOptions, out: (s: string) => void): Promise<number> {
  const format = parseFormat(opts.format, ['text', 'json'] as const);
  const limit = parsePositiveInt(opts.limit, '--limit', 1);
  const statementTimeoutMs = parseDuration(opts.statementTimeout, '--statement-timeout');
  const conn = await connect(opts);
  try {
    const runs = await readOnly(conn.db, statementTimeoutMs, (tx) => listRuns(tx, limit));
    if (format === 'json') {
      const doc = {
        tool: 'rowdoctor',
        schemaVersion: 1,
        command: 'runs',
        database: conn.target.display,
        warnings: [],
        runs: runs ?? [],
        // runs reads no catalog: nothing is assumed.
        assumptions: [],
      };
      out(JSON.stringify(doc, null, 2) + '\n');
    } else {
      out(renderRunsText(runs, conn.target.display, opts.color));
    }
    return 0;
  } finally {
    await conn.close();
  }
}
