import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { RowdoctorError } from './errors.js';

const name = z.string().min(1, 'expected a non-empty name');
const keyPart = z.union([name, z.strictObject({ expr: z.string().min(1, 'expected an SQL expression') })], {
  error: 'expected a column name or { expr: "…" }',
});
const key = z.array(keyPart).min(1, 'expected at least one key column');
const where = z.string().min(1).optional();

const duplicateRule = z.strictObject({
  check: z.literal('duplicate-rows'),
  table: name,
  key,
  where,
  includeSoftDeleted: z.boolean().optional(),
  nullsNotDistinct: z.boolean().optional(),
  keep: z
    .strictObject({
      orderBy: z
        .array(
          z
            .string()
            .regex(
              /^\s*\S+(\s+(asc|desc))?(\s+nulls\s+(first|last))?\s*$/i,
              'expected "column [asc|desc] [nulls first|last]"',
            ),
        )
        .min(1),
    })
    .optional(),
  fill: z.boolean().optional(),
  repair: z.enum(['merge', 'delete', 'soft-delete', 'report']).optional(),
});

const orphanRule = z.strictObject({
  check: z.literal('orphaned-rows'),
  table: name,
  column: name.optional(),
  columns: z.array(name).min(1).optional(),
  references: z.union([name, z.strictObject({ table: name, columns: z.array(name).min(1) })], {
    error: 'expected "table.column" or { table, columns }',
  }),
  where,
  includeSoftDeleted: z.boolean().optional(),
  repair: z.enum(['delete', 'soft-delete', 'set-null', 'report']).optional(),
});

const softDeleteRule = z.strictObject({
  check: z.literal('soft-delete-conflicts'),
  table: name,
  key,
  where,
  nullsNotDistinct: z.boolean().optional(),
  repair: z.enum(['purge-deleted', 'revive', 'report']).optional(),
});

const rule = z.discriminatedUnion('check', [duplicateRule, orphanRule, softDeleteRule], {
  error: 'expected check to be one of duplicate-rows, orphaned-rows, soft-delete-conflicts',
});

const configSchema = z.strictObject({
  schemas: z.array(name).min(1).optional(),
  softDelete: z
    .union([
      z.literal(false),
      z.strictObject({
        columns: z.array(name).optional(),
        tables: z.record(z.string(), z.union([name, z.literal(false), z.strictObject({ column: name })])).optional(),
      }),
    ])
    .optional(),
  rules: z.array(rule).optional(),
});

/**
 * Checks that span keys. Run on the raw data, not as a zod refinement: zod skips refinements of an
 * object that has other issues, and every problem must be reported at once.
 */
function crossFieldIssues(data: unknown): { path: (string | number)[]; message: string }[] {
  const rules = (data as { rules?: unknown })?.rules;
  if (!Array.isArray(rules)) return [];
  return rules.flatMap((r, i) => {
    const rule = r as { check?: unknown; column?: unknown; columns?: unknown };
    if (rule?.check !== 'orphaned-rows' || (rule.column === undefined) !== (rule.columns === undefined)) return [];
    return [{ path: ['rules', i, 'column'], message: 'give exactly one of column or columns' }];
  });
}

export type Config = z.infer<typeof configSchema>;
export type ConfigRule = NonNullable<Config['rules']>[number];
export type DuplicateRuleConfig = z.infer<typeof duplicateRule>;
export type OrphanRuleConfig = z.infer<typeof orphanRule>;
export type SoftDeleteRuleConfig = z.infer<typeof softDeleteRule>;

export interface LoadedConfig {
  config: Config;
  /** The file it came from, or null when there was none. */
  file: string | null;
}

/** `--config` if given (must exist), else ./rowdoctor.yml if present, else an empty config. */
export async function loadConfig(explicit: string | undefined): Promise<LoadedConfig> {
  const file = explicit ?? ['rowdoctor.yml', 'rowdoctor.yaml', 'rowdoctor.json'].find((f) => existsSync(f));
  if (!file) return { config: {}, file: null };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new RowdoctorError(`Cannot read config file ${file}: ${(e as Error).message}`, {
      hint: explicit ? 'Check the path given to --config.' : undefined,
    });
  }
  return { config: parseConfig(text, file), file };
}

/** Parse and validate; every problem is reported at once as `file:line:col path: what was expected`. */
export function parseConfig(text: string, file: string): Config {
  const isJson = extname(file).toLowerCase() === '.json';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length) {
    const lines = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      return `  ${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${message}`;
    });
    throw new RowdoctorError(`${file} is not valid ${isJson ? 'JSON' : 'YAML'}:\n${lines.join('\n')}`, {
      hint: 'Fix the syntax at the positions above (YAML is indentation-sensitive; quote values that contain ": " or "#").',
    });
  }
  const data: unknown = doc.toJS() ?? {};
  const parsed = configSchema.safeParse(data);
  const issues = [...(parsed.success ? [] : parsed.error.issues), ...crossFieldIssues(data)];
  if (parsed.success && !issues.length) return parsed.data;
  const lines = issues.map((issue) => {
    const path = issue.path as (string | number)[];
    // A missing key has no node: point at the nearest enclosing one instead.
    let pos: { line: number; col: number } | undefined;
    for (let n = path.length; n >= 0 && !pos; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) pos = lineCounter.linePos(node.range[0]);
    }
    return `  ${file}${pos ? `:${pos.line}:${pos.col}` : ''} ${formatPath(path) || '(top level)'}: ${issue.message}`;
  });
  throw new RowdoctorError(`${file} has ${lines.length} error${lines.length === 1 ? '' : 's'}:\n${lines.join('\n')}`, {
    hint: 'See the config format in README.md ("Config file").',
  });
}

export function formatPath(path: (string | number | symbol)[]): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    '',
  );
}
