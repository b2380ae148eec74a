// npm run bench:polymorphic [-- --rows 1000000 --reps 3 --database-url postgres://…]
// Discovery of polymorphic references (Rails comments.commentable_type/commentable_id) on a large
// table: what a zero-config scan costs, against one grouped pass over the pair written by hand; and
// discovery in-process (loadCatalog, serial plans): its time and how many rows of comments the
// server says it read (one pass: the table's rows; two: twice that).
// A benchmark, not a test: it prints figures and never fails on time.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    reps: { type: 'string', default: '3' },
    'database-url': { type: 'string' },
  },
});
const rows = Number(args.rows);
const reps = Number(args.reps);
const log = (s) => process.stderr.write(`${s}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let server = null;
let adminUrl = args['database-url'];
if (!adminUrl) {
  const { startEmbeddedPostgres } = await import('../dist/embedded.js');
  server = await startEmbeddedPostgres();
  adminUrl = server.adminUrl;
}
const url = (() => {
  const u = new URL(adminUrl);
  u.pathname = '/bench_poly';
  return u.toString();
})();
const admin = new pg.Client(adminUrl);
await admin.connect();
await admin.query('drop database if exists bench_poly with (force)');
await admin.query('create database bench_poly');
const db = new pg.Client(url);
await db.connect();
log(`generating ${rows.toLocaleString('en-US')} comments …`);
await db.query(`
  create table users (id bigint primary key, email text not null);
  insert into users select g, 'u' || g || '@x.io' from generate_series(1, ${Math.ceil(rows / 10)}) g;
  create table posts (id bigint primary key, title text not null);
  insert into posts select g, 'p' || g from generate_series(1, ${Math.ceil(rows / 20)}) g;
  create table comments (id bigint primary key, commentable_type varchar not null, commentable_id bigint not null,
                         body text not null);
  insert into comments
  select g, case when g % 3 = 0 then 'Post' when g % 1000 = 1 then 'Ghost' else 'User' end,
         1 + (g::bigint * 7919) % ${Math.ceil(rows / 10) + 50}, 'body ' || g
    from generate_series(1, ${rows}) g;
  create index index_comments_on_commentable on comments (commentable_type, commentable_id);`);
await db.query('vacuum analyze');

function scan(...extra) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(
      process.execPath,
      ['bin/rowdoctor.js', 'scan', '--database-url', url, '--format', 'json', '--config', '/dev/null', ...extra],
      { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) =>
      code === 2 ? reject(new Error(err)) : resolve({ ms: performance.now() - t, doc: JSON.parse(out) }),
    );
  });
}

const { loadCatalog } = await import('../dist/catalog/load.js');
const { Kysely, PostgresDialect, sql } = await import('kysely');
const pool = new pg.Pool({ connectionString: url, max: 1 });
pool.on('error', () => undefined); // the database is dropped at the end
const kysely = new Kysely({ dialect: new PostgresDialect({ pool }) });
async function discoverInProcess() {
  return kysely.transaction().execute(async (tx) => {
    await sql`set local max_parallel_workers_per_gather = 0`.execute(tx);
    const t = performance.now();
    await loadCatalog(tx, {
      schemas: ['public'],
      softDelete: { columns: [], tables: new Map() },
      weighReferences: true,
    });
    const ms = performance.now() - t;
    const { rows: r } = await sql`
      select pg_stat_get_xact_tuples_returned('comments'::regclass)
           + (select coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0)
                from pg_index where indrelid = 'comments'::regclass) as read`.execute(tx);
    return { ms, read: Number(r[0].read) };
  });
}

const inProcess = [];
let read = 0;
const rd = [];
const discovery = [];
const pass = [];
let doc;
for (let i = 0; i < reps; i++) {
  const r = await scan();
  rd.push(r.ms);
  doc = r.doc;
  // No orphaned-rows check runs: what is left is connecting, the catalog and discovery's evidence.
  discovery.push((await scan('--only', 'soft-delete-conflicts')).ms);
  const d = await discoverInProcess();
  inProcess.push(d.ms);
  read = d.read;
  const t = performance.now();
  await db.query(`select commentable_type, count(*), count(distinct commentable_id) from comments group by 1`);
  pass.push(performance.now() - t);
}
const mapped = doc.assumptions.filter((a) => a.kind === 'polymorphic-reference').length;
const findings = doc.findings.filter((f) => f.polymorphic).map((f) => `${f.polymorphic.type}: ${f.rows}`);
log(
  `zero-config scan (discovery + one orphaned-rows check per type): ${(median(rd) / 1000).toFixed(2)} s; ` +
    `discovery alone (scan --only soft-delete-conflicts): ${(median(discovery) / 1000).toFixed(2)} s; ` +
    `one grouped pass by hand: ${(median(pass) / 1000).toFixed(2)} s; ` +
    `discovery in-process (serial): ${(median(inProcess) / 1000).toFixed(2)} s, ` +
    `${read.toLocaleString('en-US')} rows of comments read; ` +
    `${mapped} mappings, findings ${findings.join(', ')}, warnings ${doc.warnings.length}`,
);
await kysely.destroy();
await db.end();
await admin.query('drop database if exists bench_poly with (force)');
await admin.end();
await server?.stop();
