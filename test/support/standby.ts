import pg from 'pg';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, lstat, mkdir, mkdtemp, readdir, readlink, rm, stat, symlink } from 'node:fs/promises';
import { appendFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * A streaming hot standby of a local test server, built the way an operator builds one by hand: a
 * low-level base backup (pg_backup_start / pg_backup_stop, pg_start_backup / pg_stop_backup before
 * PostgreSQL 15) around a file copy of the primary's data directory, a backup_label, a
 * standby.signal and a primary_conninfo — started with the primary's own `postgres` binary (read
 * from /proc), so it works for whatever major the tests run. pg_basebackup is not used: the one on
 * this machine refuses a server of another major. A physical replication slot keeps the primary's
 * WAL until the standby has streamed it; stop() drops it.
 */
export interface Standby {
  /** The standby's URL for a database (same user and password as the primary). */
  url(database: string): string;
  /** Wait until the standby has replayed everything the primary had written when this was called. */
  catchUp(timeoutMs?: number): Promise<void>;
  /** pg_wal_replay_pause(): the standby keeps receiving WAL but stops applying it (replay lag grows). */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  stop(): Promise<void>;
}

export interface StandbyOptions {
  /** Extra settings for the standby's postgresql.auto.conf, e.g. { max_standby_streaming_delay: '0' }. */
  settings?: Record<string, string>;
}

/** Why no standby could be built here (remote primary, no /proc, no superuser …); null when one can. */
export type StandbyResult = { standby: Standby; skip: null } | { standby: null; skip: string };

interface PrimaryFacts {
  version: number;
  dataDir: string;
  binary: string;
  settings: Record<string, string>;
}

const MUST_MATCH = ['max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions'];
const EXTRA_MATCH = ['max_locks_per_transaction'];

