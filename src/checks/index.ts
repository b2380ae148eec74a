import type { Rule } from '../rules/types.js';
import { duplicateRows } from './duplicate-rows.js';
import { orphanedRows } from './orphaned-rows.js';
import { softDeleteConflicts } from './soft-delete-conflicts.js';
import type { Check } from './types.js';

/** Every check, in the order they run and are reported. */
export const CHECKS = [duplicateRows, orphanedRows, softDeleteConflicts] as const;

export function checkFor<R extends Rule>(rule: R): Check<R> {
  const check = CHECKS.find((c) => c.id === rule.check);
  if (!check) throw new Error(`no check ${rule.check}`);
  return check as unknown as Check<R>;
}
