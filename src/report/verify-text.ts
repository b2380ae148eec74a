import Table from 'cli-table3';
import type { ChalkInstance } from 'chalk';
import type { Assumption } from '../catalog/types.js';
import type { Verdict } from '../verify/types.js';
import { assumptionLines } from './scan-text.js';
import { statementLines, type MigrationOptions } from '../verify/migration.js';

export function verifySummary(
  verdicts: Verdict[],
): Record<'ok' | 'missing' | 'invalid' | 'mismatch' | 'unenforceable', number> {
  const s = { ok: 0, missing: 0, invalid: 0, mismatch: 0, unenforceable: 0 };
  for (const v of verdicts) s[v.status]++;
  return s;
}

/** Summary line, one row per constraint, then the migration that adds what is missing. */
export function renderVerifyText(
  verdicts: Verdict[],
  database: string,
  c: ChalkInstance,
  migration: MigrationOptions = {},
  assumptions: Assumption[] = [],
): string {
  const s = verifySummary(verdicts);
  const colour = { ok: c.green, missing: c.red, invalid: c.red, mismatch: c.yellow, unenforceable: c.yellow };
  const checked = `${verdicts.length} constraint${verdicts.length === 1 ? '' : 's'} checked`;
  const head = `rowdoctor verify-constraints · ${database} · ${checked}`;
  const counts = (Object.keys(s) as (keyof typeof s)[])
    .filter((k) => s[k])
    .map((k) => colour[k](`${s[k]} ${k}`))
    .join(', ');
  const out = [`${head} · ${counts || 'nothing expected'}`, ...assumptionLines(assumptions, c), ''];
  if (verdicts.length) {
    const t = new Table({
      head: ['kind', 'constraint', 'status', 'violations', 'detail'],
      style: { head: [], border: c.level ? undefined : [] },
      wordWrap: true,
      colWidths: [null, 44, null, null, 60] as unknown as number[],
    });
    for (const v of verdicts) {
      const references = v.references ? `\n→ ${v.references}` : '';
      const where = v.where ? `\nWHERE ${v.where}` : '';
      const what = `${v.table}(${v.columns.join(', ')})${references}${where}`;
      t.push([
        v.kind,
        what,
        colour[v.status](v.status),
        { content: v.violations === null ? '—' : v.violations.toLocaleString('en-US'), hAlign: 'right' },
        v.detail,
      ]);
    }
    out.push(t.toString(), '');
  }
  const ddl = verdicts.filter((v) => v.ddl.length);
  if (ddl.length) {
    out.push(c.bold('Lock-safe migration (run statement by statement; --emit-migration <file> writes it):'));
    for (const v of ddl) {
      const held = v.violations ? ` — ${v.violations} violating row(s), so commented out: ${v.fix}` : '';
      out.push(`-- ${v.table}(${v.columns.join(', ')})${held}`);
      if (v.source === 'inferred' && !migration.includeInferred)
        out.push('-- inferred, not declared: commented out for review (--include-inferred writes it to run)');
      out.push(...statementLines(v, migration));
    }
  }
  return out.join('\n').trimEnd() + '\n';
}
