import { closest, distance } from 'fastest-levenshtein';

/**
 * The valid value a typo most likely meant: the one it abbreviates ("warn" → "warning"), else the
 * nearest by edit distance (case ignored) when it is near enough to be a slip of the keyboard — at
 * most a third of the word, and at least 2 edits — so "nuke" suggests nothing rather than the least
 * unlike action.
 */
export function nearest(value: string, valid: readonly string[]): string | null {
  if (!valid.length) return null;
  const typed = value.toLowerCase();
  const lower = valid.map((v) => v.toLowerCase());
  const abbreviates = lower.filter((v) => typed.length >= 3 && v.startsWith(typed));
  if (abbreviates.length === 1) return valid[lower.indexOf(abbreviates[0]!)]!;
  const best = closest(typed, lower);
  const allowed = Math.max(2, Math.floor(typed.length / 3));
  return distance(typed, best) <= allowed ? valid[lower.indexOf(best)]! : null;
}

/** `got "duplicate-rowz" — did you mean "duplicate-rows"? (one of a, b, c)`: what a config or flag error says. */
export function gotInstead(value: unknown, valid: readonly string[]): string {
  if (value === undefined) return `missing; expected one of ${valid.join(', ')}`;
  const near = typeof value === 'string' ? nearest(value, valid) : null;
  // Config values come from YAML/JSON: JSON.stringify shows every one of them as written.
  const got = typeof value === 'string' ? `"${value}"` : `${JSON.stringify(value)} (${kind(value)})`;
  const one = `one of ${valid.join(', ')}`;
  return near ? `got ${got} — did you mean "${near}"? (${one})` : `got ${got}; expected ${one}`;
}

function kind(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value}`;
}
