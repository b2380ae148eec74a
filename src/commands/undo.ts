import Table from 'cli-table3';
import { readOnly } from '../db.js';
import { loadCatalog } from '../catalog/load.js';
import { softDeleteSettings } from '../catalog/soft-delete.js';
import { makeStyle } from '../report/style.js';
import { createProgress } from '../report/progress.js';
import type { UndoResult } from '../undo/types.js';
import { undoRun } from '../undo/undo.js';
import { connect, prepare } from './context.js';
import { refuseOnStandby } from './primary-only.js';
import { parseFormat, parsePositiveInt, type CommonOptions } from './options.js';
import { parseBatchFlags, stopOnCtrlC, type BatchFlags } from './batching.js';
import { assumptionJson } from '../report/document.js';
import { printWarnings } from '../catalog/row-security.js';

export interface UndoCommandOptions extends CommonOptions, BatchFlags {
  apply?: boolean;
}

/** rowdoctor undo <run-id>: restore what a repair run changed (dry run unless --apply). */
export async function undoCommand(runId: string, opts: UndoCommandOptions, out: (s: string) => void): Promise<number> {
  const format = parseFormat(opts.format, ['text', 'json'] as const);
  const { batchSize, maxTransactionMs, lockTimeoutMs, maxReplicaLagMs } = parseBatchFlags(opts);
  const sample = parsePositiveInt(opts.sample, '--sample');
  const { loaded, statementTimeoutMs } = await prepare(opts);
  const progress = createProgress(process.stderr.isTTY === true);
  const conn = await connect(opts);
  const ctrlC = stopOnCtrlC();
  try {
    await refuseOnStandby(conn.db, 'undo', conn.target.display);
    const catalog = await readOnly(conn.db, statementTimeoutMs, (tx) =>
      // Undo follows the references its run recorded, not the ones the data suggests today.
      loadCatalog(tx, {
        schemas: null,
        softDelete: softDeleteSettings(loaded.config.softDelete),
        weighReferences: false,
      }),
    );
    const result = await conn.db.connection().execute((session) =>
      undoRun(session, catalog, runId, {
        apply: opts.apply === true,
        lockTimeoutMs,
        statementTimeoutMs,
        sample,
        batchSize,
        maxTransactionMs,
        maxReplicaLagMs,
        progress,
        retries: 5,
        interrupted: ctrlC.interrupted,
      }),
    );
    printWarnings(result.warnings);
    if (format === 'json') {
      out(
        JSON.stringify(
          {
            tool: 'rowdoctor',
            schemaVersion: 1,
            command: 'undo',
            database: conn.target.display,
            warnings: result.warnings,
            runId: result.runId,
            applied: result.applied,
            undoRunId: result.applied ? result.undoRunId : null,
            refused: result.refused,
            nothingToUndo: result.nothingToUndo,
            restored: sum(result, 'restore'),
            reverted: sum(result, 'revert'),
            conflicts: sum(result, 'conflicts'),
            conflictSamples: result.conflictSamples,
            inexact: result.inexact,
            interrupted: result.interrupted,
            batches: result.batches,
            tables: result.tables,
            findings: [],
            assumptions: catalog.assumptions.map(assumptionJson),
            summary: { findings: 0, rows: sum(result, 'restore') + sum(result, 'revert'), checks: 0 },
          },
          null,
          2,
        ) + '\n',
      );
    } else {
      out(renderUndo(result, conn.target.display, opts.color));
    }
    return result.refused || result.interrupted || sum(result, 'conflicts') > 0 || result.inexact.length > 0 ? 1 : 0;
  } finally {
    ctrlC.release();
    await conn.close();
  }
}

function sum(r: UndoResult, key: 'restore' | 'revert' | 'conflicts'): number {
  return r.tables.reduce((n, t) => n + t[key], 0);
}

/** How the undo goes, batch-wise: what an earlier, interrupted undo took back already, or one transaction. */
function batchLines(r: UndoResult): string[] {
  const b = r.batches;
  if (b.oneTransaction)
    return ['its backups come from a rowdoctor version that did not record its batches: undone in one transaction'];
  const lines = [];
  if (b.undoneBefore)
    lines.push(
      `${b.undoneBefore} of the repair's ${b.batches} batches were taken back by an earlier, interrupted undo; ` +
        `${r.applied ? 'took back' : 'takes back'} the remaining ${b.batches - b.undoneBefore} ` +
        '(counts below are theirs)',
    );
  else lines.push(`the repair's ${b.batches} batches are taken back last first, each in a short transaction`);
  return lines;
}

function renderUndo(r: UndoResult, database: string, color: boolean): string {
  const c = makeStyle(color);
  const restore = sum(r, 'restore');
  const revert = sum(r, 'revert');
  const conflicts = sum(r, 'conflicts');
  const mode = r.refused
    ? c.red('REFUSED — nothing was changed')
    : r.interrupted
      ? c.yellow(`INTERRUPTED as run ${r.undoRunId} — run the same command again to finish`)
      : r.applied
        ? c.green(`APPLIED as run ${r.undoRunId}`)
        : c.yellow('DRY RUN — nothing was changed; add --apply to perform it');
  if (r.nothingToUndo) return `rowdoctor undo ${r.runId} · ${database} · nothing to undo: the run changed no row\n`;
  const lines = [
    `rowdoctor undo ${r.runId} · ${database} · ${mode}`,
    `${r.applied ? 'restored' : 'would restore'} ${restore} deleted rows, ` +
      `${r.applied ? 'reverted' : 'would revert'} ${revert} updated rows` +
      (conflicts ? `, ${r.applied ? 'left' : 'would leave'} ${conflicts} rows the application changed since` : ''),
    ...batchLines(r),
    '',
  ];
  const t = new Table({
    head: ['table', 'deleted rows to restore', 'updated rows to revert', 'conflicts (left alone)'],
    style: { head: [], border: c.level ? undefined : [] },
  });
  for (const x of r.tables) t.push([x.table, x.restore, x.revert, x.conflicts]);
  lines.push(t.toString());
  if (r.conflictSamples.length)
    lines.push(
      '',
      'Conflicts (the application wrote these rows after the repair; undo leaves them as they are):',
      ...r.conflictSamples.map((s) => `  ${s.table} ${JSON.stringify(s.key)}: ${s.reason}`),
    );
  if (r.inexact.length)
    lines.push(
      '',
      c.red('Cannot restore bit for bit as this role (--apply refuses):'),
      ...r.inexact.map((i) => `  ${i.table}: ${i.reason}`),
    );
  if (r.refused) lines.push('', c.red(`Refused: ${r.refused}`));
  return lines.join('\n') + '\n';
}
