import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { readPlan, writePlan, type Plan } from '../../src/plan/file.js';
import { renderPlanMarkdown, renderPlanText } from '../../src/report/plan-text.js';

const fp = (c: string) => c.repeat(32);
const counts = { groups: 2, rowsDeleted: 3, rowsUpdated: 0, childRowsRepointed: 4, childRowsMerged: 0, redirected: 0 };
const PLAN: Plan = {
  tool: 'rowdoctor',
  schemaVersion: 1,
  kind: 'rowdoctor-plan',
  database: { name: 'shop', systemIdentifier: '7301234567890123456' },
  createdAt: '2026-12-06T20:00:00.000Z',
  schemaFingerprint: {
    md5: fp('a'),
    tables: { 'public.customers': { columns: fp('b'), keys: fp('c'), references: fp('d') } },
  },
  rules: [{ rule: 'public.customers(email)', check: 'duplicate-rows', table: 'public.customers', repair: 'merge' }],
  groups: [
    {
      rule: 0,
      key: ['ann@x'],
      survivor: 1,
      losers: [7, 9],
      rows: [1, 7, 9].map((id) => ({ id, fingerprint: fp('e') })),
      children: [
        { reference: 'public.orders(customer_id) -> public.customers(id)', table: 'public.orders', ids: [3, 4, 5] },
      ],
      delete: [7, 9],
      update: [],
    },
    {
      rule: 0,
      key: ['bo|b@x'],
      survivor: '12345678901234567890',
      losers: [2],
      rows: [{ id: 2, fingerprint: fp('f') }],
      children: [{ reference: 'public.orders(customer_id) -> public.customers(id)', table: 'public.orders', ids: [6] }],
      delete: [2],
      update: [],
    },
  ],
  summary: {
    ...counts,
    skipped: 0,
    actions: [{ check: 'duplicate-rows', table: 'public.customers', ...counts, skipped: 0 }],
  },
};

const dir = mkdtempSync(join(tmpdir(), 'rowdoctor-plan-unit-'));

describe('plan files', () => {
  it('reads back what it wrote, with the md5 of its bytes', async () => {
    const file = join(dir, 'ok.json');
    const md5 = await writePlan(file, PLAN);
    const loaded = await readPlan(file);
    expect(loaded).toEqual({ file, md5, plan: PLAN });
  });

  it('names every problem of a file that is not a plan, with its path', async () => {
    const file = join(dir, 'bad.json');
    const { database, ...rest } = PLAN;
    void database;
    writeFileSync(
      file,
      JSON.stringify({ ...rest, kind: 'plan', groups: [{ ...PLAN.groups[0], rows: [{ id: 1, fingerprint: 'x' }] }] }),
    );
    const err = (await readPlan(file).then(
      () => null,
      (e: unknown) => e,
    )) as Error & { exitCode: number };
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/kind: /);
    expect(err.message).toMatch(/database: /);
    expect(err.message).toMatch(/groups\.0\.rows\.0\.fingerprint: expected an md5/);
  });

  it('shows per rule the counts and per group what stays, goes and moves (text and markdown)', async () => {
    const loaded = { file: 'plan.json', md5: fp('0'), plan: PLAN };
    await expect(renderPlanText(loaded, new Chalk({ level: 0 }))).toMatchFileSnapshot('__snapshots__/plan-show.txt');
    await expect(renderPlanMarkdown(loaded)).toMatchFileSnapshot('__snapshots__/plan-show.md');
  });
});
