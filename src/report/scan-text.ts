import Table from 'cli-table3';
import type { ChalkInstance } from 'chalk';
import type { Finding } from '../checks/types.js';
import type { Assumption } from '../catalog/types.js';
import { describeRule, type CheckId, type Rule } from '../rules/types.js';
import { breakLongWords, plural, sampleLine } from './style.js';
import { diagnosisLines, sampleRowLines } from './diagnosis-text.js';

/** The sample column's width: key → ids lines wrap inside it. */
const SAMPLE_WIDTH = 26;

export interface ScanView {
  database: string;
  findings: Finding[];
  checks: number;
  rules: Rule[];
  /** Name-based guesses and the data's verdict on each (catalog.assumptions). */
  assumptions?: Assumption[];
  /** The diagnosis's --recent window (ms) and the UTC date of the scan, for its lines and sparkline. */
  recentMs?: number;
  today?: string;
}

const TITLES: Record<CheckId, string> = {
  'duplicate-rows': 'duplicate-rows — rows sharing a key that should be unique',
  'orphaned-rows': 'orphaned-rows — rows pointing at a parent that is gone or soft-deleted',
  'soft-delete-conflicts': 'soft-delete-conflicts — soft-deleted rows that block or collide with a key',
};

/** Summary line, one table per check, inferred references, next step. Paste-able into an incident channel. */
export function renderScanText(view: ScanView, c: ChalkInstance): string {
  const assumptions = view.assumptions ?? [];
  const out: string[] = [summaryLine(view, c), ...markerLines(assumptions, c), ''];
  for (const check of Object.keys(TITLES) as CheckId[]) {
    const fs = view.findings.filter((f) => f.check === check && !f.error);
    if (!fs.length) continue;
    out.push(c.bold(TITLES[check]));
    out.push(findingTable(check, fs, c), '');
    out.push(...diagnosisBlock(fs, view, c));
  }
  const failed = view.findings.filter((f) => f.error);
  if (failed.length) {
    out.push(c.bold(c.red(`Could not check (${failed.length}); every other rule was checked:`)));
    for (const f of failed) {
      out.push(`  ${describeRule(f.rule)}: ${f.error!.message}`);
      if (f.error!.hint) out.push(`    ${c.dim(f.error!.hint)}`);
    }
    out.push('');
  }
  const inferred = view.rules.filter((r) => r.check === 'orphaned-rows' && r.inferred);
  if (inferred.length) {
    out.push(c.bold(`Inferred references (${inferred.length}, checked as warnings; no foreign key enforces them):`));
    for (const rule of inferred) {
      const f = view.findings.find((x) => x.rule === rule);
      out.push(`  ${describeRule(rule)}  ${f ? c.yellow(`${plural(f.rows, 'orphan')}`) : c.green('ok')}`);
      if (rule.origin) out.push(`    ${c.dim(rule.origin)}`);
    }
    out.push('');
  }
  const rejected = assumptions.filter((a) => a.kind === 'not-a-reference');
  for (const a of rejected) out.push(c.dim(`not a reference: ${a.table}.${a.column} — ${a.evidence}`));
  if (rejected.length) out.push('');
  const errors = view.findings.filter((f) => f.severity === 'error' && !f.error);
  if (errors.length) {
    const repairable = errors.some((f) => f.source !== 'discovered');
    out.push(
      repairable
        ? 'Next: rowdoctor repair (a dry run: shows exactly what would change), then rowdoctor repair --apply.'
        : 'Next: declare the rules you want repaired in rowdoctor.yml (rowdoctor init writes a starter), ' +
            'then rowdoctor repair.',
    );
  }
  return out.join('\n').trimEnd() + '\n';
}

/** Per diagnosed finding: its line and sparkline (or what would enable them), then --show-rows groups. */
function diagnosisBlock(findings: Finding[], view: ScanView, c: ChalkInstance): string[] {
  const out: string[] = [];
  for (const f of findings) {
    const lines = diagnosisLines(f, view.recentMs ?? 86_400_000, view.today ?? new Date().toISOString().slice(0, 10));
    const shown = f.samples.filter((s) => s.rows?.length);
    if (!lines && !shown.length) continue;
    out.push(c.bold(describeRule(f.rule)));
    for (const line of lines ?? []) out.push(`  ${f.diagnosis ? line : c.dim(line)}`);
    for (const s of shown) {
      out.push(
        `  ${sampleLine(s.key, s.ids)}${s.differingColumns?.length ? c.dim('  (* differs between copies)') : ''}`,
      );
      for (const line of sampleRowLines(s)) out.push(`    ${line}`);
    }
    out.push('');
  }
  return out;
}

