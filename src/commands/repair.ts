import { readOnly } from '../db.js';
import { RowdoctorError } from '../errors.js';
import { findingJson, scanDocument } from '../report/document.js';
import { createProgress, type Progress } from '../report/progress.js';
import { repairerFor } from '../checks/index.js';
import type { Finding } from '../checks/types.js';
import { renderRepairText, totals } from '../report/repair-text.js';
import { makeStyle } from '../report/style.js';
import { checkPrivileges } from '../repair/privileges.js';
import { actionCounts, type RepairResult } from '../repair/actions.js';
import { repairRules } from '../repair/run.js';
import type { Rule } from '../rules/types.js';
import type { Table } from '../catalog/types.js';
import { scan } from '../scan.js';
import { connect, prepare, snapshot } from './context.js';
import { verifyConstraints } from '../verify/verify.js';
import { missingSupportingIndexes } from '../repair/indexes.js';
import { refuseOnStandby } from './primary-only.js';
import { printWarnings, refuseRowSecurity } from '../catalog/row-security.js';
import { tablesTouched } from '../repair/references.js';
import { parseFormat, parsePositiveInt, type CommonOptions } from './options.js';
import { parseBatchFlags, stopOnCtrlC, type BatchFlags } from './batching.js';
import { readPlan } from '../plan/file.js';
import { PlanRecorder } from '../plan/record.js';
import { finishPlanOut, startPlanApply, startPlanOut } from '../plan/repair-plan.js';

export interface RepairCommandOptions extends CommonOptions, BatchFlags {
  apply?: boolean;
  sql?: boolean;
  backup: boolean;
  infer: boolean;
  /** Dry run: also write the plan here (contract §"Reviewed plans"). */
  planOut?: string;
  /** Act on this reviewed plan's groups only. */
  plan?: string;
}

/** rowdoctor repair: plan (dry run, the default) or perform the repair of declared rules. */
export async function repairCommand(opts: RepairCommandOptions, out: (s: string) => void): Promise<number> {
  const format = parseFormat(opts.format, ['text', 'json'] as const);
  const { batchSize, maxTransactionMs, lockTimeoutMs, maxReplicaLagMs } = parseBatchFlags(opts);
  const sample = parsePositiveInt(opts.sample, '--sample');
  if (opts.planOut && (opts.apply || opts.plan))
    throw new RowdoctorError('--plan-out writes the plan of a dry run: it does not go with --apply or --plan.', {
      hint: 'First repair --plan-out <file>; after review, repair --apply --plan <file>.',
    });
  // The plan is read (and its shape checked) before the network.
  const reviewed = opts.plan ? await readPlan(opts.plan) : null;
  const { loaded, statementTimeoutMs } = await prepare(opts);
  const progress = createProgress(process.stderr.isTTY === true);
  const conn = await connect(opts);
  const ctrlC = stopOnCtrlC();
  try {
    await refuseOnStandby(conn.db, 'repair', conn.target.display);
    // What each rule finds is reported before anything changes. A rule's enumeration of its groups
    // is that answer already, so the first rule is not scanned first (a full pass saved); later
    // ones run after writes (in a dry run, to the copies of the tables), so they are scanned first.
    const { snap, toRepair, scanned, derived } = await readOnly(conn.db, statementTimeoutMs, async (tx) => {
      const snap = await snapshot(tx, opts, loaded, { weighReferences: opts.infer ? 'reach' : undefined });
      const toRepair = snap.rules.filter((r) => r.source !== 'discovered' && r.repair !== 'report');
      const declaredRules = snap.rules.filter((r) => r.source !== 'discovered');
      await refuseRowSecurity(tx, tablesTouched(snap.catalog, toRepair, declaredRules, opts.infer), 'repair');
      const derived = new Set(toRepair.filter((r, i) => repairerFor(r).finding && i === 0));
      return {
        snap,
        toRepair,
        derived,
        scanned: (
          await scan(
            tx,
            snap.rules.filter((r) => !derived.has(r)),
            { sample, progress },
          )
        ).findings,
      };
    });
    const declared = snap.rules.filter((r) => r.source !== 'discovered');
    checkRepairable(toRepair);
    // What discovery would not guess (a type value that names no table: its rows are left alone), as scan says it.
    printWarnings(snap.catalog.warnings);
    const planScope = { catalog: snap.catalog, rules: toRepair, declared, infer: opts.infer };
    const planHooks = opts.planOut
      ? startPlanOut(toRepair)
      : reviewed
        ? await startPlanApply(conn.db, reviewed, planScope)
        : undefined;
    if (!opts.backup && opts.apply)
      process.stderr.write(
        'rowdoctor: WARNING --no-backup: changed rows are NOT copied to rowdoctor_backup, ' +
          'and this run cannot be undone.\n',
      );
    const result: RepairResult = await conn.db.connection().execute(async (session) => {
      if (opts.apply)
        await checkPrivileges(session, snap.catalog, toRepair, declared, { backup: opts.backup, infer: opts.infer });
      return repairRules(session, snap.catalog, toRepair, declared, {
        apply: opts.apply === true,
        backup: opts.backup,
        batchSize,
        lockTimeoutMs,
        maxReplicaLagMs,
        maxTransactionMs,
        statementTimeoutMs,
        infer: opts.infer,
        sample,
        progress,
        interrupted: ctrlC.interrupted,
        findingsFor: derived,
        reconnect: conn.db,
        plan: planHooks,
      });
    });
    if (opts.planOut && result.interrupted)
      progress.note(`no plan written to ${opts.planOut}: the dry run was interrupted before its last group`);
    else if (opts.planOut && planHooks instanceof PlanRecorder) {
      const written = await finishPlanOut(conn.db, opts.planOut, planHooks, planScope, result);
      progress.note(`plan written to ${opts.planOut}: ${written.groups} groups, md5 ${written.md5}`);
      progress.note(
        `Next: review it (rowdoctor plan show ${opts.planOut}), then apply exactly it: ` +
          `rowdoctor repair --apply --plan ${opts.planOut}, with the same config and flags.`,
      );
    }
    const findings = await reportedFindings(conn, snap.rules, scanned, derived, result, {
      sample,
      progress,
      statementTimeoutMs,
    });
    const unrepaired = findings.filter((f) => f.source === 'discovered');
    if (format === 'json') {
      const doc = {
        ...scanDocument(
          'repair',
          conn.target.display,
          findings,
          snap.rules.length,
          snap.catalog.assumptions,
          snap.catalog.warnings,
        ),
        runId: result.runId,
        applied: result.applied,
        // The dry run's footprint, the rows it copied to plan on (null with --apply).
        plannedRows: result.plannedRows ?? null,
        actions: result.actions.map((a) => ({
          check: a.rule.check,
          table: a.rule.table.id,
          ...actionCounts(a),
          skippedGroups: a.skippedGroups,
        })),
      };
      doc.findings = findings.map(findingJson);
      out(JSON.stringify(doc, null, 2) + '\n');
    } else {
      // The constraints that keep this damage from coming back: the same DDL as --emit-migration.
      const nextSteps = (
        await verifyConstraints(conn.db, snap.catalog, declared, {
          expect: [],
          expectFk: [],
          discover: false,
          lockTimeout: opts.lockTimeout,
          statementTimeoutMs,
          countViolations: false,
        })
      ).filter((v) => v.ddl.length);
      const missingIndexes = missingSupportingIndexes(conn.db, snap.catalog, toRepair, declared, opts.infer);
      out(
        renderRepairText(
          {
            database: conn.target.display,
            result,
            unrepaired,
            sqlText: opts.sql === true,
            nextSteps,
            missingIndexes,
            batchSize,
          },
          makeStyle(opts.color),
        ),
      );
    }
    const t = totals(result);
    if (findings.some((f) => f.error)) return 2;
    if (result.interrupted || t.skipped > 0) return 1;
    // A dry run that would change something leaves work to do: exit 1, like a scan with findings.
    if (!result.applied && t.groups > 0) return 1;
    return 0;
  } finally {
    ctrlC.release();
    await conn.close();
  }
}

