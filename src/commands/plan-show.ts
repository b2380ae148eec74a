import { readPlan } from '../plan/file.js';
import { renderPlanMarkdown, renderPlanText } from '../report/plan-text.js';
import { makeStyle } from '../report/style.js';
import { parseFormat } from './options.js';

export interface PlanShowOptions {
  format: string;
  color: boolean;
}

/** rowdoctor plan show <file>: a saved repair plan, for review. Reads the file only, never a database. */
export async function planShowCommand(file: string, opts: PlanShowOptions, out: (s: string) => void): Promise<number> {
  const format = parseFormat(opts.format, ['text', 'markdown', 'json'] as const);
  const loaded = await readPlan(file);
  if (format === 'json') {
    const { tool, schemaVersion, kind, ...plan } = loaded.plan;
    void tool;
    void schemaVersion;
    const doc = { tool: 'rowdoctor', schemaVersion: 1, command: 'plan show', file, md5: loaded.md5, kind, ...plan };
    out(JSON.stringify({ ...doc, warnings: [], assumptions: [] }, null, 2) + '\n');
  } else if (format === 'markdown') out(renderPlanMarkdown(loaded));
  else out(renderPlanText(loaded, makeStyle(opts.color)));
  return 0;
}
