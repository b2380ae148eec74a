import { RowdoctorError } from '../errors.js';

/**
 * A piece of SQL that a person wrote in a config or a flag: a `where` scope or an expression key.
 * Such text is SQL by nature, so it cannot go through `sql.id`. Instead it must be exactly one
 * expression: no `;`, no comment that could swallow what follows, balanced parentheses, closed
 * quotes. It is then run only inside read-only transactions over the extended protocol (which
 * refuses a second statement) and checked by the server before any real query (see rules/validate).
 */
export interface SqlFragment {
  readonly text: string;
}

export function sqlFragment(text: string, what: string): SqlFragment {
  const problem = lexProblem(text);
  if (problem) {
    throw new RowdoctorError(`${what} is not a single SQL expression: ${problem}.`, {
      hint:
        `Write one expression such as "status <> 'draft'" or "lower(email)" — ` +
        `no semicolons, comments or unbalanced parentheses. Got: ${text}`,
    });
  }
  return { text: text.trim() };
}

function lexProblem(text: string): string | null {
  const s = text.trim();
  if (!s) return 'it is empty';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const next = s[i + 1];
    if (ch === "'" || ch === '"') {
      const close = findClose(s, i + 1, ch, ch === "'" && /[eE]/.test(s[i - 1] ?? '') && !/\w/.test(s[i - 2] ?? ''));
      if (close < 0) return `an unterminated ${ch === "'" ? 'string literal' : 'quoted identifier'}`;
      i = close;
    } else if (ch === '$' && /[A-Za-z_$]/.test(next ?? '') && !/\w/.test(s[i - 1] ?? '')) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(s.slice(i));
      if (m) {
        const end = s.indexOf(m[0], i + m[0].length);
        if (end < 0) return 'an unterminated dollar-quoted string';
        i = end + m[0].length - 1;
      }
    } else if (ch === ';') return 'it contains ";"';
    else if (ch === '-' && next === '-') return 'it contains a "--" comment';
    else if (ch === '/' && next === '*') return 'it contains a "/*" comment';
    else if (ch === '(') depth++;
    else if (ch === ')' && --depth < 0) return 'a ")" closes more than was opened';
  }
  return depth === 0 ? null : 'a "(" is never closed';
}

/** Index of the closing quote (doubled quotes escape; backslash escapes in E'' strings). */
function findClose(s: string, from: number, quote: string, backslashEscapes: boolean): number {
  for (let i = from; i < s.length; i++) {
    if (backslashEscapes && s[i] === '\\') {
      i++;
      continue;
    }
    if (s[i] === quote) {
      if (s[i + 1] === quote) {
        i++;
        continue;
      }
      return i;
    }
  }
  return -1;
}
