import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { insertSql, pick, rng } from '../support/data.js';
import { scanFindings } from '../support/run.js';

// Parents: orgs 1..50 (multiples of 7 soft-deleted); regions keyed (country, code), some is_deleted.
const orgDeleted = (id: number) => id % 7 === 0;
const regions = ['de', 'fr', 'it'].flatMap((country) =>
  ['n', 's', 'e'].map((code, i) => ({ country, code, deleted: country === 'fr' && i === 2 })),
);
const r = rng(7);
interface Member {
  id: number;
  org: number | null;
  country: string | null;
  code: string | null;
  deleted: boolean;
}
const members: Member[] = Array.from({ length: 500 }, (_, i) => ({
  id: i + 1,
  org: r() < 0.1 ? null : 1 + Math.floor(r() * 60),
  country: r() < 0.08 ? null : pick(r, ['de', 'fr', 'it', 'es']),
  code: r() < 0.08 ? null : pick(r, ['n', 's', 'e', 'w']),
  deleted: r() < 0.1,
}));

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table org (id int primary key, deleted_at timestamptz);
    insert into org select g, case when g % 7 = 0 then now() end from generate_series(1, 50) g;
    create table region (country text, code text, is_deleted boolean not null default false, primary key (country, code));
    ${insertSql(
      'region',
      ['country', 'code', 'is_deleted'],
      regions.map((x) => [x.country, x.code, x.deleted]),
    )}
    create table member (id int primary key, org_id int, country text, region_code text, deleted_at timestamptz);
    ${insertSql(
      'member',
      ['id', 'org_id', 'country', 'region_code', 'deleted_at'],
      members.map((m) => [m.id, m.org, m.country, m.code, m.deleted ? '2026-01-01' : null]),
    )}
    alter table member add constraint member_region_fkey foreign key (country, region_code) references region (country, code) not valid;
  `);
});
afterAll(() => db.drop());

/** Expected counts, computed from the generated rows. */
function expectOrphans(
  keyOf: (m: Member) => string | null,
  parentState: (key: string) => 'alive' | 'deleted' | 'missing',
) {
  let missingParent = 0;
  let deletedParent = 0;
  const keys = new Set<string>();
  for (const m of members) {
    const key = keyOf(m);
    if (m.deleted || key === null) continue; // soft-deleted children and MATCH SIMPLE NULLs never count
    const state = parentState(key);
    if (state === 'alive') continue;
    if (state === 'missing') missingParent++;
    else deletedParent++;
    keys.add(key);
  }
  return { missingParent, deletedParent, rows: missingParent + deletedParent, groups: keys.size };
}

const orgRule = `rules:
  - check: orphaned-rows
    table: member
    column: org_id
    references: org.id
