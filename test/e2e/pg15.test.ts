import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoDatabase, DEMO_DIR } from '../../src/demo/database.js';
import { runCli } from '../support/run.js';

// A second major version, when this machine has its binaries (never required).
const BIN = '/usr/lib/postgresql/15/bin';
const asRoot = userInfo().uid === 0;
const postgresUser = asRoot ? spawnSync('id', ['-u', 'postgres']).status === 0 : true;
const available = existsSync(`${BIN}/initdb`) && existsSync(`${BIN}/postgres`) && postgresUser;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe.skipIf(!available)('PostgreSQL 15', () => {
  let dir: string;
  let server: ChildProcess;
  let url: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rowdoctor-pg15-'));
    const ids = asRoot
      ? {
          uid: Number(execFileSync('id', ['-u', 'postgres']).toString()),
          gid: Number(execFileSync('id', ['-g', 'postgres']).toString()),
        }
      : {};
    if (asRoot) {
      chmodSync(dir, 0o755);
      chownSync(dir, ids.uid!, ids.gid!);
    }
    const data = join(dir, 'data');
    execFileSync(`${BIN}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8'], {
      ...ids,
      stdio: 'ignore',
    });
    const port = await freePort();
    server = spawn(
      `${BIN}/postgres`,
      [
        '-D',
        data,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'fsync=off',
      ],
      { ...ids, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    await new Promise<void>((resolve, reject) => {
      let log = '';
      server.stderr!.on('data', (d) => {
        log += d;
        if (log.includes('ready to accept connections')) resolve();
      });
      server.on('exit', () => reject(new Error(`postgres 15 exited: ${log}`)));
    });
    const urlFor = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
    url = await createDemoDatabase(urlFor('postgres'), urlFor);
  }, 60_000);
  afterAll(async () => {
    if (server) {
      const exited = new Promise((r) => server.on('exit', r));
      server.kill('SIGINT');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scans, repairs and verifies the demo database with the same answers as on the current version', async () => {
    const config = join(DEMO_DIR, 'rowdoctor.yml');
    const scan = await runCli(['scan', '--database-url', url, '--config', config, '--format', 'json']);
    expect(scan.code).toBe(1);
    const doc = JSON.parse(scan.stdout);
    expect(doc.summary).toEqual({ findings: 7, rows: 79, checks: 7 });
    const repair = await runCli(['repair', '--database-url', url, '--config', config, '--apply', '--format', 'json']);
    expect(repair.code).toBe(0);
    expect(repair.stdout).toContain('"rowsDeleted": 14');
    expect((await runCli(['scan', '--database-url', url, '--config', config])).code).toBe(0);
    const verify = await runCli(['verify-constraints', '--database-url', url, '--config', config, '--format', 'json']);
    expect(
      JSON.parse(verify.stdout)
        .constraints.map((c: { status: string }) => c.status)
        .sort(),
    ).toEqual(['invalid', 'invalid', 'missing', 'missing', 'ok', 'ok']);
  });
});
