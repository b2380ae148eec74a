import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { RowdoctorError } from './errors.js';
import { gotInstead, nearest } from './suggest.js';

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
  createdAt: name.optional(),
});

const deletedParent = z.enum(['error', 'warning', 'ignore']);

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
  deletedParent: deletedParent.optional(),
  repair: z.enum(['delete', 'soft-delete', 'set-null', 'report']).optional(),
  createdAt: name.optional(),
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

/** A reference the catalog does not hold: its type and id columns, and (optionally) what each type names. */
const referenceEntry = z.strictObject({
  table: name,
  polymorphic: z.strictObject({ type: name, id: name }).optional(),
  generic: z.strictObject({ contentType: name, id: name }).optional(),
  types: z.record(z.string().min(1), name).optional(),
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
  /** The default of every orphaned-rows rule's deletedParent, discovered ones included. */
  deletedParent: deletedParent.optional(),
  rules: z.array(rule).optional(),
  references: z.array(referenceEntry).optional(),
});

/**
 * Checks that span keys. Run on the raw data, not as a zod refinement: zod skips refinements of an
 * object that has other issues, and every problem must be reported at once.
 */
function crossFieldIssues(data: unknown): { path: (string | number)[]; message: string }[] {
  const rules = (data as { rules?: unknown })?.rules;
  const refs = (data as { references?: unknown })?.references;
  const refIssues = (Array.isArray(refs) ? refs : []).flatMap((r, i) => {
    const ref = r as { polymorphic?: unknown; generic?: unknown; types?: unknown };
    if (ref === null || typeof ref !== 'object') return [];
    if ((ref.polymorphic === undefined) === (ref.generic === undefined))
      return [{ path: ['references', i], message: 'give exactly one of polymorphic or generic' }];
    if (ref.polymorphic !== undefined && ref.types === undefined)
      return [{ path: ['references', i], message: 'a polymorphic reference needs types: { <type value>: <table> }' }];
    return [];
  });
  if (!Array.isArray(rules)) return refIssues;
  return [
    ...refIssues,
    ...rules.flatMap((r, i) => {
      const rule = r as { check?: unknown; column?: unknown; columns?: unknown };
      if (rule?.check !== 'orphaned-rows' || (rule.column === undefined) !== (rule.columns === undefined)) return [];
      return [{ path: ['rules', i, 'column'], message: 'give exactly one of column or columns' }];
    }),
  ];
}

