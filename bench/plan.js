// npm run bench:plan [-- --groups 100000 --database-url postgres://…]
// Reviewed plans (issue #26): what --plan-out adds to a dry run and --plan to an --apply, and the plan's size.
// A benchmark, not a test: it prints figures and ratios and never fails on time.
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { benchServer, rowdoctorJson } from './server.js';

const { values: args } = parseArgs({
  options: { groups: { type: 'string', default: '100000' }, 'database-url': { type: 'string' } },
});
const groups = Number(args.groups);
const log = (s) => process.stderr.write(`${s}\n`);
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

const { urlFor, admin, recreate, stop } = await benchServer(args['database-url']);

const rowdoctor = (db, argv) => rowdoctorJson(urlFor(db), argv);

// A plan applies on the database it was made on: the plain --apply runs on a copy (TEMPLATE).
// `groups` duplicate groups of two accounts each, as many accounts alone, three orders per account.
log(`generating ${groups.toLocaleString('en-US')} duplicate groups …`);
await recreate('rd_bench_plan');
const gen = new pg.Client(urlFor('rd_bench_plan'));
await gen.connect();
await gen.query(`
  create table account (id bigint primary key, email text not null, name text, created_at timestamptz not null);
  insert into account
    select i, 'a' || case when i > 2 * ${groups} then i - 2 * ${groups} else i end || '@x', 'n' || i,
           timestamptz '2024-01-01' + i * interval '1 minute'
      from generate_series(1, 3 * ${groups}) i;
  create table orders (id bigint primary key, account_id bigint not null references account, amount int not null);
  insert into orders select i, 1 + i % (3 * ${groups}), i % 100 from generate_series(1, 9 * ${groups}) i;
  create index on orders (account_id);
  analyze;`);
await gen.end();

const rule = ['--duplicates', 'account(email)'];
const dir = mkdtempSync(join(tmpdir(), 'rowdoctor-bench-plan-'));
const planFile = join(dir, 'plan.json');
const dry = await rowdoctor('rd_bench_plan', ['repair', ...rule]);
log(`dry run: ${secs(dry.ms)}`);
const planned = await rowdoctor('rd_bench_plan', ['repair', ...rule, '--plan-out', planFile]);
log(`dry run --plan-out: ${secs(planned.ms)}`);
await recreate('rd_bench_plan_a', 'rd_bench_plan');
const applied = await rowdoctor('rd_bench_plan_a', ['repair', ...rule, '--apply']);
log(`--apply: ${secs(applied.ms)}`);
const fromPlan = await rowdoctor('rd_bench_plan', ['repair', ...rule, '--apply', '--plan', planFile]);
log(`--apply --plan: ${secs(fromPlan.ms)}`);
const size = statSync(planFile).size;
const g = (r) => r.doc.actions[0].groups;
console.log(`| ${groups.toLocaleString('en-US')} groups | time | ratio |`);
console.log('|---|--:|--:|');
console.log(`| dry run (${g(dry)} groups) | ${secs(dry.ms)} | |`);
console.log(`| dry run --plan-out | ${secs(planned.ms)} | ${(planned.ms / dry.ms).toFixed(2)}× the dry run |`);
console.log(`| --apply (${g(applied)} groups) | ${secs(applied.ms)} | |`);
console.log(
  `| --apply --plan (${g(fromPlan)} groups) | ${secs(fromPlan.ms)} | ${(fromPlan.ms / applied.ms).toFixed(2)}× --apply |`,
);
console.log(`| plan file | ${(size / 1e6).toFixed(1)} MB | ${Math.round(size / groups)} bytes per group |`);
for (const db of ['rd_bench_plan', 'rd_bench_plan_a']) await admin.query(`drop database ${db} with (force)`);
await stop();