`;

describe('orphaned-rows', () => {
  it('splits orphans into missing and soft-deleted parents for a declared single-column reference', async () => {
    const expected = expectOrphans(
      (m) => (m.org === null ? null : String(m.org)),
      (k) => (Number(k) > 50 ? 'missing' : orgDeleted(Number(k)) ? 'deleted' : 'alive'),
    );
    const findings = await scanFindings(db.url, { configText: orgRule, only: 'orphaned-rows' });
    const f = findings.find((x) => x.table === 'public.member' && x.columns?.[0] === 'org_id');
    expect(expected.missingParent).toBeGreaterThan(0);
    expect(expected.deletedParent).toBeGreaterThan(0);
    expect(f).toMatchObject({ references: 'public.org(id)', inferred: false, source: 'config', ...expected });
    // The inferred reference member.org_id -> org.id is replaced by the declared rule, not reported twice.
    expect(findings.filter((x) => x.columns?.[0] === 'org_id')).toHaveLength(1);
  });

  it('checks a composite NOT VALID foreign key, skipping rows with any NULL part (MATCH SIMPLE)', async () => {
    const expected = expectOrphans(
      (m) => (m.country === null || m.code === null ? null : `${m.country}|${m.code}`),
      (k) => {
        const found = regions.find((x) => `${x.country}|${x.code}` === k);
        return !found ? 'missing' : found.deleted ? 'deleted' : 'alive';
      },
    );
    const findings = await scanFindings(db.url, { only: 'orphaned-rows' });
    const f = findings.find((x) => x.columns?.join() === 'country,region_code');
    expect(f).toMatchObject({
      references: 'public.region(country, code)',
      source: 'discovered',
      severity: 'error',
      ...expected,
    });
  });

  it('reports the inferred reference as a warning when nothing declares it', async () => {
    const findings = await scanFindings(db.url, { only: 'orphaned-rows' });
    const f = findings.find((x) => x.columns?.[0] === 'org_id');
    expect(f).toMatchObject({ inferred: true, severity: 'warning', source: 'discovered' });
  });

  it('accepts an ad-hoc --orphans flag, composite form included', async () => {
    const findings = await scanFindings(db.url, {
      orphans: ['public.member(country, region_code) -> public.region(country, code)'],
      discover: false,
    });
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ source: 'flag', columns: ['country', 'region_code'] });
  });

  it('samples dangling keys with the ids of the child rows that hold them', async () => {
    const [f] = await scanFindings(db.url, { configText: orgRule, discover: false, sample: '3' });
    expect(f!.samples).toHaveLength(3);
    for (const s of f!.samples) {
      const ids = members.filter((m) => !m.deleted && m.org === s.key[0]).map((m) => m.id);
      expect(s.ids).toEqual(ids);
    }
  });
});

describe('orphaned-rows samples on a heavily damaged table', () => {
  it('takes samples from the hash bucket of dangling keys, each with every in-scope row holding the key', async () => {
    const db = await freshDatabase(`
      create table owner (id int primary key, deleted_at timestamptz);
      insert into owner select g, case when g % 2 = 0 then now() end from generate_series(1, 1000) g;
      create table pet (id int primary key, owner_id int, deleted_at timestamptz);
      -- owners 1001..4000 are missing, even owners are soft-deleted; every 5th pet is itself deleted
      insert into pet select g, 1 + g % 4000, case when g % 5 = 0 then now() end from generate_series(1, 12000) g;
    `);
    try {
      const [f] = await scanFindings(db.url, {
        configText: 'rules:\n  - { check: orphaned-rows, table: pet, column: owner_id, references: owner.id }\n',
        discover: false,
        sample: '4',
      });
      // each owner's live pets, computed once (in ascending id order)
      const pets = new Map<number, number[]>();
      for (let g = 1; g <= 12000; g++)
        if (g % 5 !== 0) pets.set(1 + (g % 4000), [...(pets.get(1 + (g % 4000)) ?? []), g]);
      const live = (owner: number) => pets.get(owner) ?? [];
      const dangling = Array.from({ length: 4000 }, (_, i) => i + 1).filter(
        (o) => (o > 1000 || o % 2 === 0) && live(o).length > 0,
      );
      expect(f).toMatchObject({
        groups: dangling.length,
        missingParent: dangling.filter((o) => o > 1000).reduce((n, o) => n + live(o).length, 0),
        deletedParent: dangling.filter((o) => o <= 1000).reduce((n, o) => n + live(o).length, 0),
      });
      expect(f!.samples).toHaveLength(4);
      // ~1 in 256 keys: not simply the first dangling keys in order
      expect(f!.samples.map((s) => s.key[0])).not.toEqual(dangling.slice(0, 4));
      for (const s of f!.samples) expect(s.ids).toEqual(live(s.key[0] as number));
    } finally {
      await db.drop();
    }
  });
});

describe('orphaned-rows against a parent key that is not unique', () => {
  it('counts a child as deleted-parent only when every parent row holding its key is soft-deleted', async () => {
    const db = await freshDatabase(`
      create table tag (id int primary key, name text not null, deleted_at timestamptz);
      insert into tag values (1, 'a', null), (2, 'a', now()), (3, 'b', now()), (4, 'b', now()), (5, 'c', null);
      create table item_tag (id int primary key, tag_name text);
      insert into item_tag values (1, 'a'), (2, 'b'), (3, 'b'), (4, 'c'), (5, 'd'), (6, null);
    `);
    try {
      const [f] = await scanFindings(db.url, {
        configText:
          'rules:\n  - check: orphaned-rows\n    table: item_tag\n    column: tag_name\n    references: tag.name\n',
        discover: false,
      });
      // 'a' has a live row: fine. 'b': only deleted rows → 2 deleted-parent. 'd': no row → 1 missing.
      expect(f).toMatchObject({ missingParent: 1, deletedParent: 2, rows: 3, groups: 2 });
    } finally {
      await db.drop();
    }
  });
});
