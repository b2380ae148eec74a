import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { insertSql, rng } from '../support/data.js';
import { runCli, scanFindings, writeConfig } from '../support/run.js';

const r = rng(99);
// token: UNIQUE (ext_id) counts deleted rows → every deleted row with a non-NULL ext_id blocks re-insert.
const tokens = Array.from({ length: 200 }, (_, i) => ({
  id: i + 1,
  ext: r() < 0.1 ? null : i + 1000,
  deleted: r() < 0.2,
}));
// profile: no index; a declared rule on handle → conflict when a deleted row shares its handle with another row.
const profiles = Array.from({ length: 300 }, (_, i) => ({
  id: i + 1,
  handle: r() < 0.05 ? null : `h${Math.floor(r() * 120)}`,
  deleted: r() < 0.25,
}));

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table token (id int primary key, ext_id int, deleted_at timestamptz, constraint token_ext_unique unique (ext_id));
    ${insertSql(
      'token',
      ['id', 'ext_id', 'deleted_at'],
      tokens.map((t) => [t.id, t.ext, t.deleted ? '2026-02-02' : null]),
    )}
    -- the correct design: a partial index that leaves deleted rows out; never reported
    create table token_ok (id int primary key, ext_id int, deleted_at timestamptz);
    create unique index token_ok_live on token_ok (ext_id) where deleted_at is null;
    insert into token_ok select id, ext_id, deleted_at from token;
    -- the marker inside the key: a deleted row's key differs from a live row's; never reported
    create table token_versioned (id int primary key, ext_id int, deleted_at timestamptz, unique (ext_id, deleted_at));
    insert into token_versioned select id, ext_id, deleted_at from token;
    create table profile (id int primary key, handle text, is_deleted boolean not null default false);
    ${insertSql(
      'profile',
      ['id', 'handle', 'is_deleted'],
      profiles.map((p) => [p.id, p.handle, p.deleted]),
    )}
  `);
});
afterAll(() => db.drop());

describe('soft-delete-conflicts', () => {
  it('(a) finds deleted rows that a unique constraint still counts, by discovery alone', async () => {
    const blocked = tokens.filter((t) => t.deleted && t.ext !== null);
    const findings = await scanFindings(db.url, { only: 'soft-delete-conflicts' });
    expect(findings.map((f) => f.table)).toEqual(['public.token']);
    expect(findings[0]).toMatchObject({
      key: ['ext_id'],
      source: 'discovered',
      severity: 'error',
      groups: blocked.length,
      rows: blocked.length,
    });
    expect(findings[0]!.samples[0]!.ids).toEqual([blocked[0]!.id]);
  });

  it('(b) finds deleted rows sharing their key with another row, for a declared rule with a boolean marker', async () => {
    const byHandle = new Map<string, { all: number; deleted: number }>();
    for (const p of profiles) {
      if (p.handle === null) continue;
      const e = byHandle.get(p.handle) ?? { all: 0, deleted: 0 };
      e.all++;
      if (p.deleted) e.deleted++;
      byHandle.set(p.handle, e);
    }
    const conflicts = [...byHandle.values()].filter((e) => e.deleted > 0 && e.all > 1);
    const findings = await scanFindings(db.url, {
      configText: 'rules:\n  - check: soft-delete-conflicts\n    table: profile\n    key: [handle]\n',
      only: 'soft-delete-conflicts',
      discover: false,
    });
    expect(conflicts.length).toBeGreaterThan(0);
    expect(findings[0]).toMatchObject({
      table: 'public.profile',
      source: 'config',
      groups: conflicts.length,
      rows: conflicts.reduce((n, e) => n + e.deleted, 0),
    });
  });

  it('recognises a marker named like a keyword in a partial index, which the server prints quoted', async () => {
    // pg_get_expr prints the predicate as ("end" IS NULL): a correct design, so no rule for it at all.
    const own = await freshDatabase(`create table shift (id int primary key, code int, "end" timestamptz);
      create unique index shift_live on shift (code) where "end" is null;
      create table shift_bad (id int primary key, code int, "end" timestamptz, unique (code));
      insert into shift values (1, 7, now()), (2, 8, null); insert into shift_bad select * from shift;`);
    try {
      const res = await runCli([
        'scan',
        '--database-url',
        own.url,
        '--config',
        writeConfig('softDelete: { columns: ["end"] }\n'),
        '--only',
        'soft-delete-conflicts',
        '--format',
        'json',
      ]);
      const doc = JSON.parse(res.stdout) as { findings: { table: string }[]; summary: { checks: number } };
      expect(doc.findings.map((f) => f.table)).toEqual(['public.shift_bad']);
      expect(doc.summary.checks).toBe(1);
    } finally {
      await own.drop();
    }
  });

  it('refuses a declared rule on a table without a soft-delete marker', async () => {
    await expect(
      scanFindings(db.url, {
        configText: 'rules:\n  - check: soft-delete-conflicts\n    table: token_ok\n    key: [id]\n',
      }),
    ).resolves.toBeDefined(); // token_ok has deleted_at: accepted
    await db.exec('create table plain (id int primary key, k int)');
    await expect(
      scanFindings(db.url, {
        configText: 'rules:\n  - check: soft-delete-conflicts\n    table: plain\n    key: [k]\n',
      }),
    ).rejects.toThrow(/no soft-delete marker/);
  });
});
