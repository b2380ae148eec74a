import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sql } from 'kysely';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../src/embedded.js';
import { unprivilegedUser } from '../../src/embedded-binaries.js';
import { connect } from '../../src/commands/context.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli } from '../support/run.js';
import { makeCertificates, type Certificates } from '../support/tls.js';

let tls: EmbeddedServer;
let certs: Certificates;
let dir: string;
let db: TestDb;
let home: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rowdoctor-tls-')); // everything the tests write, removed at the end
  chmodSync(dir, 0o755); // the server's user reads its certificate and key here
  certs = makeCertificates(dir, unprivilegedUser());
  tls = await startEmbeddedPostgres({
    settings: { ssl: 'on', ssl_cert_file: certs.serverCert, ssl_key_file: certs.serverKey },
  });
  db = await freshDatabase('create table t (id int primary key)');
  home = mkdtempSync(join(dir, 'home-')); // no ~/.pgpass, ~/.pg_service.conf, ~/.postgresql
});
afterAll(async () => {
  await tls?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** The shared test server's port and the fresh database's name. */
const shared = () => ({ port: new URL(inject('pgAdminUrl')).port, name: db.name });
const tlsUrl = (params: string) => `postgres://postgres:rowdoctor@127.0.0.1:${tls.port}/postgres?${params}`;

/** Connect as the commands do (only `env`, not this process's), and ask the server about the session. */
async function session(databaseUrl: string | undefined, env: NodeJS.ProcessEnv = {}) {
  const conn = await connect({ databaseUrl }, 2, { HOME: home, ...env });
  try {
    const { rows } = await sql<{ ssl: boolean; app: string; db: string }>`
      select s.ssl, a.application_name as app, current_database() as db
        from pg_stat_ssl s join pg_stat_activity a using (pid)
       where s.pid = pg_backend_pid()`.execute(conn.db);
    return rows[0]!;
  } finally {
    await conn.close();
  }
}

async function failure(databaseUrl: string | undefined, env: NodeJS.ProcessEnv = {}) {
  try {
    await session(databaseUrl, env);
  } catch (e) {
    return e as Error & { hint?: string };
  }
  throw new Error('expected the connection to fail');
}

describe('sslmode, against a server with TLS on (a certificate made for the test)', () => {
  it('require encrypts without verifying the certificate', async () => {
    expect((await session(tlsUrl('sslmode=require'))).ssl).toBe(true);
  });

  it('disable does not use TLS; allow does not either, where the server accepts a plain session', async () => {
    expect((await session(tlsUrl('sslmode=disable'))).ssl).toBe(false);
    expect((await session(tlsUrl('sslmode=allow'))).ssl).toBe(false);
  });

  it('prefer (the default) uses TLS where the server offers it, and plain where it does not', async () => {
    expect((await session(tlsUrl(''))).ssl).toBe(true);
    expect((await session(db.url)).ssl).toBe(false);
  });

  it('require against a server without TLS says so', async () => {
    const e = await failure(`${db.url}?sslmode=require`);
    expect(e.message).toMatch(/does not support SSL/);
    expect(e.hint).toMatch(/does not accept TLS .*sslmode=require requires it/);
  });

  it('verify-full fails against another CA, with what to do; connects with the CA that signed it', async () => {
    const e = await failure(tlsUrl(`sslmode=verify-full&sslrootcert=${certs.otherCa}`));
    expect(e.message).toMatch(/^Could not connect to 127\.0\.0\.1:\d+\/postgres: /);
    expect(e.hint).toMatch(/certificate could not be verified \(sslmode=verify-full\): give the CA .* sslrootcert/);
    // the certificate names localhost: connect by that name, at the address (hostaddr)
    const byName = `host=localhost hostaddr=127.0.0.1 port=${tls.port} user=postgres password=rowdoctor dbname=postgres`;
    expect((await session(`${byName} sslmode=verify-full sslrootcert=${certs.ca}`)).ssl).toBe(true);
    expect((await session(byName, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.ca })).ssl).toBe(true);
  });

  it('verify-full checks the host name, verify-ca only the CA', async () => {
    const e = await failure(tlsUrl(`sslmode=verify-full&sslrootcert=${certs.ca}`));
    expect(e.hint).toMatch(/not for this host name/);
    expect((await session(tlsUrl(`sslmode=verify-ca&sslrootcert=${certs.ca}`))).ssl).toBe(true);
  });

  it('verify-full with no CA anywhere names the file it looked for', async () => {
    const e = await failure(tlsUrl('sslmode=verify-full'));
    expect(e.message).toBe(
      `sslmode=verify-full needs a root certificate, and "${home}/.postgresql/root.crt" does not exist.`,
    );
    expect(e.hint).toMatch(/sslrootcert=<file> \(PGSSLROOTCERT\).*sslmode=require/);
  });

  it('~/.postgresql/root.crt is the default CA, and makes require check the chain as libpq does', async () => {
    const withRoot = mkdtempSync(join(dir, 'home-'));
    mkdirSync(join(withRoot, '.postgresql'));
    copyFileSync(certs.otherCa, join(withRoot, '.postgresql', 'root.crt'));
    expect((await failure(tlsUrl('sslmode=require'), { HOME: withRoot })).hint).toMatch(/could not be verified/);
    copyFileSync(certs.ca, join(withRoot, '.postgresql', 'root.crt'));
    expect((await session(tlsUrl('sslmode=require'), { HOME: withRoot })).ssl).toBe(true);
    expect((await session(tlsUrl('sslmode=verify-ca'), { HOME: withRoot })).ssl).toBe(true);
    rmSync(withRoot, { recursive: true, force: true });
  });

  it('the CLI: exit 2, one paragraph, no stack trace', async () => {
    const res = await runCli(['scan', '--database-url', tlsUrl(`sslmode=verify-full&sslrootcert=${certs.otherCa}`)], {
      env: { HOME: home },
    });
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(
      /^rowdoctor: Could not connect to 127\.0\.0\.1:\d+\/postgres: .*\n {2}The server's certificate could not be verified/,
    );
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(res.stderr).not.toContain('rowdoctor@'); // the password
  });
});

describe('service files, .pgpass, application_name, connect_timeout', () => {
  function serviceFile(body: string): string {
    const file = join(mkdtempSync(join(dir, 'svc-')), 'pg_service.conf');
    writeFileSync(file, body);
    return file;
  }
  const service = () =>
    `# services for the test\n[other]\nport=1\n\n[rdtest]\nhost=127.0.0.1\nport=${shared().port}\ndbname=${shared().name}\n` +
    'user=postgres\npassword=rowdoctor\napplication_name=from-service\n';

  it('PGSERVICE with PGSERVICEFILE: scan connects to what the service names', async () => {
    const res = await runCli(['scan', '--no-discover', '--format', 'json'], {
      env: { HOME: home, PGSERVICEFILE: serviceFile(service()), PGSERVICE: 'rdtest' },
    });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).database).toBe(`127.0.0.1:${shared().port}/${shared().name}`);
  });

  it('service= in the connection string, from ~/.pg_service.conf or PGSYSCONFDIR/pg_service.conf', async () => {
    const svcHome = mkdtempSync(join(dir, 'home-'));
    writeFileSync(join(svcHome, '.pg_service.conf'), service());
    expect(await session('service=rdtest', { HOME: svcHome })).toMatchObject({
      db: shared().name,
      app: 'from-service',
    });
    const sysconf = serviceFile(service());
    expect((await session('postgres:///?service=rdtest', { PGSYSCONFDIR: join(sysconf, '..') })).db).toBe(
      shared().name,
    );
    rmSync(svcHome, { recursive: true, force: true });
  });

  it('precedence: the connection string, then the service, then PG* variables', async () => {
    const env = {
      PGSERVICEFILE: serviceFile(service()),
      PGSERVICE: 'rdtest',
      PGAPPNAME: 'from-env',
      PGDATABASE: 'postgres',
    };
    expect(await session(undefined, env)).toMatchObject({ app: 'from-service', db: shared().name });
    expect(await session('service=rdtest application_name=from-url dbname=postgres', env)).toMatchObject({
      app: 'from-url',
      db: 'postgres',
    });
  });

  it('an unknown service is an error naming the files looked in', async () => {
    const file = serviceFile(service());
    const e = await failure('service=rdtst', { PGSERVICEFILE: file, PGSYSCONFDIR: home });
    expect(e.message).toBe(`Connection service "rdtst" is not defined in ${file} or ${home}/pg_service.conf.`);
  });

  it('.pgpass (PGPASSFILE) gives the password; a file others can read is ignored with a warning', async () => {
    const url = `postgres://postgres@127.0.0.1:${shared().port}/${shared().name}`;
    const pgpass = join(mkdtempSync(join(dir, 'pgpass-')), 'pgpass');
    writeFileSync(
      pgpass,
      `# host:port:database:user:password\nother:*:*:*:wrong\n127.0.0.1:${shared().port}:*:postgres:rowdoctor\n`,
    );
    chmodSync(pgpass, 0o600);
    expect((await session(url, { PGPASSFILE: pgpass })).db).toBe(shared().name);

    chmodSync(pgpass, 0o644);
    const res = await runCli(['scan', '--database-url', url], { env: { HOME: home, PGPASSFILE: pgpass } });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`rowdoctor: password file "${pgpass}" has group or world access`);
    expect(res.stderr).toMatch(/The server asks for a password, and none was given/);

    writeFileSync(pgpass, `*:*:*:postgres:not-it\n`);
    chmodSync(pgpass, 0o600);
    expect((await failure(url, { PGPASSFILE: pgpass })).hint).toBe(
      `Check the user name, and the password, which came from the password file ${pgpass}.`,
    );
  });

  it('application_name is rowdoctor unless PGAPPNAME or the connection string says otherwise', async () => {
    expect((await session(db.url)).app).toBe('rowdoctor');
    expect((await session(db.url, { PGAPPNAME: 'nightly-check' })).app).toBe('nightly-check');
    expect((await session(`${db.url}?application_name=from-url`, { PGAPPNAME: 'nightly-check' })).app).toBe('from-url');
  });

  it('PGCONNECT_TIMEOUT bounds the wait for a server that never answers', async () => {
    const silent: Server = createServer(() => undefined); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const started = Date.now();
    const res = await runCli(['scan', '--database-url', `postgres://u:p@127.0.0.1:${port}/d`], {
      env: { HOME: home, PGCONNECT_TIMEOUT: '2' },
    });
    const seconds = (Date.now() - started) / 1000;
    silent.close();
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/Could not connect to 127\.0\.0\.1:\d+\/d: .*timeout/i);
    expect(seconds).toBeGreaterThan(1.5);
    expect(seconds).toBeLessThan(9); // the default would wait 10 s for each of the TLS probe and the connection
  });
});
