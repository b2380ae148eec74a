import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConnectionString, redactValue } from '../../src/connection/conninfo.js';
import { passwordFromFile } from '../../src/connection/pgpass.js';
import { resolveTarget } from '../../src/connection/resolve.js';

const scratch = mkdtempSync(join(tmpdir(), 'rowdoctor-connection-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const home = mkdtempSync(join(scratch, 'home-'));
const resolve = (url: string | undefined, env: NodeJS.ProcessEnv = {}) => resolveTarget(url, { HOME: home, ...env });

describe('connection strings, as libpq reads them', () => {
  it('a URL: user, password, host, port, database and parameters, percent-decoded', () => {
    expect(
      parseConnectionString(
        'postgresql://ops:p%40ss+w@db.internal:6543/my%20db?sslmode=require&options=-c%20x%3Dy',
        'x',
      ),
    ).toEqual({
      user: 'ops',
      password: 'p@ss+w',
      host: 'db.internal',
      port: '6543',
      dbname: 'my db',
      sslmode: 'require',
      options: '-c x=y',
    });
    expect(parseConnectionString('postgres://[::1]:5433/app', 'x')).toEqual({
      host: '::1',
      port: '5433',
      dbname: 'app',
    });
    expect(parseConnectionString('postgres:///app?host=/var/run/postgresql', 'x')).toEqual({
      dbname: 'app',
      host: '/var/run/postgresql',
    });
  });

  it('keyword=value pairs, quoted values and escapes', () => {
    expect(parseConnectionString('host=db port = 5432 dbname=a\\ b', 'x')).toEqual({
      host: 'db',
      port: '5432',
      dbname: 'a b',
    });
    expect(parseConnectionString(`service=prod password='a \\'b\\' c'`, 'x')).toEqual({
      service: 'prod',
      password: "a 'b' c",
    });
  });

  it('refuses unknown options and sslmodes, suggesting the nearest', () => {
    expect(() => parseConnectionString('postgres://h/db?sslmod=require', '--database-url')).toThrow(
      '--database-url: unknown connection option "sslmod": got "sslmod" — did you mean "sslmode"?',
    );
    expect(() => resolve('postgres://h/db?sslmode=verify_full')).toThrow(
      'sslmode: got "verify_full" — did you mean "verify-full"? (one of disable, allow, prefer, require, verify-ca, verify-full)',
    );
    expect(() => resolve(undefined, { PGSSLMODE: 'requir' })).toThrow('did you mean "require"?');
    expect(() => resolve('host=h sslnegotiation=drect')).toThrow(
      'sslnegotiation: got "drect" — did you mean "direct"?',
    );
    expect(() => resolve('db.internal')).toThrow(/neither a postgres:\/\/ URL nor keyword=value pairs/);
    expect(() => resolve('postgres://a,b/db')).toThrow(/host=a,b: rowdoctor connects to one server/);
    expect(() => resolve('postgres://h/db?connect_timeout=soon')).toThrow(
      'connect_timeout: got "soon"; expected a whole number.',
    );
  });

  it('never shows a password', () => {
    expect(redactValue('host=h password=s3cret')).toBe('host=h password=****');
    expect(redactValue("password='s 3' host=h")).toBe('password=**** host=h');
    expect(() => resolve('host=h password=s3cret bogus')).toThrow(/password=\*\*\*\*/);
  });
});

describe('what libpq fills in', () => {
  it('the environment fills what the string leaves out; the string wins', () => {
    const env = { PGHOST: 'envhost', PGPORT: '7777', PGUSER: 'envuser', PGDATABASE: 'envdb', PGAPPNAME: 'envapp' };
    expect(resolve(undefined, env)).toMatchObject({
      display: 'envhost:7777/envdb',
      client: { host: 'envhost', port: 7777, user: 'envuser', database: 'envdb', application_name: 'envapp' },
    });
    expect(resolve('postgres://u@h/d?application_name=x', env)).toMatchObject({
      display: 'h:7777/d',
      client: { user: 'u', application_name: 'x' },
    });
  });

  it('defaults: prefer, application_name rowdoctor, the user as database, 10 s to connect', () => {
    const t = resolve('postgres://u@h');
    expect(t).toMatchObject({ sslmode: 'prefer', display: 'h:5432/u' });
    expect(t.client).toMatchObject({ application_name: 'rowdoctor', connectionTimeoutMillis: 10_000 });
    expect(t.client.ssl).toEqual({ rejectUnauthorized: false, checkServerIdentity: expect.any(Function) });
    expect(resolve('host=h fallback_application_name=mine').client.application_name).toBe('mine');
  });

  it('connect_timeout in seconds, at least 2, 0 for no limit', () => {
    expect(resolve('host=h connect_timeout=30').client.connectionTimeoutMillis).toBe(30_000);
    expect(resolve('host=h', { PGCONNECT_TIMEOUT: '1' }).client.connectionTimeoutMillis).toBe(2_000);
    expect(resolve('host=h connect_timeout=0').client.connectionTimeoutMillis).toBe(0);
  });

  it('a Unix-domain socket never uses TLS', () => {
    expect(resolve('host=/var/run/postgresql sslmode=require').client.ssl).toBe(false);
  });

  it('a client certificate: its file must exist, and its key must not be readable by others', () => {
    const dir = mkdtempSync(join(scratch, 'cert-'));
    const cert = join(dir, 'client.crt');
    const key = join(dir, 'client.key');
    expect(() => resolve(`host=h sslmode=require sslcert=${cert}`)).toThrow(
      `The client certificate file "${cert}" (sslcert) does not exist.`,
    );
    writeFileSync(cert, 'certificate');
    writeFileSync(key, 'key');
    chmodSync(key, 0o644);
    expect(() => resolve(`host=h sslmode=require sslcert=${cert} sslkey=${key}`)).toThrow(
      `The private key file "${key}" has group or world access.`,
    );
    chmodSync(key, 0o600);
    expect(resolve(`host=h sslmode=require sslcert=${cert} sslkey=${key} sslpassword=pw`).client.ssl).toMatchObject({
      cert: 'certificate',
      key: 'key',
      passphrase: 'pw',
    });
  });

  it("a shared DATABASE_URL with an ORM's own parameters still connects: they are named as ignored", () => {
    const t = resolve(undefined, { DATABASE_URL: 'postgresql://u:p@h/app?schema=public&connection_limit=5' });
    expect(t.display).toBe('h:5432/app');
    expect(t.notes).toEqual([
      '"schema" in DATABASE_URL is not a libpq connection option (an ORM\'s, perhaps) and is ignored.',
      '"connection_limit" in DATABASE_URL is not a libpq connection option (an ORM\'s, perhaps) and is ignored.',
    ]);
  });

  it('options libpq has and rowdoctor cannot honour are said, not silently dropped', () => {
    expect(resolve('host=h target_session_attrs=read-write').notes).toEqual([
      'connection option target_session_attrs=read-write is not supported by rowdoctor and is ignored.',
    ]);
  });
});

describe('password files', () => {
  const file = (text: string) => {
    const f = join(mkdtempSync(join(scratch, 'pgpass-')), 'pgpass');
    writeFileSync(f, text);
    chmodSync(f, 0o600);
    return f;
  };
  const key = { host: 'db', port: '5432', dbname: 'app', user: 'ops' };

  it('the first matching line wins; * matches anything; \\ escapes : and \\', () => {
    const f = file('# comment\nother:5432:app:ops:no\ndb:*:app:ops:pa\\:ss\\\\word\n*:*:*:*:fallback\n');
    expect(passwordFromFile(f, key, () => undefined)).toBe('pa:ss\\word');
    expect(passwordFromFile(f, { ...key, user: 'x' }, () => undefined)).toBe('fallback');
  });

  it('a Unix-domain socket matches localhost', () => {
    const f = file('localhost:5432:*:*:sock\n');
    expect(passwordFromFile(f, { ...key, host: '/var/run/postgresql' }, () => undefined)).toBe('sock');
  });
});
