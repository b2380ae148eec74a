import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { loadPagila, pagilaAvailable } from '../support/pagila.js';
import { runCli } from '../support/run.js';

// A real schema nobody on this project wrote: partitioned payments, FKs on partitions, domains.
describe.skipIf(!pagilaAvailable)('pagila, unmodified', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDatabase();
    await loadPagila(db.url);
  });
  afterAll(() => db?.drop());

  it('loads the real data', async () => {
    expect((await db.query<{ n: string }>('select count(*) as n from payment'))[0]!.n).toBe('16049');
  });

  it('a zero-config scan exits 0 with no findings', async () => {
    const res = await runCli(['scan', '--database-url', db.url, '--format', 'json']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const doc = JSON.parse(res.stdout);
    expect(doc.findings).toEqual([]);
    expect(doc.summary.findings).toBe(0);
    expect(doc.summary.checks).toBeGreaterThan(0);
  });

  it('lists the references it inferred in text output: payment is checked once through its parent', async () => {
    const res = await runCli(['scan', '--database-url', db.url]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/no findings/);
    expect(res.stdout).toContain('public.payment(customer_id) -> public.customer(customer_id)  ok');
    expect(res.stdout).toContain('public.payment(rental_id) -> public.rental(rental_id)  ok');
    expect(res.stdout).toContain('public.payment(staff_id) -> public.staff(staff_id)  ok');
    expect(res.stdout).not.toMatch(/payment_p2022/);
  });
});