/** Soft-delete markers taken from a name, and those the data ruled out: one line each, under the summary. */
export function markerLines(assumptions: Assumption[], c: ChalkInstance): string[] {
  return assumptions.flatMap((a) => {
    if (a.kind === 'soft-delete-marker')
      return [c.dim(`assumed: ${a.table}.${a.column} marks soft-deleted rows (${a.evidence})`)];
    if (a.kind === 'not-a-soft-delete-marker')
      return [c.dim(`not a soft-delete marker: ${a.table}.${a.column} — ${a.evidence}`)];
    return [];
  });
}

/** Every assumption, one quiet line each: markers, then references (taken with their evidence, or not). */
export function assumptionLines(assumptions: Assumption[], c: ChalkInstance): string[] {
  const references = assumptions.flatMap((a) => {
    if (a.kind === 'inferred-reference')
      return [c.dim(`assumed: ${a.table}.${a.column} is a reference (${a.evidence})`)];
    if (a.kind === 'polymorphic-reference') return [c.dim(`assumed: ${a.table}: ${a.evidence}`)];
    if (a.kind === 'not-a-reference') return [c.dim(`not a reference: ${a.table}.${a.column} — ${a.evidence}`)];
    return [];
  });
  return [...markerLines(assumptions, c), ...references];
}

function summaryLine(view: ScanView, c: ChalkInstance): string {
  const found = view.findings.filter((f) => !f.error);
  const failed = view.findings.length - found.length;
  const errors = found.filter((f) => f.severity === 'error').length;
  const warnings = found.length - errors;
  const rows = found.reduce((n, f) => n + f.rows, 0);
  const couldNot = failed ? ` · ${c.red(`${failed} could not run`)}` : '';
  const head = `rowdoctor scan · ${view.database} · ${plural(view.checks, 'check')} run${couldNot}`;
  if (!found.length) return `${head} · ${c.green('no findings')}`;
  const what = [errors ? c.red(plural(errors, 'error')) : null, warnings ? c.yellow(plural(warnings, 'warning')) : null]
    .filter(Boolean)
    .join(', ');
  return `${head} · ${plural(found.length, 'finding')} (${what}) · ${plural(rows, 'row')} affected`;
}

function findingTable(check: CheckId, findings: Finding[], c: ChalkInstance): string {
  // Severity leads the source cell: one column fewer keeps the table narrow enough to paste.
  const source = (f: Finding) =>
    `${f.severity === 'error' ? c.red('error') : c.yellow('warning')} · ${f.source}${f.origin ? `\n${f.origin}` : ''}`;
  const samples = (f: Finding) =>
    breakLongWords(f.samples.map((s) => sampleLine(s.key, s.ids)).join('\n'), SAMPLE_WIDTH - 2);
  const style = { head: [], border: c.level ? undefined : [] };
  const widths = (n: number) => [...Array<null>(n).fill(null), 26, SAMPLE_WIDTH] as unknown as number[];
  if (check === 'orphaned-rows') {
    const t = new Table({
      head: [
        'table(columns) → references',
        'missing parent',
        'deleted parent',
        'rows',
        'groups',
        'severity · source',
        'sample (key → ids)',
      ],
      style,
      wordWrap: true,
      colWidths: widths(5),
    });
    for (const f of findings) {
      t.push([
        `${f.table}(${f.polymorphic ? `${f.polymorphic.typeColumn} = '${f.polymorphic.type}', ` : ''}` +
          `${f.columns!.join(', ')})\n→ ${f.references!}`,
        num(f.missingParent!),
        num(f.deletedParent!),
        num(f.rows),
        num(f.groups),
        source(f),
        samples(f),
      ]);
    }
    return t.toString();
  }
  const t = new Table({
    head: ['table', 'key', 'scope', 'groups', 'rows', 'severity · source', 'sample (key → ids)'],
    style,
    wordWrap: true,
    colWidths: widths(5),
  });
  for (const f of findings)
    t.push([f.table, f.key.join(',\n'), f.where ?? '—', num(f.groups), num(f.rows), source(f), samples(f)]);
  return t.toString();
}

function num(n: number): { content: string; hAlign: 'right' } {
  return { content: n.toLocaleString('en-US'), hAlign: 'right' };
}
