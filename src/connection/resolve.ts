import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import pg from 'pg';
import { RowdoctorError } from '../errors.js';
import { gotInstead } from '../suggest.js';
import { parseConnectionString, unknownOptions, type Params } from './conninfo.js';
import { ENV_OF, IGNORED } from './keywords.js';
import { passwordFromFile } from './pgpass.js';
import { serviceParams } from './service-file.js';
import { serverOffersTls, sslModeOf, tlsOptions } from './ssl.js';
import type { SslMode } from './keywords.js';

/** Where rowdoctor connects, settled the way libpq would settle it. */
export interface ConnectionTarget {
  /** What node-postgres connects with (TLS settled by `settleTls` for prefer and allow). */
  client: pg.ClientConfig;
  sslmode: SslMode;
  /** host:port/db, never with a password: what JSON and text output show. */
  display: string;
  /** Where the password came from, when a file gave it (said when authentication fails). */
  passwordFrom: string | null;
  /** Things a person should know (an ignored option, a password file others can read): for stderr. */
  notes: string[];
}

/** rowdoctor's wait for a connection when PGCONNECT_TIMEOUT / connect_timeout is not set (libpq waits forever). */
const DEFAULT_CONNECT_TIMEOUT_S = 10;

/**
 * --database-url, else DATABASE_URL — a URL or libpq keyword=value pairs — completed as libpq does:
 * what the string gives wins; then the service it (or PGSERVICE) names from pg_service.conf; then
 * the PG* environment variables; then the defaults. A password still missing comes from the
 * password file (passfile, PGPASSFILE, ~/.pgpass).
 */
export function resolveTarget(databaseUrl: string | undefined, env: NodeJS.ProcessEnv = process.env): ConnectionTarget {
  const text = databaseUrl ?? (env.DATABASE_URL || undefined);
  const what = databaseUrl !== undefined ? '--database-url' : 'DATABASE_URL';
  const given: Params = text ? parseConnectionString(text, what) : {};
  const home = env.HOME || homedir();
  const notes: string[] = [];

  const service = given.service ?? (env.PGSERVICE || undefined);
  const fromService = service ? serviceParams(service, given.servicefile, env, home).params : {};
  const p: Params = { ...fromService, ...given };
  for (const [key, variable] of Object.entries(ENV_OF)) {
    if (p[key] === undefined && variable && env[variable]) p[key] = env[variable];
  }
  for (const key of Object.keys(p).filter((k) => IGNORED.has(k)))
    notes.push(`connection option ${key}=${p[key]} is not supported by rowdoctor and is ignored.`);
  for (const key of unknownOptions(given))
    notes.push(`"${key}" in ${what} is not a libpq connection option (an ORM's, perhaps) and is ignored.`);

  const host = single(p.host, 'host') ?? 'localhost';
  const hostaddr = single(p.hostaddr, 'hostaddr');
  const port = integer(single(p.port, 'port') ?? '5432', 'port');
  const user = p.user || env.USER || userInfo().username;
  const dbname = p.dbname || user;
  const sslmode = host.startsWith('/') && !hostaddr ? 'disable' : sslModeOf(p);
  // node-postgres' ?ssl=true verified against Node's CAs: the same with sslrootcert=system.
  if ((p.ssl === 'true' || p.ssl === '1') && p.sslrootcert === undefined) p.sslrootcert = 'system';
  const serverName = hostaddr && !isIP(host) ? host : null;
  const ssl = sslmode === 'disable' ? false : tlsOptions(sslmode, p, home, serverName);

  let password = p.password;
  let passwordFrom: string | null = null;
  if (password === undefined) {
    const file = p.passfile ?? join(home, '.pgpass');
    const key = { host: p.host ? host : (hostaddr ?? host), port: String(port), dbname, user };
    password = passwordFromFile(file, key, (w) => notes.push(w));
    if (password !== undefined) passwordFrom = file;
  }

  const timeout =
    p.connect_timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_S : integer(p.connect_timeout, 'connect_timeout');
  const client: pg.ClientConfig = {
    host: hostaddr ?? host,
    port,
    user,
    database: dbname,
    // No password: say so when the server asks, rather than node-postgres' deprecated pgpass lookup.
    password: password ?? noPasswordGiven(p.passfile ?? join(home, '.pgpass')),
    ssl,
    application_name: p.application_name || p.fallback_application_name || 'rowdoctor',
    // libpq: 0 or less waits forever, and less than 2 seconds is taken as 2.
    connectionTimeoutMillis: timeout <= 0 ? 0 : Math.max(2, timeout) * 1000,
    ...(p.options ? { options: p.options } : {}),
    ...(p.client_encoding ? { client_encoding: p.client_encoding } : {}),
    ...(p.sslnegotiation && ssl ? { sslnegotiation: negotiation(p.sslnegotiation) } : {}),
  };
  const display = `${host}:${port}/${dbname}`;
  return { client, sslmode, display, passwordFrom, notes };
}

/**
 * For sslmode=prefer: TLS when the server offers it, else plain (as libpq, decided once per run
 * rather than per connection). For allow: plain, unless the server turns a plain session away.
 */
export async function settleTls(target: ConnectionTarget): Promise<ConnectionTarget> {
  const { client, sslmode } = target;
  const plain = { ...target, client: { ...client, ssl: false } };
  if (sslmode === 'prefer' && client.ssl !== false) {
    const offers = await serverOffersTls(client.host!, client.port!, client.connectionTimeoutMillis ?? 0);
    return offers === false ? plain : target;
  }
  if (sslmode === 'allow') {
    const probe = new pg.Client(plain.client);
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      return plain;
    } catch (e) {
      // 28000: pg_hba.conf has no entry for a plain session (hostssl only): then TLS, as libpq.
      return (e as { code?: string }).code === '28000' ? target : plain;
    } finally {
      await probe.end().catch(() => undefined);
    }
  }
  return target;
}

function negotiation(value: string): 'postgres' | 'direct' {
  if (value === 'postgres' || value === 'direct') return value;
  throw new RowdoctorError(`sslnegotiation: ${gotInstead(value, ['postgres', 'direct'])}`);
}

function single(value: string | undefined, key: string): string | undefined {
  if (value?.includes(','))
    throw new RowdoctorError(`${key}=${value}: rowdoctor connects to one server; give one ${key}.`, {
      hint: 'libpq would try each in turn; name the primary (or the one server) you mean.',
    });
  return value || undefined;
}

function integer(value: string, key: string): number {
  if (!/^-?\d+$/.test(value.trim()))
    throw new RowdoctorError(`${key}: got "${value}"; expected a whole number.`, {
      hint: key === 'connect_timeout' ? 'connect_timeout (PGCONNECT_TIMEOUT) is in seconds.' : undefined,
    });
  return Number(value);
}

/**
 * node-postgres calls this when the server asks for a password (as a method of the client). It
 * fails the connection with what to do, and hangs up: the server would otherwise keep the socket
 * open for its authentication_timeout, and the process with it.
 */
function noPasswordGiven(file: string) {
  return function (this: { connection?: { stream?: { destroy(): void } } }): Promise<string> {
    const stream = this.connection?.stream;
    setImmediate(() => stream?.destroy());
    return Promise.reject(
      new RowdoctorError('The server asks for a password, and none was given.', {
        hint:
          `Give it in the URL, in PGPASSWORD, or in the password file ${file} ` +
          '(host:port:database:user:password, mode 0600).',
      }),
    );
  };
}