export type Config = z.infer<typeof configSchema>;
export type ConfigRule = NonNullable<Config['rules']>[number];
export type DuplicateRuleConfig = z.infer<typeof duplicateRule>;
export type OrphanRuleConfig = z.infer<typeof orphanRule>;
export type SoftDeleteRuleConfig = z.infer<typeof softDeleteRule>;
export type ReferenceConfig = z.infer<typeof referenceEntry>;

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
      hint:
        'Fix the syntax at the positions above ' +
        '(YAML is indentation-sensitive; quote values that contain ": " or "#").',
    });
  }
  const data: unknown = doc.toJS() ?? {};
  const parsed = configSchema.safeParse(data);
  const issues: Issue[] = [
    ...(parsed.success ? [] : parsed.error.issues.flatMap((i) => explain(i, data))),
    ...crossFieldIssues(data),
  ];
  if (parsed.success && !issues.length) return parsed.data;
  const lines = issues.map((issue) => {
    const path = issue.path;
    // An unknown key is pointed at itself; a missing key has no node: point at the nearest enclosing one instead.
    let pos = issue.atKey ? keyPosition(doc, lineCounter, path) : undefined;
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

type Issue = { path: (string | number)[]; message: string; atKey?: boolean };

function keyPosition(doc: Document, lineCounter: LineCounter, path: (string | number)[]) {
  const parent = doc.getIn(path.slice(0, -1), true);
  if (!isMap(parent)) return undefined;
  const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === path[path.length - 1]);
  const range = isScalar(pair?.key) ? pair.key.range : undefined;
  return range ? lineCounter.linePos(range[0]) : undefined;
}

/**
 * A zod issue as a person reads it: an enumerated value (a check id, a repair action, any z.enum)
 * and an unknown key quote what was found and suggest the nearest valid one; one issue per key.
 */
function explain(issue: z.core.$ZodIssue, data: unknown): Issue[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const found = valueAt(data, path);
  if (issue.code === 'invalid_value' && issue.values.every((v) => typeof v === 'string'))
    return [{ path, message: gotInstead(found, issue.values) }];
  if (issue.code === 'invalid_union' && 'discriminator' in issue) {
    const options = ((issue as { options?: unknown[] }).options ?? []).filter((o) => typeof o === 'string');
    return [{ path, message: gotInstead(found, options) }];
  }
  if (issue.code === 'invalid_union' && found !== null && typeof found === 'object' && !Array.isArray(found)) {
    // An object where a name or an object may stand (references, a key part): the object's own problems.
    const objectBranches = issue.errors.filter(
      (branch) => !branch.some((i) => i.code === 'invalid_type' && !i.path.length),
    );
    if (objectBranches.length === 1)
      return objectBranches[0]!.flatMap((i) => explain({ ...i, path: [...issue.path, ...i.path] }, data));
  }
  if (issue.code === 'unrecognized_keys') {
    const valid = keysAt(configSchema, path, data);
    return issue.keys.map((key) => {
      const near = nearest(key, valid);
      const expected = valid.length ? `keys here: ${valid.join(', ')}` : '';
      const message = near
        ? `unknown key "${key}" — did you mean "${near}"? (${expected})`
        : `unknown key "${key}"${expected ? `; ${expected}` : ''}`;
      return { path: [...path, key], message, atKey: true };
    });
  }
  return [{ path, message: issue.message }];
}

function valueAt(data: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>(
    (d, p) => (d !== null && typeof d === 'object' ? (d as Record<string, unknown>)[p] : undefined),
    data,
  );
}

/** The keys the schema allows for the object at `path` of `data` (a rule's keys depend on its check). */
function keysAt(schema: z.ZodType, path: (string | number)[], data: unknown): string[] {
  let at: z.ZodType | undefined = schema;
  let value = data;
  for (let i = 0; ; i++) {
    at = objectIn(at, value);
    if (i === path.length || !at) break;
    const p = path[i]!;
    if (at instanceof z.ZodObject) at = (at.shape as Record<string, z.ZodType>)[p];
    else if (at instanceof z.ZodArray) at = at.element as z.ZodType;
    else if (at instanceof z.ZodRecord) at = at.valueType as z.ZodType;
    else return [];
    value = valueAt(value, [p]);
  }
  return at instanceof z.ZodObject ? Object.keys(at.shape) : [];
}

/** Through optionals and unions to what can hold `value`: the object branch, or the rule its check names. */
function objectIn(schema: z.ZodType | undefined, value: unknown): z.ZodType | undefined {
  let at = schema;
  for (;;) {
    if (at instanceof z.ZodOptional) at = at.unwrap() as z.ZodType;
    else if (at instanceof z.ZodUnion) {
      const options = (at.options as z.ZodType[]).filter((o) => o instanceof z.ZodObject || o instanceof z.ZodArray);
      const discriminator = (at.def as { discriminator?: string }).discriminator;
      const tag = discriminator ? valueAt(value, [discriminator]) : undefined;
      const tagged = options.find(
        (o) =>
          o instanceof z.ZodObject &&
          discriminator &&
          (o.shape as Record<string, z.ZodType>)[discriminator] instanceof z.ZodLiteral &&
          (o.shape as Record<string, z.ZodLiteral>)[discriminator]!.values.has(tag as never),
      );
      if (discriminator && !tagged) return undefined; // an unknown check: its keys are unknown too
      at =
        tagged ??
        (Array.isArray(value)
          ? options.find((o) => o instanceof z.ZodArray)
          : options.find((o) => o instanceof z.ZodObject));
    } else return at;
  }
}

export function formatPath(path: (string | number | symbol)[]): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    '',
  );
}
