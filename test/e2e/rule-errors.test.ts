import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

let db: TestDb;
let config: string;

beforeAll(async () => {
  db = await freshDatabase(`
    create table event (id int primary key, payload json not null, ref text not null);
    insert into event values (1, '{"a":1}', 'x'), (2, '{"a":1}', 'x'), (3, '{"b":2}', 'y');
    create table account (id int primary key, email text not null);
    insert into account values (1, 'a@x'), (2, 'a@x');
  `);
  // The json rule comes first: before, its failure aborted the transaction and every later rule was lost.
  config = writeConfig(`
rules:
  - { check: duplicate-rows, table: event, key: [payload], repair: report }
  - { check: duplicate-rows, table: event, key: [ref], repair: report }
  - { check: duplicate-rows, table: account, key: [email], repair: report }
`);
});
afterAll(() => db.drop());

describe('a rule that cannot run', () => {
  it('is an error finding with a hint while every other rule still runs; exit 2', async () => {
    const res = await runCli([
      'scan',
      '--database-url',
      db.url,
      '--config',
      config,
      '--no-discover',
      '--format',
      'json',
    ]);
    expect(res.code).toBe(2);
    const doc = JSON.parse(res.stdout);
    expect(doc.findings).toHaveLength(3);
    const [json, ref, email] = doc.findings;
    expect(json).toEqual({
      check: 'duplicate-rows',
      table: 'public.event',
      key: ['payload'],
      where: null,
      source: 'config',
      severity: 'error',
      error: {
        message: expect.stringMatching(/key part payload is of type json, which has no equality operator/),
        hint: expect.stringMatching(/expr: "payload::jsonb"/),
      },
    });
    expect([ref.groups, ref.rows, email.groups, email.rows]).toEqual([1, 1, 1, 1]);
    expect(doc.summary.checks).toBe(3);
  });

  it('is listed under "Could not check" in the text output, after the tables of what was found', async () => {
    const res = await runCli(['scan', '--database-url', db.url, '--config', config, '--no-discover']);
    expect(res.code).toBe(2);
    expect(res.stdout.split('\n')[0]).toMatch(
      /3 checks run · 1 could not run · 2 findings \(2 errors\) · 2 rows affected/,
    );
    expect(res.stdout).toMatch(
      /Could not check \(1\)[^\n]*\n {2}public\.event\(payload\)[^\n]*type json, which has no equality operator/,
    );
    expect(res.stdout).toContain('key: [{ expr: "payload::jsonb" }]');
  });
});
