import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, urlFor, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table account (id serial primary key, email text, deleted_at timestamptz);
    insert into account (email) values ('a'), ('a'), ('b');
  `);
});
afterAll(() => db.drop());

/** Every bad input: exit 2, a message on stderr, nothing on stdout, no stack trace. */
function expectUsageError(res: { code: number | null; stdout: string; stderr: string }, message: RegExp) {
  expect(res.stderr).toMatch(message);
  expect(res.code).toBe(2);
  expect(res.stdout).toBe('');
  expect(res.stderr).not.toMatch(/\n\s+at /);
}

async function accountIntact() {
  const rows = await db.query<{ n: string; seq: string }>(
    'select count(*) as n, (select last_value from account_id_seq) as seq from account',
  );
  expect(rows[0]).toEqual({ n: '3', seq: '3' });
}

describe('bad input exits 2 with a message a person can act on', () => {
  it('an unreachable server, without printing the password', async () => {
    const res = await runCli(['scan', '--database-url', 'postgres://ops:s3cret@127.0.0.1:1/prod']);
    expectUsageError(res, /Could not connect to 127\.0\.0\.1:1\/prod: .*ECONNREFUSED/);
    expect(res.stderr).toMatch(/Is the server running/);
    expect(res.stderr).not.toContain('s3cret');
  });

  it('an unknown database keeps its SQLSTATE', async () => {
    const res = await runCli(['scan', '--database-url', urlFor(db.url, 'no_such_db')]);
    expectUsageError(res, /database "no_such_db" does not exist \(SQLSTATE 3D000\)/);
  });

  it('an unknown table, with a near match suggested', async () => {
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--duplicates', 'Account(email)']),
      /--duplicates 'Account\(email\)': table "Account" does not exist\.[\s\S]*did you mean "public.account"/,
    );
  });

  it('an unknown column, listing the real ones', async () => {
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--duplicates', 'account(mail)']),
      /--duplicates 'account\(mail\)'.key\[0\]: column "mail" does not exist in table public.account[\s\S]*id, email, deleted_at/,
    );
  });

  it('an unknown schema', async () => {
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--schema', 'nope']),
      /Schema "nope" does not exist/,
    );
  });

  it('malformed YAML, with file and line', async () => {
    const file = writeConfig('rules:\n  - check: duplicate-rows\n    table: account\n   key: [email]\n');
    expectUsageError(await runCli(['scan', '--database-url', db.url, '--config', file]), new RegExp(`${file}:4:\\d+`));
  });

  it('several config errors at once, each with its path', async () => {
    const file = writeConfig(`schemas: public
rules:
  - check: duplicate-rows
    table: account
    key: email
  - check: duplicate-rowz
    table: account
  - check: orphaned-rows
    table: account
    references: users.id
    repair: nuke
  - check: soft-delete-conflicts
    table: account
    key: [email]
    colour: red
