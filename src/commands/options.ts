import { RowdoctorError } from '../errors.js';
import { gotInstead } from '../suggest.js';
import { CHECK_IDS, type CheckId } from '../rules/types.js';

/** Options every command that reads a database shares (contract §Commands). */
export interface CommonOptions {
  databaseUrl?: string;
  config?: string;
  schema?: string[];
  only?: string;
  format: string;
  color: boolean;
  duplicates: string[];
  orphans: string[];
  discover: boolean;
  failOn: string;
  sample: string;
  statementTimeout: string;
  debug?: boolean;
  /** scan only: rules checked at once, each on its own connection sharing one snapshot. */
  jobs?: string;
  /** scan only: false with --no-diagnose. */
  diagnose?: boolean;
  /** scan only: the window of `recent` in the diagnosis (default 24h). */
  recent?: string;
  /** scan only: sample groups whose rows are shown (default 0). */
  showRows?: string;
}

export function parseOnly(only: string | undefined): CheckId[] | null {
  if (!only) return null;
  const ids = only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = ids.filter((id) => !CHECK_IDS.includes(id as CheckId));
  if (bad.length) {
    throw new RowdoctorError(`--only: ${bad.map((b) => gotInstead(b, CHECK_IDS)).join('; ')}`, {
      hint: 'Give a comma-separated list of checks, e.g. --only duplicate-rows,orphaned-rows.',
    });
  }
  return ids as CheckId[];
}

export function parseFormat<T extends string>(format: string, allowed: readonly T[]): T {
  if (!allowed.includes(format as T)) {
    throw new RowdoctorError(`--format: ${gotInstead(format, allowed)}`, {
      hint: 'markdown is available for scan and plan show, junit for verify-constraints.',
    });
  }
  return format as T;
}

export function parsePositiveInt(value: string, flag: string, min = 0): number {
  if (!/^\d+$/.test(value) || Number(value) < min)
    throw new RowdoctorError(`${flag} expects a whole number ≥ ${min}, got "${value}".`);
  return Number(value);
}

/** "500ms", "2s", "5min", "1h", "7d", or plain milliseconds → milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?$/.exec(value.trim());
  if (!m) throw new RowdoctorError(`${flag} expects a duration such as 500ms, 2s, 5min or 24h, got "${value}".`);
  const factor = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Math.round(Number(m[1]) * factor);
}

export function parseFailOn(value: string): 'error' | 'warning' {
  if (value !== 'error' && value !== 'warning')
    throw new RowdoctorError(`--fail-on: ${gotInstead(value, ['error', 'warning'])}`);
  return value;
}
