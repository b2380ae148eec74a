// npm run bench:undo [-- --groups 10000 --tables 1000 --database-url postgres://…]
// Repair and undo, timed as whole processes (issue #23). A benchmark, not a test: it prints figures
// against their targets and never fails on time.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { benchServer } from './server.js';

const { values: args } = parseArgs({
  options: {
    groups: { type: 'string', default: '10000' },
    tables: { type: 'string', default: '1000' },
    wide: { type: 'string', default: '400' },
    'database-url': { type: 'string' },
  },
});
const log = (s) => process.stderr.write(`${s}\n`);
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

const { urlFor, admin, version, recreate, stop } = await benchServer(args['database-url']);

/** A fresh database with `setup`, and jit = on as most production servers run (a no-op without LLVM). */
async function database(name, setup) {
  await recreate(name);
  await admin.query(`alter database ${name} set jit = on`);
  const c = new pg.Client(urlFor(name));
  await c.connect();
  await c.query(setup);
  await c.query('analyze');
  await c.end();
}

/** rowdoctor as a whole process with JSON output: its wall time and document. */
function rowdoctor(db, argv) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(
      process.execPath,
      ['bin/rowdoctor.js', ...argv, '--database-url', urlFor(db), '--format', 'json'],
      { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code === 2) return reject(new Error(`rowdoctor ${argv.join(' ')} failed:\n${err}`));
      resolve({ ms: performance.now() - t, doc: JSON.parse(out), code });
    });
  });
}

/** Repair --apply then undo --apply: both times, and whether undo restored everything. */
async function repairAndUndo(db, repairArgs) {
  const repair = await rowdoctor(db, ['repair', ...repairArgs, '--apply']);
  const undo = await rowdoctor(db, ['undo', repair.doc.runId, '--apply']);
  return { repair: repair.ms, undo: undo.ms, clean: undo.code === 0 && undo.doc.conflicts === 0 };
}

const groups = Number(args.groups);
const tables = Number(args.tables);
const wide = Number(args.wide);
const rows = [];

log(`rowdoctor bench:undo — PostgreSQL ${version}`);

// 1. A 10k-group merge: two rows per key, two children per account re-pointed.
await database(
  'bench_undo_merge',
  `create table account (id int primary key, email text not null);
   insert into account select i, 'u' || (i % ${groups}) || '@x' from generate_series(1, ${groups * 2}) i;
   create table orders (id int primary key, account_id int references account, total int not null);
   insert into orders select i, 1 + i % ${groups * 2}, i from generate_series(1, ${groups * 4}) i;
   create index on orders (account_id);`,
);
{
  const r = await repairAndUndo('bench_undo_merge', [
    '--duplicates',
    'account(email)',
    '--no-discover',
    '--config',
    '/dev/null',
  ]);
  rows.push({
    what: `merge of ${groups.toLocaleString('en-US')} groups (${(groups * 2).toLocaleString('en-US')} child rows re-pointed)`,
    ...r,
    target: 'undo ≤ 1.5× the apply',
    met: r.undo <= 1.5 * r.repair,
    ratio: `${(r.undo / r.repair).toFixed(2)}×`,
  });
  log(`merge: repair ${secs(r.repair)}, undo ${secs(r.undo)}`);
}

// 2. A schema of `tables` tables; the run changes 10 of them (a parent and nine children).
await database(
  'bench_undo_wide',
  `do $$
   begin
     for i in 1..${tables - 10} loop
       execute format('create table filler_%s (id int primary key, note text)', i);
       execute format('insert into filler_%s select g, ''n'' from generate_series(1, 20) g', i);
     end loop;
     create table org (id int primary key, name text not null);
     insert into org select g, 'o' || (g % 50) from generate_series(1, 200) g;
     for i in 1..9 loop
       execute format('create table org_child_%s (id int primary key, org_id int references org)', i);
       execute format('insert into org_child_%s select g, 1 + g %% 200 from generate_series(1, 400) g', i);
     end loop;
   end $$;`,
);
{
  const r = await repairAndUndo('bench_undo_wide', [
    '--duplicates',
    'org(name)',
    '--no-discover',
    '--config',
    '/dev/null',
  ]);
  rows.push({
    what: `${tables.toLocaleString('en-US')}-table schema, a run that changed 10 of them`,
    ...r,
    target: 'undo < 10 s',
    met: r.undo < 10_000,
    ratio: `${(r.undo / r.repair).toFixed(2)}×`,
  });
  log(`wide: repair ${secs(r.repair)}, undo ${secs(r.undo)}`);
}

// 3. `wide` tables, 40 of them naming the merged table by an artist_id column with no foreign key
// (inferred references): 44 duplicate artists, inference on.
await database(
  'bench_undo_inferred',
  `do $$
   begin
     create table artist (id int primary key, name text not null);
     insert into artist select g, 'a' || (g % 1000) from generate_series(1, 1044) g;
     for i in 1..40 loop
       execute format('create table artist_link_%s (id int primary key, artist_id int not null, n int)', i);
       execute format('insert into artist_link_%s select g, 1 + g %% 1044, g from generate_series(1, 500) g', i);
     end loop;
     for i in 1..${wide - 41} loop
       execute format('create table other_%s (id int primary key, note text)', i);
     end loop;
   end $$;`,
);
{
  const r = await repairAndUndo('bench_undo_inferred', [
    '--duplicates',
    'artist(name)',
    '--no-discover',
    '--config',
    '/dev/null',
  ]);
  rows.push({
    what: `${wide}-table schema, 44 duplicate artists, 40 inferred references (inference on)`,
    ...r,
    target: 'repair in seconds',
    met: r.repair < 10_000,
    ratio: `${(r.undo / r.repair).toFixed(2)}×`,
  });
  log(`inferred: repair ${secs(r.repair)}, undo ${secs(r.undo)}`);
}

await stop();

const table = [
  '| operation | repair --apply | undo --apply | undo / repair | everything restored | target | met |',
  '|---|--:|--:|--:|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.what} | ${secs(r.repair)} | ${secs(r.undo)} | ${r.ratio} | ${r.clean ? 'yes' : 'NO'} | ${r.target} | ${r.met ? 'yes' : 'no'} |`,
  ),
].join('\n');
process.stdout.write(`PostgreSQL ${version}, jit = on per database\n\n${table}\n`);
