// npm run bench:dry-run [-- --accounts 2000000 --orders 5000000 --groups 100 --reps 3 --database-url postgres://…]
// Issue #24: the dry run against --apply of the same repair, and the dry run's footprint (rows copied,
// temp relation bytes written, from pg_stat_io on PostgreSQL 16+). A benchmark, not a test: it prints
// figures and ratios and never fails on time.
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { benchServer, rowdoctorJson } from './server.js';

const { values: args } = parseArgs({
  options: {
    accounts: { type: 'string', default: '2000000' },
    orders: { type: 'string', default: '5000000' },
    groups: { type: 'string', default: '100' },
    reps: { type: 'string', default: '3' },
    'database-url': { type: 'string' },
  },
});
const A = Number(args.accounts);
const O = Number(args.orders);
const G = Number(args.groups);
const reps = Number(args.reps);
const log = (s) => process.stderr.write(`${s}\n`);
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { urlFor, admin, version, recreate, stop } = await benchServer(args['database-url']);
const rowdoctor = (db, argv) => rowdoctorJson(urlFor(db), argv);

// A accounts; G of them have one copy each (G groups of two); O orders spread over all of them, numbered
// per account, so a loser's orders collide with its survivor's under unique (account_id, number).
log(`generating ${A.toLocaleString('en-US')} accounts (${G} duplicate groups), ${O.toLocaleString('en-US')} orders …`);
await recreate('rd_bench_dry');
const gen = new pg.Client(urlFor('rd_bench_dry'));
await gen.connect();
await gen.query(`
  create table account (id bigint primary key, email text not null, created_at timestamptz not null);
  insert into account select i, 'a' || i || '@x', timestamptz '2024-01-01' + i * interval '1 second'
    from generate_series(1, ${A}) i;
  insert into account select ${A} + i, 'a' || i || '@x', timestamptz '2025-01-01' + i * interval '1 second'
    from generate_series(1, ${G}) i;
  create table orders (id bigint primary key, account_id bigint not null references account, number int not null,
                       amount int not null, unique (account_id, number));
  insert into orders select i, 1 + i % ${A + G}, i / ${A + G}, i % 100 from generate_series(1, ${O}) i;
  analyze;`);
await gen.end();

/** Bytes of temp relations extended (written to local buffers) server-wide so far; null before PostgreSQL 16. */
async function tempBytes() {
  const c = new pg.Client(urlFor('rd_bench_dry'));
  await c.connect();
  // PostgreSQL 18 counts bytes (extend_bytes); 16 and 17 count blocks of op_bytes.
  const bytes = async (expr) => {
    const { rows } = await c.query(`
      select coalesce(sum(${expr}), 0)::bigint as b from pg_stat_io where object = 'temp relation'`);
    return Number(rows[0].b);
  };
  try {
    return await bytes('extend_bytes').catch(() => bytes('extends * op_bytes'));
  } catch {
    return null;
  } finally {
    await c.end();
  }
}

const rule = ['repair', '--duplicates', 'account(email)'];
const dry = [];
const apply = [];
let dryDoc;
let applyDoc;
let temp = null;
for (let i = 0; i < reps; i++) {
  const before = await tempBytes();
  const d = await rowdoctor('rd_bench_dry', rule);
  const after = await tempBytes();
  if (before !== null && after !== null) temp = after - before;
  dry.push(d.ms);
  dryDoc = d.doc;
  await recreate('rd_bench_dry_a', 'rd_bench_dry');
  const a = await rowdoctor('rd_bench_dry_a', [...rule, '--apply']);
  apply.push(a.ms);
  applyDoc = a.doc;
  log(`rep ${i + 1}: dry run ${secs(d.ms)}, --apply ${secs(a.ms)}`);
}
const same = JSON.stringify(dryDoc.actions) === JSON.stringify(applyDoc.actions);
const ratio = median(dry) / median(apply);
const mb = (b) => (b === null ? 'n/a (PostgreSQL < 16)' : `${(b / 1024 / 1024).toFixed(1)} MB`);
console.log(
  `\n${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB; PostgreSQL ${version}. ` +
    `${A.toLocaleString('en-US')} accounts + ${G} duplicates, ${O.toLocaleString('en-US')} orders; medians of ${reps}.`,
);
console.log('| operation | time | against | ratio | rows copied | temp data written | counts equal |');
console.log('|---|--:|---|--:|--:|--:|---|');
console.log(
  `| repair dry run (${dryDoc.actions[0].groups} groups) | ${secs(median(dry))} | --apply ${secs(median(apply))} | ` +
    `${ratio.toFixed(2)}× | ${dryDoc.plannedRows?.toLocaleString('en-US')} | ${mb(temp)} | ${same ? 'yes' : '**no**'} |`,
);
await admin.query('drop database if exists rd_bench_dry_a with (force)');
await admin.query('drop database if exists rd_bench_dry with (force)');
await stop();
