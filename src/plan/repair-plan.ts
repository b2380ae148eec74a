import type { Catalog } from '../catalog/types.js';
import type { Db } from '../db.js';
import { RowdoctorError } from '../errors.js';
import { actionCounts, type RepairResult } from '../repair/actions.js';
import { tablesTouched } from '../repair/references.js';
import { describeRule, type Rule } from '../rules/types.js';
import { writePlanText, type LoadedPlan, type Plan } from './file.js';
import { PlanGuard } from './guard.js';
import { planRule, PlanRecorder } from './record.js';
import { databaseIdentity, refuseStalePlan, schemaFingerprint } from './shape.js';

/** What a repair needs to know about the rules it runs, to plan or apply a plan. */
export interface PlanScope {
  catalog: Catalog;
  rules: Rule[];
  declared: Rule[];
  infer: boolean;
}

/** `--plan-out` covers what a dry run plans group by group with survivors: duplicate-rows rules. */
export function startPlanOut(rules: Rule[]): PlanRecorder {
  const other = rules.filter((r) => r.check !== 'duplicate-rows');
  if (other.length)
    throw new RowdoctorError(
      `--plan-out covers duplicate-rows rules; this repair also runs ${other
        .map((r) => `${r.check} ${describeRule(r)}`)
        .join(', ')}.`,
      { hint: 'Plan those rules apart: --only duplicate-rows, or a config with the duplicate-rows rules alone.' },
    );
  return new PlanRecorder(rules);
}

/** Build the plan from a dry run's recorded groups and counts, and write it; returns its md5 and size. */
export async function finishPlanOut(
  db: Db,
  file: string,
  recorder: PlanRecorder,
  scope: PlanScope,
  result: RepairResult,
): Promise<{ md5: string; groups: number }> {
  const actions = result.actions.map((a) => ({ check: a.rule.check, table: a.rule.table.id, ...actionCounts(a) }));
  const sum = (k: keyof ReturnType<typeof actionCounts>) => actions.reduce((n, a) => n + a[k], 0);
  const plan: Omit<Plan, 'groups'> = {
    tool: 'rowdoctor',
    schemaVersion: 1,
    kind: 'rowdoctor-plan',
    database: await databaseIdentity(db),
    createdAt: new Date().toISOString(),
    schemaFingerprint: schemaFingerprint(scope.catalog, touched(scope)),
    rules: scope.rules.map(planRule),
    summary: {
      groups: sum('groups'),
      rowsDeleted: sum('rowsDeleted'),
      rowsUpdated: sum('rowsUpdated'),
      childRowsRepointed: sum('childRowsRepointed'),
      childRowsMerged: sum('childRowsMerged'),
      redirected: sum('redirected'),
      skipped: sum('skipped'),
      actions,
    },
  };
  return { md5: await writePlanText(file, plan, recorder.groups), groups: recorder.groups.length };
}

/**
 * `--plan <file>`: refuse (exit 2, before anything runs) a plan made on another database, for other
 * rules, or whose tables changed shape; otherwise the guard that applies it group by group.
 */
export async function startPlanApply(db: Db, loaded: LoadedPlan, scope: PlanScope): Promise<PlanGuard> {
  const { plan, file } = loaded;
  const planned = plan.rules.map((r) => r.rule);
  const here = scope.rules.map(describeRule);
  if (planned.join('\n') !== here.join('\n'))
    throw new RowdoctorError(
      `Refusing to apply the plan ${file}; nothing was changed: it was made for the rules ` +
        `${planned.join(', ') || '(none)'}, this command repairs ${here.join(', ') || '(none)'}.`,
      { hint: 'Run it with the config and flags the plan was made with (rowdoctor plan show lists its rules).' },
    );
  refuseStalePlan(plan, file, await databaseIdentity(db), scope.catalog, touched(scope));
  return new PlanGuard(plan, scope.catalog, scope.declared, scope.infer, loaded.md5);
}

function touched(scope: PlanScope) {
  return tablesTouched(scope.catalog, scope.rules, scope.declared, scope.infer);
}