/** Entries of a data directory a base backup leaves out (as pg_basebackup does): runtime state, not data. */
const SKIP_CONTENT = new Set([
  'pg_wal',
  'pg_replslot',
  'pg_stat_tmp',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);
const SKIP_FILE = new Set(['postmaster.pid', 'postmaster.opts', 'backup_label', 'tablespace_map', 'standby.signal']);

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

async function primaryFacts(admin: pg.Client): Promise<PrimaryFacts | string> {
  const who = await admin.query<{ su: boolean; recovery: boolean; version: string; pid: number; wal: string }>(`
    select current_setting('is_superuser') = 'on' as su,
           pg_catalog.pg_is_in_recovery() as recovery,
           current_setting('server_version_num') as version,
           pg_catalog.pg_backend_pid() as pid,
           current_setting('wal_level') as wal`);
  const row = who.rows[0]!;
  if (!row.su) return 'the test server URL is not a superuser';
  if (row.recovery) return 'the test server is itself a standby';
  if (row.wal === 'minimal') return 'the test server runs with wal_level = minimal';
  const names = [...MUST_MATCH, ...EXTRA_MATCH, 'data_directory'];
  const settings = await admin.query<{ name: string; setting: string }>(
    `select name, setting from pg_catalog.pg_settings where name = any($1::text[])`,
    [names],
  );
  const byName = Object.fromEntries(settings.rows.map((r) => [r.name, r.setting]));
  if (Number(byName.max_wal_senders ?? 0) < 1) return 'the test server has max_wal_senders = 0';
  const dataDir = byName.data_directory!;
  // The backend serving this session runs the primary's own binary: the standby must run the same major.
  let binary: string;
  try {
    binary = await readlink(`/proc/${row.pid}/exe`);
    await stat(join(dataDir, 'PG_VERSION'));
  } catch {
    return 'the test server is not a local process whose binary and data directory this process can read';
  }
  delete byName.data_directory;
  return { version: Number(row.version), dataDir, binary, settings: byName };
}

/** Copy a data directory that is being written to: files may vanish mid-copy (a dropped database); WAL replay fixes the rest. */
async function copyTree(from: string, to: string, top: boolean): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o700 });
  let entries: string[];
  try {
    entries = await readdir(from);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const name of entries) {
    const src = join(from, name);
    const dst = join(to, name);
    try {
      const st = await lstat(src);
      if (top && SKIP_FILE.has(name)) continue;
      if (st.isSymbolicLink()) await symlink(await readlink(src), dst);
      else if (st.isDirectory()) {
        if (top && SKIP_CONTENT.has(name)) await mkdir(dst, { mode: 0o700 });
        else await copyTree(src, dst, false);
      } else if (st.isFile()) await copyFile(src, dst);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await chown(path, uid, gid);
  const st = await lstat(path);
  if (!st.isDirectory()) return;
  for (const name of await readdir(path)) await chownTree(join(path, name), uid, gid);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Build and start a hot standby of the server at `primaryAdminUrl` (a superuser URL). Resolves to
 * `{ skip }` with the reason where that is impossible here, never throws for that.
 */
export async function startStandby(primaryAdminUrl: string, options: StandbyOptions = {}): Promise<StandbyResult> {
  const primaryUrl = new URL(primaryAdminUrl);
  const admin = new pg.Client(primaryAdminUrl);
  await admin.connect();
  const slot = `rd_standby_${randomBytes(4).toString('hex')}`;
  let base: string | null = null;
  let child: ChildProcess | null = null;
  let slotMade = false;
  const logs: string[] = [];
  const cleanup = async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGINT'); // fast shutdown
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    if (base) await rm(base, { recursive: true, force: true }).catch(() => undefined);
    if (slotMade)
      await admin
        .query('select pg_catalog.pg_drop_replication_slot($1)', [slot])
        .catch(() => undefined)
        .then(() => undefined);
    await admin.end().catch(() => undefined);
  };
  try {
    const facts = await primaryFacts(admin);
    if (typeof facts === 'string') {
      await admin.end();
      return { standby: null, skip: `no standby can be built: ${facts}` };
    }
    // The standby streams through a slot created before the backup starts: the WAL from the backup's
    // checkpoint on stays on the primary until the standby has it, so pg_wal need not be copied.
    await admin.query('select pg_catalog.pg_create_physical_replication_slot($1, true)', [slot]);
    slotMade = true;
    base = await mkdtemp(join(tmpdir(), 'rowdoctor-standby-'));
    await chmod(base, 0o755);
    const dataDir = join(base, 'data');
    const modern = facts.version >= 150000;
    const startSql = modern
      ? `select pg_catalog.pg_backup_start('rowdoctor standby', true)`
      : `select pg_catalog.pg_start_backup('rowdoctor standby', true, false)`;
    await admin.query(startSql);
    await copyTree(facts.dataDir, dataDir, true);
    const stopSql = modern
      ? `select labelfile from pg_catalog.pg_backup_stop(false)`
      : `select labelfile from pg_catalog.pg_stop_backup(false, false)`;
    const label = (await admin.query<{ labelfile: string }>(stopSql)).rows[0]!.labelfile;
    await writeFile(join(dataDir, 'backup_label'), label);
    await mkdir(join(dataDir, 'pg_wal', 'archive_status'), { recursive: true });
    if (facts.version >= 170000) await mkdir(join(dataDir, 'pg_wal', 'summaries'), { recursive: true });
    await writeFile(join(dataDir, 'standby.signal'), '');
    const port = await freePort();
    const password = decodeURIComponent(primaryUrl.password);
    const user = decodeURIComponent(primaryUrl.username) || 'postgres';
    const conninfo = `host=127.0.0.1 port=${primaryUrl.port || '5432'} user=${user} password=${password} application_name=${slot}`;
    const settings: Record<string, string> = {
      ...facts.settings,
      port: String(port),
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      hot_standby: 'on',
      fsync: 'off',
      primary_conninfo: conninfo,
      primary_slot_name: slot,
      ...options.settings,
    };
    const conf = Object.entries(settings)
      .map(([k, v]) => `${k} = '${v.replace(/'/g, "''")}'`)
      .join('\n');
    await appendFile(join(dataDir, 'postgresql.auto.conf'), `\n# rowdoctor test standby\n${conf}\n`);
    const owner = await stat(facts.dataDir);
    const asRoot = userInfo().uid === 0;
    if (asRoot) await chownTree(dataDir, owner.uid, owner.gid);
    await chmod(dataDir, 0o700);

    child = spawn(facts.binary, ['-D', dataDir], {
      ...(asRoot ? { uid: owner.uid, gid: owner.gid } : {}),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (d: Buffer) => logs.push(d.toString('utf8')));
    const urlFor = (database: string) => {
      const u = new URL(primaryAdminUrl);
      u.port = String(port);
      u.pathname = `/${encodeURIComponent(database)}`;
      return u.toString();
    };
    const standbyAdmin = urlFor('postgres');
    const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => {
      const c = new pg.Client(standbyAdmin);
      await c.connect();
      try {
        return (await c.query<R>(text, values)).rows;
      } finally {
        await c.end();
      }
    };
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error('the standby exited');
      try {
        const rows = await query<{ streaming: boolean }>(`
          select pg_catalog.pg_is_in_recovery()
             and exists (select from pg_catalog.pg_stat_wal_receiver where status = 'streaming') as streaming`);
        if (rows[0]?.streaming) break;
      } catch {
        // not accepting connections yet
      }
      if (Date.now() > deadline) throw new Error('the standby did not start streaming within 60 s');
      await sleep(100);
    }
    const standby: Standby = {
      url: urlFor,
      async catchUp(timeoutMs = 30_000) {
        // A tiny WAL record written now: it ends after everything written before it, and the standby's
        // replay position reaches exactly its end (the insert position alone may sit past a page header).
        const marker = await admin.query<{ lsn: string }>(
          `select pg_catalog.pg_logical_emit_message(false, 'rowdoctor-standby', 'catch up')::text as lsn`,
        );
        const target = marker.rows[0]!.lsn;
        const until = Date.now() + timeoutMs;
        for (;;) {
          const rows = await query<{ done: boolean }>(
            `select pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn as done`,
            [target],
          );
          if (rows[0]?.done) return;
          if (Date.now() > until) throw new Error(`the standby did not replay up to ${target} within ${timeoutMs} ms`);
          await sleep(20);
        }
      },
      async pauseReplay() {
        await query('select pg_catalog.pg_wal_replay_pause()');
      },
      async resumeReplay() {
        await query('select pg_catalog.pg_wal_replay_resume()');
      },
      stop: cleanup,
    };
    return { standby, skip: null };
  } catch (e) {
    await cleanup();
    const tail = logs.join('').trim().split('\n').slice(-8).join('\n');
    throw new Error(`Could not build a test standby: ${e instanceof Error ? e.message : String(e)}\n${tail}`, {
      cause: e,
    });
  }
}
