import Table from 'cli-table3';
import type { ChalkInstance } from 'chalk';
import type { LoadedPlan, PlanGroup } from '../plan/file.js';
import { plural, show } from './style.js';

/** Ids as one short phrase: `7, 9, 12, … +40`. */
function ids(list: unknown[], max = 8): string {
  const shown = list.slice(0, max).map(show).join(', ');
  return list.length > max ? `${shown}, … +${(list.length - max).toLocaleString('en-US')}` : shown;
}

/** What moves in one group: per reference, how many children and which. */
function moves(g: PlanGroup): string[] {
  return g.children.map((c) => `${c.reference}: ${plural(c.ids.length, 'row')} (${ids(c.ids)})`);
}

/** What happens to the group's own rows, by the rule's action. */
function goes(g: PlanGroup): string {
  const parts: string[] = [];
  if (g.delete.length) parts.push(`deletes ${ids(g.delete)}`);
  const updated = g.update.filter((u) => !g.delete.includes(u));
  if (updated.length) parts.push(`updates ${ids(updated)}`);
  return parts.join(', ');
}

function header(loaded: LoadedPlan): string[] {
  const p = loaded.plan;
  const s = p.summary;
  return [
    `rowdoctor plan · ${loaded.file} · md5 ${loaded.md5}`,
    `made ${p.createdAt} on database ${p.database.name} (system identifier ${p.database.systemIdentifier})`,
    `${plural(p.rules.length, 'rule')} · ${plural(s.groups, 'group')} · deletes ${plural(s.rowsDeleted, 'row')}, ` +
      `updates ${plural(s.rowsUpdated, 'row')}, re-points ${plural(s.childRowsRepointed, 'child row')}, ` +
      `merges ${plural(s.childRowsMerged, 'child row')}`,
  ];
}

/** `plan show`: per rule the counts, then per group what stays, what goes and what moves. */
export function renderPlanText(loaded: LoadedPlan, c: ChalkInstance): string {
  const p = loaded.plan;
  const out = [...header(loaded), ''];
  const table = new Table({
    head: ['rule', 'action', 'groups', 'rows deleted', 'rows updated', 'child rows re-pointed', 'child rows merged'],
    style: { head: [], border: c.level ? undefined : [] },
  });
  const n = (v: number) => ({ content: v.toLocaleString('en-US'), hAlign: 'right' as const });
  p.rules.forEach((r, i) => {
    const a = p.summary.actions[i];
    table.push([
      `${r.check}\n${r.rule}`,
      r.repair,
      n(a?.groups ?? 0),
      n(a?.rowsDeleted ?? 0),
      n(a?.rowsUpdated ?? 0),
      n(a?.childRowsRepointed ?? 0),
      n(a?.childRowsMerged ?? 0),
    ]);
  });
  out.push(table.toString(), '');
  p.rules.forEach((r, i) => {
    const groups = p.groups.filter((g) => g.rule === i);
    if (!groups.length) return;
    out.push(c.bold(`${r.rule} (${r.repair}): ${plural(groups.length, 'group')}`));
    for (const g of groups) {
      out.push(`  (${g.key.map(show).join(', ')}) keeps ${show(g.survivor)}, ${goes(g)}`);
      for (const m of moves(g)) out.push(`      re-points ${m}`);
    }
    out.push('');
  });
  out.push(
    `Apply exactly this plan: rowdoctor repair --apply --plan ${loaded.file} (with the config and flags it was ` +
      'made with); a group whose rows changed since is skipped ("changed since the plan").',
  );
  return out.join('\n') + '\n';
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The same for a change ticket or a pull request. */
export function renderPlanMarkdown(loaded: LoadedPlan): string {
  const p = loaded.plan;
  const [title, made, counts] = header(loaded);
  const out = [`# ${cell(title!)}`, '', `${cell(made!)}`, '', `**${cell(counts!)}**`, ''];
  out.push(
    '| rule | action | groups | rows deleted | rows updated | child rows re-pointed | child rows merged |',
    '|---|---|--:|--:|--:|--:|--:|',
  );
  p.rules.forEach((r, i) => {
    const a = p.summary.actions[i];
    const nums = [a?.groups, a?.rowsDeleted, a?.rowsUpdated, a?.childRowsRepointed, a?.childRowsMerged];
    out.push(
      `| \`${cell(r.rule)}\` | ${r.repair} | ${nums.map((v) => (v ?? 0).toLocaleString('en-US')).join(' | ')} |`,
    );
  });
  out.push('');
  p.rules.forEach((r, i) => {
    const groups = p.groups.filter((g) => g.rule === i);
    if (!groups.length) return;
    out.push(`## \`${cell(r.rule)}\` (${r.repair})`, '', '| key | stays | goes | moves |', '|---|---|---|---|');
    for (const g of groups) {
      const row = [g.key.map(show).join(', '), show(g.survivor), goes(g), moves(g).join('; ') || '—'];
      out.push(`| ${row.map(cell).join(' | ')} |`);
    }
    out.push('');
  });
  return out.join('\n');
}
