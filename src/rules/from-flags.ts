import type { Catalog } from '../catalog/types.js';
import { splitDotted } from '../catalog/names.js';
import type { ConfigRule } from '../config.js';
import { RowdoctorError } from '../errors.js';
import { collectErrors } from './defaults.js';
import { resolveConfigRule } from './from-config.js';
import { sqlFragment } from '../sql/fragment.js';
import { dottedName } from './to-config.js';
import type { Rule } from './types.js';

/** `schema.table(col, lower(email))` → table text and key parts (a column name or an expression). */
export function parseTableWithKey(text: string, flag: string): { table: string; parts: (string | { expr: string })[] } {
  const open = indexOutsideQuotes(text, '(');
  if (open < 0 || !text.trimEnd().endsWith(')')) {
    throw new RowdoctorError(`${flag} '${text}' is not of the form 'schema.table(col1, col2)'.`, {
      hint: `Example: ${flag} 'public.users(lower(email))' or ${flag} 'submission(invite_id)'.`,
    });
  }
  const table = text.slice(0, open).trim();
  const inner = text.trimEnd().slice(open + 1, -1);
  const parts = splitTopLevel(inner, ',').map((p) => p.trim());
  if (!table || parts.some((p) => !p))
    throw new RowdoctorError(`${flag} '${text}' has an empty table name or key part.`);
  return {
    table,
    parts: parts.map((p) => {
      if (/^[A-Za-z_][A-Za-z0-9_$]*$/.test(p)) return p;
      if (/^"(?:[^"]|"")+"$/.test(p)) return p.slice(1, -1).replace(/""/g, '"');
      return { expr: p };
    }),
  };
}

/** `--duplicates` flags become duplicate-rows rules (repair: merge). */
export function duplicateFlagRule(text: string): ConfigRule {
  const { table, parts } = parseTableWithKey(text, '--duplicates');
  return { check: 'duplicate-rows', table, key: parts };
}

/** `--orphans 'schema.child.col -> schema.parent.col'` or `'child(a, b) -> parent(x, y)'` (repair: delete). */
export function orphanFlagRule(text: string, flag = '--orphans'): ConfigRule {
  const sides = text.split('->');
  if (sides.length !== 2) {
    throw new RowdoctorError(`${flag} '${text}' must be 'schema.child.column -> schema.parent.column'.`, {
      hint: `Example: ${flag} 'public.refresh_token.user_id -> public.users.id'.`,
    });
  }
  const [child, parent] = sides.map((s) => splitColumns(s.trim(), text, flag)) as [Side, Side];
  return {
    check: 'orphaned-rows',
    table: child.table,
    columns: child.columns,
    references: { table: parent.table, columns: parent.columns },
  };
}

interface Side {
  table: string;
  columns: string[];
}

function splitColumns(side: string, whole: string, flag: string): Side {
  if (side.endsWith(')')) {
    const { table, parts } = parseTableWithKey(side, flag);
    if (parts.some((p) => typeof p !== 'string'))
      throw new RowdoctorError(`${flag} '${whole}': references take column names, not expressions.`);
    return { table, columns: parts as string[] };
  }
  const parts = splitDotted(side, flag);
  if (parts.length < 2)
    throw new RowdoctorError(`${flag} '${whole}': '${side}' must be 'table.column' or 'schema.table.column'.`);
  const column = parts.pop()!;
  return { table: dottedName(...parts), columns: [column] };
}

/** Syntax only (no catalog needed): a typo fails before any connection is made. */
export function checkFlagSyntax(duplicates: string[], orphans: string[]): void {
  for (const f of duplicates) {
    for (const part of parseTableWithKey(f, '--duplicates').parts) {
      if (typeof part !== 'string') sqlFragment(part.expr, `--duplicates '${f}' expression`);
    }
  }
  for (const f of orphans) orphanFlagRule(f);
}

export function rulesFromFlags(catalog: Catalog, flags: { duplicates: string[]; orphans: string[] }): Rule[] {
  const makers = [
    ...flags.duplicates.map(
      (f) => () => resolveConfigRule(catalog, duplicateFlagRule(f), `--duplicates '${f}'`, 'flag'),
    ),
    ...flags.orphans.map((f) => () => resolveConfigRule(catalog, orphanFlagRule(f), `--orphans '${f}'`, 'flag')),
  ];
  return collectErrors(makers, 'Ad-hoc check flags name things the database does not have');
}

function indexOutsideQuotes(s: string, ch: string): number {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '"') quoted = !quoted;
    else if (!quoted && s[i] === ch) return i;
  }
  return -1;
}

/** Split on `sep` where it is outside parentheses and quotes. */
export function splitTopLevel(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quote) {
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === sep && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}
