import Table from 'cli-table3';
import type { ChalkInstance } from 'chalk';
import { toYaml } from './yaml.js';
import type { Finding } from '../checks/types.js';
import type { RepairResult } from '../repair/actions.js';
import { ruleToConfig } from '../rules/to-config.js';
import { describeRule } from '../rules/types.js';
import { plural, show } from './style.js';
import type { Verdict } from '../verify/types.js';
import type { MissingIndex } from '../repair/indexes.js';

export interface RepairView {
  database: string;
  result: RepairResult;
  /** Discovered findings: listed, never repaired. */
  unrepaired: Finding[];
  sqlText: boolean;
  /** Constraints still missing for the declared rules, with their DDL. */
  nextSteps: Verdict[];
  /** References the repair follows with no index to find their rows by. */
  missingIndexes: MissingIndex[];
  batchSize: number;
}

/** Summary line, per-rule table, sample groups, what was not repaired, notes, optional SQL. */
export function renderRepairText(view: RepairView, c: ChalkInstance): string {
  const { result } = view;
  const t = totals(result);
  const mode = result.applied
    ? c.green('APPLIED')
    : c.yellow('DRY RUN — nothing was changed; add --apply to perform it');
  const verb = result.applied
    ? ['deleted', 'updated', 're-pointed', 'merged']
    : ['would delete', 'would update', 'would re-point', 'would merge'];
  const changes = [
    `${verb[0]} ${plural(t.rowsDeleted, 'row')}`,
    `${verb[1]} ${plural(t.rowsUpdated, 'row')}`,
    `${verb[2]} ${plural(t.childRowsRepointed, 'child row')}`,
    `${verb[3]} ${plural(t.childRowsMerged, 'child row')}`,
  ].join(', ');
  const skipped = t.skipped ? c.red(` · ${plural(t.skipped, 'group')} skipped`) : '';
  const out = [
    `rowdoctor repair · ${view.database} · run ${result.runId} · ${mode}`,
    `${plural(result.actions.length, 'rule')} · ${plural(t.groups, 'group')} · ${changes}${skipped}`,
    // The dry run's footprint: it planned on copies of these rows, not of the tables.
    ...(result.plannedRows === undefined ? [] : [`planned on copies of ${plural(result.plannedRows, 'row')}`]),
    '',
  ];
  if (result.actions.length) {
    const table = new Table({
      head: [
        'rule',
        'action',
        'groups',
        'rows deleted',
        'rows updated',
        'child rows re-pointed',
        'child rows merged',
        'skipped',
      ],
      style: { head: [], border: c.level ? undefined : [] },
    });
    const n = (v: number) => ({ content: v.toLocaleString('en-US'), hAlign: 'right' as const });
    for (const a of result.actions) {
      table.push([
        `${a.rule.check}\n${describeRule(a.rule)}`,
        a.rule.repair,
        n(a.groups),
        n(a.rowsDeleted),
        n(a.rowsUpdated),
        n(a.childRowsRepointed),
        n(a.childRowsMerged),
        n(a.skipped),
      ]);
    }
    out.push(table.toString(), '');
  }
  const skippedGroups = result.actions.filter((a) => a.skippedGroups.length);
  if (skippedGroups.length) {
    const shown = skippedGroups.reduce((n, a) => n + a.skippedGroups.length, 0);
    const of = t.skipped > shown ? ` (${shown} of ${t.skipped})` : '';
    out.push(c.bold(`Skipped groups${of}, left as they were:`));
    for (const a of skippedGroups)
      for (const g of a.skippedGroups)
        out.push(`  ${a.rule.table.id} (${g.key.map(show).join(', ')}): ${g.ids.map(show).join(', ')} — ${g.reason}`);
    out.push('');
  }
  if (view.missingIndexes.length) {
    const batches = Math.max(1, ...result.actions.map((a) => Math.ceil(a.groups / view.batchSize)));
    const columns = plural(view.missingIndexes.length, 'referencing column');
    const have = view.missingIndexes.length === 1 ? 'has' : 'have';
    out.push(
      c.bold(c.yellow(`Before you apply: ${columns} ${have} no index, so every batch scans the whole child table.`)),
    );
    out.push('Create these first (CONCURRENTLY: no write lock; outside a transaction):');
    for (const m of view.missingIndexes) {
      const each = m.scanSeconds < 1 ? '<1 s' : `~${Math.round(m.scanSeconds)} s`;
      const cost = `${each} per scan × ${batches} batch${batches === 1 ? '' : 'es'} without it`;
      out.push(`  ${m.ddl};   -- ${m.child}(${m.columns.join(', ')}), ${m.via}: ${cost}`);
    }
    out.push('');
  }
  const samples = result.actions.filter((a) => a.samples.length);
  if (samples.length) {
    out.push(c.bold('Sample groups (survivor ← rows merged into it):'));
    for (const a of samples) {
      for (const s of a.samples) {
        const key = s.key.map(show).join(', ');
        out.push(`  ${a.rule.table.id} (${key}): keep ${show(s.survivor)} ← ${s.losers.map(show).join(', ')}`);
      }
    }
    out.push('');
  }
  const notes = result.actions.flatMap((a) => a.notes.map((note) => `  ${describeRule(a.rule)}: ${note}`));
  if (notes.length) out.push(c.bold('Notes:'), ...notes, '');
  if (view.unrepaired.length) {
    const count = view.unrepaired.length;
    out.push(
      c.bold(`Not repaired — discovered, not declared (${count}). To repair one, add its rule to rowdoctor.yml:`),
    );
    for (const f of view.unrepaired) {
      const origin = f.origin ? ` (${f.origin})` : '';
      out.push(
        `  ${f.check} ${describeRule(f.rule)}: ${plural(f.rows, 'row')} in ${plural(f.groups, 'group')}${origin}`,
      );
      out.push(
        toYaml([ruleToConfig(f.rule)])
          .trimEnd()
          .split('\n')
          .map((l) => `      ${l}`)
          .join('\n'),
      );
    }
    out.push('');
  }
  if (!result.applied && result.actions.some((a) => a.groups > 0))
    out.push(
      'Next: rowdoctor repair --apply (every changed row is backed up first; rowdoctor undo <run-id> restores them).',
    );
  if (result.applied)
    out.push(
      `Backed-up rows are in schema rowdoctor_backup under run ${result.runId}: ` +
        `rowdoctor undo ${result.runId} restores them.`,
    );
  if (view.nextSteps.length) {
    out.push(
      '',
      c.bold(
        'Next step, once repaired — the constraints that keep this from coming back ' +
          '(rowdoctor verify-constraints --emit-migration <file> writes them):',
      ),
    );
    for (const v of view.nextSteps)
      out.push(
        `-- ${v.table}(${v.columns.join(', ')})${v.references ? ` -> ${v.references}` : ''}: ${v.status}`,
        ...v.ddl.map((d) => `${d};`),
      );
  }
  if (result.interrupted)
    out.push(
      c.red('Interrupted: the batch in progress was finished or rolled back. Run the same command again to finish.'),
    );
  if (view.sqlText && result.statements.length)
    out.push(
      '',
      c.bold('Statements (as run for the first batch; parameters shown as $n):'),
      ...result.statements.map((s) => `${s};`),
    );
  return out.join('\n').trimEnd() + '\n';
}

export function totals(result: RepairResult) {
  return result.actions.reduce(
    (t, a) => ({
      groups: t.groups + a.groups,
      rowsDeleted: t.rowsDeleted + a.rowsDeleted,
      rowsUpdated: t.rowsUpdated + a.rowsUpdated,
      childRowsRepointed: t.childRowsRepointed + a.childRowsRepointed,
      childRowsMerged: t.childRowsMerged + a.childRowsMerged,
      skipped: t.skipped + a.skipped,
    }),
    { groups: 0, rowsDeleted: 0, rowsUpdated: 0, childRowsRepointed: 0, childRowsMerged: 0, skipped: 0 },
  );
}