/**
 * Every rule's finding in rule order: scanned first, or from the repair's enumeration (scanned now
 * if interrupted before it).
 */
async function reportedFindings(
  conn: Awaited<ReturnType<typeof connect>>,
  rules: Rule[],
  scanned: Finding[],
  derived: ReadonlySet<Rule>,
  result: RepairResult,
  options: { sample: number; progress: Progress; statementTimeoutMs: number },
): Promise<Finding[]> {
  const found = new Map<Rule, Finding | null>(scanned.map((f) => [f.rule, f]));
  for (const a of result.actions) if (a.finding !== undefined) found.set(a.rule, a.finding);
  const missed = [...derived].filter((r) => !found.has(r));
  if (missed.length) {
    const late = await readOnly(conn.db, options.statementTimeoutMs, (tx) => scan(tx, missed, options));
    for (const r of missed) found.set(r, late.findings.find((f) => f.rule === r) ?? null);
  }
  return rules.map((r) => found.get(r)).filter((f): f is Finding => !!f);
}

/** Repairs that cannot work on this schema are refused before anything runs. */
function checkRepairable(rules: Rule[]): void {
  const problems: string[] = [];
  for (const r of rules) {
    if (!r.table.primaryKey)
      problems.push(`${r.table.id} has no primary key; repair needs one to tell rows apart (use repair: report)`);
    if (r.check === 'orphaned-rows' && r.repair === 'set-null') {
      const notNull = r.columns.filter((c) => r.table.columns.find((x) => x.name === c)?.notNull);
      if (notNull.length)
        problems.push(
          `${r.table.id}(${notNull.join(', ')}) is NOT NULL, so set-null is impossible (use delete or soft-delete)`,
        );
    }
    if (r.repair === 'soft-delete' && !r.table.softDelete)
      problems.push(`${r.table.id} has no soft-delete marker column, so repair: soft-delete is impossible`);
    for (const c of withoutEquals(r))
      problems.push(
        `${c.table}(${c.column}) is of type ${c.type}, a domain over the enum ${c.base}: PostgreSQL has no = for it ` +
          `(nor can a foreign key use it), so rows cannot be matched to re-point or delete them ` +
          `(ALTER the column to TYPE ${c.base}, or use repair: report)`,
      );
  }
  if (problems.length)
    throw new RowdoctorError(`Cannot repair as configured:\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

/**
 * The columns a repair of `r` matches rows on with `=` — its key or reference, the parent's columns,
 * the primary key — whose type the server has no `=` for (a domain over an enum: Equality.operand).
 */
function withoutEquals(r: Rule): { table: string; column: string; type: string; base: string }[] {
  const lacking = (table: Table, names: string[]) =>
    names.flatMap((name) => {
      const c = table.columns.find((x) => x.name === name);
      return c?.equality?.operand
        ? [{ table: table.id, column: name, type: c.type, base: c.equality.operand.name }]
        : [];
    });
  const own = r.check === 'orphaned-rows' ? r.columns : r.key.flatMap((k) => (k.kind === 'column' ? [k.column] : []));
  const pk = r.table.primaryKey ?? [];
  return [
    ...lacking(r.table, [...new Set([...own, ...pk])]),
    ...(r.check === 'orphaned-rows' ? lacking(r.parent, r.parentColumns) : []),
  ];
}
