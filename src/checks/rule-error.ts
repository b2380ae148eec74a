import type { Finding, RuleError } from './types.js';
import { baseFinding } from './types.js';
import { describePgError, isPgError } from '../errors.js';
import { keyLabel, type Rule } from '../rules/types.js';

/**
 * What to do when the server cannot run a rule's query, by SQLSTATE and message. Matched in order;
 * the first whose code (and message pattern, if any) fits gives the hint.
 */
const HINTS: { code: string; message?: RegExp; hint: string }[] = [
  {
    code: '42883',
    message: /equality operator for type json\b/,
    hint:
      'json has no equality operator: use a jsonb cast in an expression key, ' +
      'e.g. key: [{ expr: "payload::jsonb" }].',
  },
  {
    code: '42883',
    hint:
      'A key type has no equality operator the server can group by: ' +
      'use an expression key that casts it to a comparable type.',
  },
  {
    code: '57014',
    hint: 'The statement timed out: raise --statement-timeout, or narrow the rule (a where scope, --only, --schema).',
  },
  {
    code: '40001',
    message: /conflict with recovery/,
    hint:
      'A hot standby cancelled the query to replay WAL (rowdoctor retried it once on a new snapshot): turn on ' +
      'hot_standby_feedback or raise max_standby_streaming_delay on the standby, or scan the primary.',
  },
  {
    code: '42501',
    hint: 'The connecting role lacks a privilege on this table: grant SELECT, or connect as a role that has it.',
  },
];

/** A rule rowdoctor cannot check faithfully: reported as that rule's error finding, like a server refusal. */
export class RuleCannotRun extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** A server error while checking one rule, as that rule's error finding (other rules still run). */
export function ruleErrorFinding(rule: Rule, e: Error): Finding {
  const key = rule.check === 'orphaned-rows' ? rule.columns : rule.key.map(keyLabel);
  const error: RuleError = { message: isPgError(e) ? describePgError(e) : e.message, hint: hintFor(e) };
  return { ...baseFinding(rule, key), severity: 'error', groups: 0, rows: 0, samples: [], error };
}

function hintFor(e: Error): string | null {
  if (e instanceof RuleCannotRun) return e.hint;
  const code = isPgError(e) ? e.code : undefined;
  const match = HINTS.find((h) => h.code === code && (!h.message || h.message.test(e.message)));
  return match?.hint ?? null;
}
