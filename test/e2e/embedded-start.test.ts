import { describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from '../support/run.js';

/** A start-up failure: exit 2, one paragraph on stderr (message and what to do), no stack trace. */
function expectStartFailure(res: CliResult, message: RegExp) {
  expect(res.code).toBe(2);
  expect(res.stdout).toBe('');
  expect(res.stderr).not.toMatch(/\n\s+at /);
  const [, ...error] = res.stderr.trimEnd().split('\n'); // the first line is demo's "Starting …"
  expect(error).toHaveLength(2); // the message, then the hint: what to do
  expect(error[0]).toMatch(/^rowdoctor: Could not start the embedded PostgreSQL/);
  expect(error[0]).toMatch(message);
  expect(error[1]).toMatch(/Point ROWDOCTOR_PG_BIN at the bin directory of a PostgreSQL installation/);
}

/** A directory the server's user (as root: postgres) can traverse, with a bin/ holding `scripts`. */
function fakeBinaries(scripts: Record<string, string>): { root: string; bin: string; tmp: string } {
  const root = mkdtempSync(join(tmpdir(), 'rowdoctor-fake-pg-'));
  const bin = join(root, 'native', 'bin');
  const tmp = join(root, 'tmp');
  mkdirSync(bin, { recursive: true });
  mkdirSync(tmp);
  for (const dir of [root, join(root, 'native'), bin, tmp]) chmodSync(dir, 0o755);
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return { root, bin, tmp };
}

describe('a failure to start the embedded server', () => {
  it('ROWDOCTOR_PG_BIN without binaries: names the directory and says what to set', async () => {
    const { root, bin, tmp } = fakeBinaries({});
    const res = await runCli(['demo'], { env: { ROWDOCTOR_PG_BIN: bin, TMPDIR: tmp } });
    expectStartFailure(res, new RegExp(`no initdb or postgres in ${bin} \\(ROWDOCTOR_PG_BIN\\)\\.$`));
    rmSync(root, { recursive: true, force: true });
  });

  it('initdb failing: quotes its last words, and leaves no data directory behind', async () => {
    const { root, bin, tmp } = fakeBinaries({
      initdb: 'echo "initdb: error: could not create directory: No space left on device" >&2; exit 1',
      postgres: 'exit 1',
    });
    const res = await runCli(['demo'], { env: { ROWDOCTOR_PG_BIN: bin, TMPDIR: tmp } });
    expectStartFailure(
      res,
      /initdb exited with code 1\. Its log ended: initdb: error: could not create directory: No space left on device$/,
    );
    expect(readdirSync(tmp).filter((d) => d.startsWith('rowdoctor-pg-') && !d.startsWith('rowdoctor-pg-bin-'))).toEqual(
      [],
    );
    rmSync(root, { recursive: true, force: true });
  });

  it('the server exiting before it accepts connections: quotes its log', async () => {
    const { root, bin, tmp } = fakeBinaries({
      initdb: 'exit 0',
      postgres: 'echo "FATAL:  could not create shared memory segment: Cannot allocate memory" >&2; exit 1',
    });
    const res = await runCli(['demo'], { env: { ROWDOCTOR_PG_BIN: bin, TMPDIR: tmp } });
    expectStartFailure(
      res,
      /postgres exited with code 1 before accepting connections\. Its log ended: FATAL: {2}could not create shared memory segment/,
    );
    rmSync(root, { recursive: true, force: true });
  });
});
