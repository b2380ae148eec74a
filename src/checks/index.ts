import type { Rule } from '../rules/types.js';
import type { Repairer } from '../repair/types.js';
import { duplicateRepair, duplicateRows } from './duplicate-rows.js';
import { orphanRepair, orphanedRows } from './orphaned-rows.js';
import { softDeleteConflicts, softDeleteRepair } from './soft-delete-conflicts.js';
import type { Check } from './types.js';

/** Every check, in the order they run and are reported. */
export const CHECKS = [duplicateRows, orphanedRows, softDeleteConflicts] as const;

export function checkFor<R extends Rule>(rule: R): Check<R> {
  const check = CHECKS.find((c) => c.id === rule.check);
  if (!check) throw new Error(`no check ${rule.check}`);
  return check as unknown as Check<R>;
}

export function repairerFor<R extends Rule>(rule: R): Repairer<R> {
  const repairers = {
    'duplicate-rows': duplicateRepair,
    'orphaned-rows': orphanRepair,
    'soft-delete-conflicts': softDeleteRepair,
  };
  return repairers[rule.check] as unknown as Repairer<R>;
}
