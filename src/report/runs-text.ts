import Table from 'cli-table3';
import type { RunEntry } from '../journal/runs.js';
import { makeStyle, plural } from './style.js';

/** `rowdoctor runs` for a person: a summary line, then one row per run, newest first. */
export function renderRunsText(runs: RunEntry[] | null, database: string, color: boolean): string {
  const c = makeStyle(color);
  if (!runs || runs.length === 0) return `rowdoctor runs · ${database} · no repair has been applied on this database\n`;
  const byStatus = new Map<string, number>();
  for (const r of runs) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
  const statuses = [...byStatus].map(([s, n]) => `${n} ${s}`).join(', ');
  const lines = [`rowdoctor runs · ${database} · ${plural(runs.length, 'run')} (${statuses})`, ''];
  const t = new Table({
    head: ['run id', 'command', 'started (UTC)', 'finished (UTC)', 'status', 'rules', 'rows changed', 'undone'],
    style: { head: [], border: c.level ? undefined : [] },
  });
  for (const r of runs) {
    const status = r.status === 'failed' || r.status === 'interrupted' ? c.red(r.status) : r.status;
    t.push([
      r.runId,
      r.undoOf ? `undo of ${r.undoOf}` : r.plan ? `${r.command}\nplan ${r.plan.slice(0, 12)}` : r.command,
      r.started.replace('T', ' ').replace('Z', ''),
      r.finished ? r.finished.replace('T', ' ').replace('Z', '') : '—',
      status,
      r.rules.length ? r.rules.join('\n') : '—',
      changed(r).toLocaleString('en-US'),
      r.command === 'undo' ? '' : r.undone ? 'yes' : 'no',
    ]);
  }
  lines.push(t.toString());
  const errors = runs.filter((r) => r.error);
  if (errors.length) lines.push('', ...errors.map((r) => `${r.runId} ${r.status}: ${r.error}`));
  return lines.join('\n') + '\n';
}

/** Rows a repair deleted, updated, re-pointed or merged; rows an undo restored or reverted. */
function changed(r: RunEntry): number {
  const keys = ['rowsDeleted', 'rowsUpdated', 'childRowsRepointed', 'childRowsMerged', 'restore', 'revert'];
  return keys.reduce((n, k) => n + (r.counts[k] ?? 0), 0);
}
