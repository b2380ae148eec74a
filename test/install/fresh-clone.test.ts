import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const checkout = fileURLToPath(new URL('../..', import.meta.url));
const LEFT_OUT = new Set(['node_modules', 'dist', '.git']);

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const res = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, NO_COLOR: '1', DATABASE_URL: '', TEST_DATABASE_URL: '', ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${res.status}:\n${res.stdout.slice(-3000)}\n${res.stderr.slice(-3000)}`,
    );
  return res;
}

/**
 * The README's commands as root in a checkout the server's unprivileged user cannot reach (a clone
 * under /root or in `mktemp -d`): rowdoctor must place the server's binaries and data elsewhere.
 * Not run when not root (the server then runs as the user running the tests, who can reach it).
 */
describe.skipIf(process.getuid?.() !== 0)('a fresh checkout inside a 0700 directory, as root', () => {
  it('npm install, npx rowdoctor demo, and the test suite start their embedded PostgreSQL', () => {
    const parent = mkdtempSync(join(tmpdir(), 'rowdoctor-clone-'));
    const scratch = mkdtempSync(join(tmpdir(), 'rowdoctor-clone-tmp-')); // the servers' directories and binaries' copy
    chmodSync(scratch, 0o755);
    try {
      expect(statSync(parent).mode & 0o777).toBe(0o700);
      const dir = join(parent, 'rowdoctor');
      mkdirSync(dir);
      // The checkout's files as a clone has them (the tree may have no .git: .ci/run's copy has none).
      cpSync(checkout, dir, {
        recursive: true,
        filter: (src) =>
          !relative(checkout, src)
            .split('/')
            .some((part) => LEFT_OUT.has(part)),
      });
      run('npm', ['install', '--no-fund', '--no-audit', '--prefer-offline'], dir);
      const env = { TMPDIR: scratch };
      const demo = run('npx', ['rowdoctor', 'demo'], dir, env);
      expect(demo.stdout).toMatch(/rowdoctor scan · 127\.0\.0\.1:\d+\/rowdoctor_demo · 7 checks run/);
      expect(demo.stdout).toMatch(/4\. rowdoctor scan, again ━━\n\nrowdoctor scan · [^\n]* · no findings/);
      // The suite's global set-up starts the embedded server; one small file is enough to show it.
      const suite = run('npx', ['vitest', 'run', 'test/e2e/bad-input.test.ts'], dir, env);
      expect(suite.stdout).toMatch(/tests: [1-9]\d* passed, 0 failed/);
    } finally {
      rmSync(parent, { recursive: true, force: true });
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 600_000);
});