`);
    const res = await runCli(['scan', '--database-url', db.url, '--config', file]);
    expectUsageError(res, /has 6 errors/);
    for (const path of [
      'schemas',
      'rules[0].key',
      'rules[1].check',
      'rules[2].repair',
      'rules[2].column',
      'rules[3].colour',
    ]) {
      expect(res.stderr).toContain(` ${path}: `);
    }
    expect(res.stderr).toMatch(/:5:10 rules\[0\]\.key: /);
    // enumerated values and keys: the value found, and the nearest valid one
    expect(res.stderr).toMatch(
      /:6:12 rules\[1\]\.check: got "duplicate-rowz" — did you mean "duplicate-rows"\? \(one of duplicate-rows, orphaned-rows, soft-delete-conflicts\)\n/,
    );
    expect(res.stderr).toContain('rules[2].repair: got "nuke"; expected one of delete, soft-delete, set-null, report');
    expect(res.stderr).toMatch(/:15:5 rules\[3\]\.colour: unknown key "colour"; keys here: check, table, key/);
  });

  it('config names that do not exist, all reported together', async () => {
    const file = writeConfig(
      'rules:\n  - check: duplicate-rows\n    table: nope\n    key: [a]\n  - check: duplicate-rows\n    table: account\n    key: [nope]\n',
    );
    const res = await runCli(['scan', '--database-url', db.url, '--config', file]);
    expectUsageError(res, /2 problems/);
    expect(res.stderr).toMatch(/rules\[0\]: table "nope" does not exist/);
    expect(res.stderr).toMatch(/rules\[1\].key\[0\]: column "nope" does not exist/);
  });

  it('an identifier carrying SQL: nothing is executed', async () => {
    for (const spec of [
      'account(email); drop table account',
      'account; drop table account(email)',
      'account(email) -- x',
      'account(id) or 1=1',
    ]) {
      const res = await runCli(['scan', '--database-url', db.url, '--duplicates', spec]);
      expect(res.code, spec).toBe(2);
      expect(res.stderr).not.toMatch(/\n\s+at /);
    }
    await accountIntact();
  });

  it('an expression or scope carrying a second statement or a comment is refused before it reaches the server', async () => {
    const cases = [
      ['--duplicates', 'account(lower(email)); delete from account; select (1)'],
      ['--duplicates', 'account(lower(email) /* x */)'],
    ];
    for (const args of cases)
      expectUsageError(await runCli(['scan', '--database-url', db.url, ...args]), /not a single SQL expression/);
    const file = writeConfig(
      `rules:\n  - check: duplicate-rows\n    table: account\n    key: [email]\n    where: "true; delete from account"\n`,
    );
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--config', file]),
      /where is not a single SQL expression: it contains ";"/,
    );
    await accountIntact();
  });

  it('a scope that tries to write is stopped by the read-only transaction', async () => {
    const file = writeConfig(
      `rules:\n  - check: duplicate-rows\n    table: account\n    key: [email]\n    where: "nextval('account_id_seq') > 0"\n`,
    );
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--config', file]),
      /read-only transaction \(SQLSTATE 25006\)/,
    );
    await accountIntact();
  });

  it("a scope that is not a boolean, with the server's own words", async () => {
    const file = writeConfig(
      `rules:\n  - check: duplicate-rows\n    table: account\n    key: [email]\n    where: "email"\n`,
    );
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--config', file]),
      /argument of WHERE must be type boolean.*SQLSTATE 42804/,
    );
  });

  it('unknown flags, formats and checks', async () => {
    expectUsageError(await runCli(['scan', '--database-url', db.url, '--frmat', 'json']), /unknown option '--frmat'/);
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--format', 'xml']),
      /--format: got "xml"; expected one of text, json, markdown/,
    );
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--format', 'jsno']),
      /--format: got "jsno" — did you mean "json"\?/,
    );
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--only', 'duplicates']),
      /--only: got "duplicates"; expected one of duplicate-rows, orphaned-rows, soft-delete-conflicts/,
    );
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--only', 'duplicate-rows,orphan-rows']),
      /--only: got "orphan-rows" — did you mean "orphaned-rows"\?/,
    );
    expectUsageError(
      await runCli(['scan', '--database-url', db.url, '--fail-on', 'warn']),
      /--fail-on: got "warn" — did you mean "warning"\?/,
    );
    expectUsageError(await runCli(['scan', '--config', '/nonexistent/rowdoctor.yml']), /Cannot read config file/);
  });

  it('prints a stack trace only with --debug', async () => {
    const res = await runCli(['scan', '--database-url', 'postgres://ops:s3cret@127.0.0.1:1/prod', '--debug']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/\n\s+at /);
    expect(res.stderr).not.toContain('s3cret');
  });
});

describe('with --format json, an exit 2 still prints one JSON document on stdout', () => {
  interface ErrorDoc {
    tool: string;
    schemaVersion: number;
    command: string;
    error: { message: string; sqlstate: string | null; detail: string | null; hint: string | null };
  }
  const parse = (stdout: string) => JSON.parse(stdout) as ErrorDoc;

  it('for every command that reads a database: a server error keeps its SQLSTATE', async () => {
    const missing = urlFor(db.url, 'no_such_db');
    for (const args of [
      ['scan'],
      ['repair'],
      ['repair', '--apply'],
      ['undo', '20260101-000000-abcd'],
      ['verify-constraints'],
      ['runs'],
    ]) {
      const res = await runCli([...args, '--format', 'json', '--database-url', missing]);
      expect(res.code, args.join(' ')).toBe(2);
      const doc = parse(res.stdout);
      expect(doc).toMatchObject({ tool: 'rowdoctor', schemaVersion: 1, command: args[0] });
      expect(doc.error.message).toMatch(/database "no_such_db" does not exist/);
      expect(doc.error.sqlstate).toBe('3D000');
      expect(res.stderr).toMatch(/does not exist/); // the person at a terminal still reads it there
    }
  });

  it('a refusal of rowdoctor’s own carries its hint; a usage error is a document too', async () => {
    const undo = await runCli(['undo', 'no-such-run', '--format', 'json', '--database-url', db.url]);
    expect(undo.code).toBe(2);
    expect(parse(undo.stdout).error).toMatchObject({ sqlstate: null, detail: null });
    expect(parse(undo.stdout).error.message).toMatch(/No repair has been applied|no run "no-such-run"/);

    const usage = await runCli(['scan', '--format', 'json', '--no-such-flag']);
    expect(usage.code).toBe(2);
    expect(parse(usage.stdout)).toMatchObject({
      command: 'scan',
      error: { message: "unknown option '--no-such-flag'" },
    });

    const config = await runCli(['scan', '--format', 'json', '--config', writeConfig('rules: [{ check: nope }]\n')]);
    expect(config.code).toBe(2);
    expect(parse(config.stdout).error.message).toMatch(/rules\[0\]\.check/);
  });
});
