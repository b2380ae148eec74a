import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { RowdoctorError } from '../errors.js';

/**
 * A reviewed repair plan (contract §"Reviewed plans"): what a dry run with --plan-out found, group
 * by group, with enough to tell at apply time whether the rows are still what the reviewer read.
 * Ids and key values are spelled as the JSON document spells them (an int8 a double cannot hold is
 * a string).
 */
const id = z.unknown();
const fingerprint = z.string().regex(/^[0-9a-f]{32}$/, 'expected an md5 (32 hex digits)');

const tableShape = z.strictObject({ columns: fingerprint, keys: fingerprint, references: fingerprint });

const planRule = z.strictObject({
  rule: z.string(),
  check: z.string(),
  table: z.string(),
  repair: z.string(),
});

const planChildren = z.strictObject({
  /** `child(columns) -> parent(columns)`, as the dry run names the reference. */
  reference: z.string(),
  table: z.string(),
  ids: z.array(id),
});

const planGroup = z.strictObject({
  /** Index into `rules`. */
  rule: z.number().int().nonnegative(),
  key: z.array(z.unknown()),
  survivor: id,
  losers: z.array(id),
  rows: z.array(z.strictObject({ id, fingerprint })),
  children: z.array(planChildren),
  delete: z.array(id),
  update: z.array(id),
});

const counts = {
  groups: z.number(),
  rowsDeleted: z.number(),
  rowsUpdated: z.number(),
  childRowsRepointed: z.number(),
  childRowsMerged: z.number(),
  redirected: z.number(),
  skipped: z.number(),
};

export const planSchema = z.strictObject({
  tool: z.literal('rowdoctor'),
  schemaVersion: z.literal(1),
  kind: z.literal('rowdoctor-plan'),
  database: z.strictObject({ name: z.string(), systemIdentifier: z.string() }),
  createdAt: z.string(),
  schemaFingerprint: z.strictObject({ md5: fingerprint, tables: z.record(z.string(), tableShape) }),
  rules: z.array(planRule),
  groups: z.array(planGroup),
  summary: z.strictObject({
    ...counts,
    actions: z.array(z.strictObject({ check: z.string(), table: z.string(), ...counts })),
  }),
});

export type Plan = z.infer<typeof planSchema>;
export type PlanGroup = z.infer<typeof planGroup>;
export type PlanChildren = z.infer<typeof planChildren>;
export type TableShape = z.infer<typeof tableShape>;
export type PlanRule = z.infer<typeof planRule>;

/** A plan as read from its file, with the md5 of the file's bytes (what the run records). */
export interface LoadedPlan {
  file: string;
  md5: string;
  plan: Plan;
}

export function md5(text: string | Buffer): string {
  return createHash('md5').update(text).digest('hex');
}

/** Read and check a plan file: every problem at once, with its path, exit 2. */
export async function readPlan(file: string): Promise<LoadedPlan> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new RowdoctorError(`Cannot read the plan ${file}: ${(e as Error).message}.`, {
      hint: 'Give the file that repair --plan-out wrote.',
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new RowdoctorError(`The plan ${file} is not JSON: ${(e as Error).message}.`, {
      hint: 'Give the file that repair --plan-out wrote, unedited.',
    });
  }
  const parsed = planSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 10)
      .map((i) => `  ${i.path.length ? i.path.join('.') : '(the file)'}: ${i.message}`);
    throw new RowdoctorError(`The plan ${file} is not a rowdoctor plan:\n${problems.join('\n')}`, {
      hint: 'Give the file that repair --plan-out wrote, unedited.',
    });
  }
  return { file, md5: md5(bytes), plan: parsed.data };
}

/** Write the plan; returns the md5 of what was written. */
export async function writePlan(file: string, plan: Plan): Promise<string> {
  const { groups, ...head } = plan;
  return writePlanText(
    file,
    head,
    groups.map((g) => JSON.stringify(g)),
  );
}

/**
 * Write a plan whose groups are JSON texts already (as the server printed them): one group a line,
 * so a plan of 100k groups is never parsed and printed again. Returns the md5 of what was written.
 */
export async function writePlanText(file: string, head: Omit<Plan, 'groups'>, groups: string[]): Promise<string> {
  const { summary, ...top } = head;
  const fields = Object.entries(top).map(([k, v]) => ` ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  const text =
    `{\n${fields.join(',\n')},\n "groups": [\n${groups.map((g) => `  ${g}`).join(',\n')}\n ],\n` +
    ` "summary": ${JSON.stringify(summary)}\n}\n`;
  try {
    await writeFile(file, text);
  } catch (e) {
    throw new RowdoctorError(`Cannot write the plan to ${file}: ${(e as Error).message}.`, {
      hint: 'Give --plan-out a path in a directory you can write to.',
    });
  }
  return md5(text);
}
