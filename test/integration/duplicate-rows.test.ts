import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { duplicateCounts, insertSql, pick, rng } from '../support/data.js';
import { scanFindings } from '../support/run.js';

interface Account {
  id: number;
  tenant: number;
  email: string | null;
  status: string;
  deleted: boolean;
}

// 600 accounts with colliding emails (mixed case), NULL emails, three tenants, drafts and soft deletes.
const r = rng(42);
const accounts: Account[] = Array.from({ length: 600 }, (_, i) => ({
  id: i + 1,
  tenant: 1 + Math.floor(r() * 3),
  email:
    r() < 0.1
      ? null
      : pick(r, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) + Math.floor(r() * 40) + pick(r, ['@x.io', '@X.io']),
  status: r() < 0.2 ? 'draft' : 'active',
  deleted: r() < 0.15,
}));

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table account (id int primary key, tenant_id int not null, email text, status text not null, deleted_at timestamptz);
    ${insertSql(
      'account',
      ['id', 'tenant_id', 'email', 'status', 'deleted_at'],
      accounts.map((a) => [a.id, a.tenant, a.email, a.status, a.deleted ? '2026-01-01' : null]),
    )}
  `);
});
afterAll(() => db.drop());

function rule(extra: string): string {
  return `rules:\n  - check: duplicate-rows\n    table: account\n${extra}`;
}

describe('duplicate-rows', () => {
  it('counts groups and excess rows per tenant and email, leaving out soft-deleted rows and NULL emails', async () => {
    const expected = duplicateCounts(accounts, (a) =>
      a.deleted || a.email === null ? undefined : `${a.tenant}|${a.email}`,
    );
    const [f] = await scanFindings(db.url, { configText: rule('    key: [tenant_id, email]\n') });
    expect(expected.groups).toBeGreaterThan(0);
    expect(f).toMatchObject({
      check: 'duplicate-rows',
      table: 'public.account',
      key: ['tenant_id', 'email'],
      source: 'config',
      severity: 'error',
      ...expected,
    });
  });

  it('counts soft-deleted rows when the rule says includeSoftDeleted', async () => {
    const expected = duplicateCounts(accounts, (a) => (a.email === null ? undefined : `${a.tenant}|${a.email}`));
    const [f] = await scanFindings(db.url, {
      configText: rule('    key: [tenant_id, email]\n    includeSoftDeleted: true\n'),
    });
    expect(f).toMatchObject(expected);
  });

  it('treats NULL emails as equal under nullsNotDistinct, like a NULLS NOT DISTINCT index', async () => {
    const expected = duplicateCounts(accounts, (a) => (a.deleted ? undefined : `${a.tenant}|${a.email ?? '<null>'}`));
    const [f] = await scanFindings(db.url, {
      configText: rule('    key: [tenant_id, email]\n    nullsNotDistinct: true\n'),
    });
    expect(f).toMatchObject(expected);
  });

  it('groups by an expression key inside a where scope', async () => {
    const expected = duplicateCounts(accounts, (a) =>
      a.deleted || a.email === null || a.status === 'draft' ? undefined : a.email.toLowerCase(),
    );
    const [f] = await scanFindings(db.url, {
      configText: rule(`    key: [{ expr: "lower(email)" }]\n    where: "status <> 'draft'"\n`),
    });
    expect(f).toMatchObject({ key: ['lower(email)'], where: "status <> 'draft'", ...expected });
  });

  it('accepts the same rule as an ad-hoc --duplicates flag', async () => {
    const expected = duplicateCounts(accounts, (a) =>
      a.deleted || a.email === null ? undefined : a.email.toLowerCase(),
    );
    const [f] = await scanFindings(db.url, { duplicates: ['public.account(lower(email))'] });
    expect(f).toMatchObject({ source: 'flag', key: ['lower(email)'], ...expected });
  });

  it('caps samples at --sample while the counts stay exact, and each sample holds one group', async () => {
    const [f] = await scanFindings(db.url, { configText: rule('    key: [tenant_id, email]\n'), sample: '2' });
    expect(f!.groups).toBeGreaterThan(2);
    expect(f!.samples).toHaveLength(2);
    for (const s of f!.samples) {
      const members = accounts
        .filter((a) => !a.deleted && a.tenant === s.key[0] && a.email === s.key[1])
        .map((a) => a.id);
      expect(s.ids).toEqual(members.sort((x, y) => x - y));
    }
  });

  it('reports nothing for a key that is unique', async () => {
    expect(await scanFindings(db.url, { configText: rule('    key: [id]\n') })).toEqual([]);
  });
});

describe('duplicate-rows samples on a larger table', () => {
  it('takes samples from the single aggregate pass (hash bucket) and they are exact groups, in key order', async () => {
    const big = await freshDatabase(`
      create table pairs (id int primary key, k text not null);
      insert into pairs select g, 'key-' || (g % 4000) from generate_series(1, 8000) g;   -- 4000 groups of 2
    `);
    try {
      const [f] = await scanFindings(big.url, { duplicates: ['pairs(k)'], discover: false, sample: '5' });
      expect(f).toMatchObject({ groups: 4000, rows: 4000 });
      expect(f!.samples).toHaveLength(5);
      const keys = f!.samples.map((s) => s.key[0] as string);
      expect([...keys].sort()).toEqual(keys);
      // With 4000 groups the bucket holds ~16 of them, so these are not simply the 5 smallest keys.
      expect(keys).not.toEqual(['key-0', 'key-1', 'key-10', 'key-100', 'key-1000']);
      for (const s of f!.samples) {
        const ids = (await big.query<{ id: number }>('select id from pairs where k = $1 order by id', [s.key[0]])).map(
          (r) => r.id,
        );
        expect(s.ids).toEqual(ids);
      }
    } finally {
      await big.drop();
    }
  });
});
