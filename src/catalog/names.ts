import { RowdoctorError } from '../errors.js';
import type { Catalog, Table } from './types.js';

/**
 * Split a dotted name into parts. A part that itself contains a dot (or any other character) is
 * written in double quotes: `"my.schema".Patient` → ["my.schema", "Patient"]. Unquoted parts are
 * exact catalog names too (no case folding): the config speaks catalog, not SQL.
 */
export function splitDotted(text: string, what: string): string[] {
  const parts: string[] = [];
  let i = 0;
  const s = text.trim();
  while (i <= s.length) {
    let part = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw new RowdoctorError(`${what} "${text}" has an unterminated double quote.`);
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += s[i++];
      }
    } else {
      while (i < s.length && s[i] !== '.') part += s[i++];
      part = part.trim();
    }
    if (!part) throw new RowdoctorError(`${what} "${text}" has an empty name part.`);
    if (part.includes('\u0000')) throw new RowdoctorError(`${what} "${text}" is not a valid name.`);
    parts.push(part);
    if (i >= s.length) break;
    if (s[i] !== '.') throw new RowdoctorError(`${what} "${text}": expected "." after a quoted name.`);
    i++;
  }
  return parts;
}

/** "context: message", or just the message when there is no context. */
function within(context: string, message: string): string {
  return context ? `${context}: ${message}` : message.charAt(0).toUpperCase() + message.slice(1);
}

/**
 * Resolve "schema.table" or a bare "table" (looked up in `defaultSchemas`, in order). `context`
 * says where the name came from (`rowdoctor.yml rules[2].table`, `--duplicates '…'`).
 */
export function resolveTable(catalog: Catalog, text: string, defaultSchemas: string[], context = ''): Table {
  const parts = splitDotted(text, within(context, 'table'));
  if (parts.length > 2)
    throw new RowdoctorError(within(context, `table "${text}" has too many parts; write "schema.table".`));
  const [a, b] = parts as [string, string | undefined];
  const candidates = b !== undefined ? [[a, b] as const] : defaultSchemas.map((s) => [s, a] as const);
  for (const [schema, name] of candidates) {
    const found = catalog.tables.find((t) => t.schema === schema && t.name === name);
    if (found) return found;
  }
  const name = b ?? a;
  const partitionOf = [...catalog.partitionRoot.entries()].find(([p]) => p.endsWith(`.${name}`));
  if (partitionOf) {
    throw new RowdoctorError(
      within(
        context,
        `table "${text}" is a partition; name its partitioned table "${partitionOf[1]}", which covers every partition.`,
      ),
    );
  }
  const near = catalog.tables.filter(
    (t) =>
      t.name.toLowerCase() === name.toLowerCase() && (b === undefined || t.schema.toLowerCase() === a.toLowerCase()),
  );
  const looked = defaultSchemas.join(', ') || '(none)';
  const hint = near.length
    ? `Names are exact catalog names: did you mean ${near.map((t) => `"${t.id}"`).join(' or ')}?`
    : b === undefined
      ? `Looked in schema(s) ${looked}; qualify it as "schema.table" if it lives elsewhere.`
      : 'Check the spelling; rowdoctor init lists the tables it sees.';
  throw new RowdoctorError(within(context, `table "${text}" does not exist.`), { hint });
}

export function resolveColumn(table: Table, name: string, context = ''): string {
  if (table.columns.some((c) => c.name === name)) return name;
  const near = table.columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
  throw new RowdoctorError(within(context, `column "${name}" does not exist in table ${table.id}.`), {
    hint: near
      ? `Names are exact catalog names: did you mean "${near.name}"?`
      : `Its columns are: ${table.columns.map((c) => c.name).join(', ')}.`,
  });
}
