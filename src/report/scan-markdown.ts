import type { Finding } from '../checks/types.js';
import { describeRule } from '../rules/types.js';
import type { ScanView } from './scan-text.js';
import { sampleLine } from './style.js';
import { diagnosisLines } from './diagnosis-text.js';

/** GitHub-flavoured markdown, for pasting into an incident doc or a PR comment. */
export function renderScanMarkdown(view: ScanView): string {
  const rows = view.findings.reduce((n, f) => n + f.rows, 0);
  const findings = `${view.findings.length} finding${view.findings.length === 1 ? '' : 's'}`;
  const out = [
    `### rowdoctor scan — \`${view.database}\``,
    '',
    view.findings.length
      ? `**${findings}**, ${rows.toLocaleString('en-US')} rows affected, ${view.checks} checks run.`
      : `**No findings** (${view.checks} checks run).`,
    '',
  ];
  for (const f of view.findings.filter((x) => x.error)) {
    const hint = f.error!.hint ? ` — ${f.error!.hint}` : '';
    out.push(`- **Could not check** ${code(describeRule(f.rule))}: ${f.error!.message}${hint}`);
  }
  if (view.findings.length) {
    out.push('| check | table | key / reference | scope | groups | rows | severity | source | sample |');
    out.push('|---|---|---|---|--:|--:|---|---|---|');
    for (const f of view.findings.filter((x) => !x.error)) {
      out.push(
        `| ${[
          f.check,
          code(f.table),
          keyCell(f),
          f.where ? code(f.where) : '',
          f.groups.toLocaleString('en-US'),
          f.rows.toLocaleString('en-US'),
          f.severity,
          f.origin ? `${f.source}: ${f.origin}` : f.source,
          f.samples
            .slice(0, 3)
            .map((s) => code(sampleLine(s.key, s.ids)))
            .join('<br>'),
        ]
          .map(cell)
          .join(' | ')} |`,
      );
    }
    out.push('');
  }
  out.push(...diagnosisSection(view));
  const inferred = view.rules.filter((r) => r.check === 'orphaned-rows' && r.inferred);
  if (inferred.length) {
    out.push('Inferred references (warnings):', '');
    for (const r of inferred) out.push(`- \`${describeRule(r)}\``);
    out.push('');
  }
  const assumptions = view.assumptions ?? [];
  if (assumptions.length) {
    out.push('Assumed from names, weighed against the data:', '');
    for (const a of assumptions) out.push(`- ${a.kind}: \`${a.table}.${a.column}\` — ${a.evidence}`);
    out.push('');
  }
  return out.join('\n');
}

/** The text output's diagnosis lines, and --show-rows groups as tables (differing columns marked). */
function diagnosisSection(view: ScanView): string[] {
  const today = view.today ?? new Date().toISOString().slice(0, 10);
  const out: string[] = [];
  for (const f of view.findings.filter((x) => !x.error)) {
    const lines = diagnosisLines(f, view.recentMs ?? 86_400_000, today);
    if (!lines) continue;
    out.push(`- ${code(describeRule(f.rule))}: ${lines[0]!}${lines[1] ? `<br>\`${lines[1]}\`` : ''}`);
    for (const s of f.samples.filter((x) => x.rows?.length)) {
      const columns = Object.keys(s.rows![0]!);
      const marked = new Set(s.differingColumns ?? []);
      out.push('', `  ${code(sampleLine(s.key, s.ids))}`, '');
      out.push(`  | ${columns.map((c) => cell(marked.has(c) ? `**${c}** *` : c)).join(' | ')} |`);
      out.push(`  |${columns.map(() => '---').join('|')}|`);
      for (const r of s.rows!) out.push(`  | ${columns.map((c) => cell(r[c] ?? 'NULL')).join(' | ')} |`);
    }
  }
  return out.length ? ['**Diagnosis** (times in UTC):', '', ...out, ''] : [];
}

function keyCell(f: Finding): string {
  if (f.check !== 'orphaned-rows') return code(f.key.join(', '));
  const parents = `(missing ${f.missingParent}, deleted ${f.deletedParent})`;
  return `${code(f.columns!.join(', '))} → ${code(f.references!)} ${parents}`;
}

function code(s: string): string {
  return `\`${s.replace(/`/g, "'")}\``;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, '<br>');
}
