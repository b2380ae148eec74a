// npm run bench:live [-- --accounts 200000 --clients 6 --seconds 15 --database-url postgres://…]
// rowdoctor next to live traffic (issue #12). A benchmark, not a test: it prints figures against the
// targets and never fails on time. It starts an embedded PostgreSQL (or uses --database-url, a
// superuser URL), builds a damaged database, and runs a bounded application simulator:
//   - child then parent: update an order, then its account;
//   - parent then child: update an account, then one of its orders;
//   - inserts aimed at losers: a new order for an account the merge will delete;
//   - new duplicates: a new account with an email that already exists;
//   - reads by email.
// Phase 1: the application alone (baseline). Phase 2: the same application while `repair --apply`
// (default settings) merges the duplicate accounts. Phase 3: on an idle copy, the default settings
// against fixed batches of 1000 (--max-transaction-time 0). Then a conservation check on phase 2.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { benchServer } from './server.js';

const { values: args } = parseArgs({
  options: {
    accounts: { type: 'string', default: '200000' },
    clients: { type: 'string', default: '6' },
    seconds: { type: 'string', default: '15' },
    pace: { type: 'string', default: '20' },
    'database-url': { type: 'string' },
    out: { type: 'string', default: 'bench/results.md' },
  },
});
const A = Number(args.accounts);
const D = Math.floor(A / 10); // duplicated emails: user1..userD get a second row, every third a third
const CLIENTS = Number(args.clients);
const SECONDS = Number(args.seconds);
const PACE = Number(args.pace);
const log = (s) => process.stderr.write(`${s}\n`);

const { urlFor, admin, version, recreate, stop } = await benchServer(args['database-url']);
const deadlockTimeout = (await admin.query('show deadlock_timeout')).rows[0].deadlock_timeout;

// ── data ────────────────────────────────────────────────────────────────────────────────────────
// Accounts 1..A have distinct emails; A+1..A+D repeat user1..userD, and then every third of those
// once more. Rows 1..D survive a merge (lowest id); every account has three orders.
log(`generating: ${A.toLocaleString('en-US')} accounts, ${D.toLocaleString('en-US')} duplicated emails`);
await recreate('live_template');
{
  const c = new pg.Client(urlFor('live_template'));
  await c.connect();
  await c.query(`
    create table account (id bigserial primary key, email text not null, balance bigint not null default 0);
    insert into account (email) select 'user' || g || '@example.com' from generate_series(1, ${A}) g;
    insert into account (email) select 'user' || g || '@example.com' from generate_series(1, ${D}) g;
    insert into account (email) select 'user' || g || '@example.com' from generate_series(1, ${D}, 3) g;
    create index on account (email);
    create table orders (id bigserial primary key, account_id bigint not null references account (id),
                         amount int not null, note text);
    insert into orders (account_id, amount)
      select 1 + g % (select count(*) from account), g % 100 from generate_series(0, 3 * (select count(*) from account) - 1) g;
    create index on orders (account_id);`);
  await c.query('vacuum analyze');
  await c.end();
}
const totalAccounts = A + D + Math.ceil(D / 3);
const loserIds = [A + 1, totalAccounts]; // every account above A is a loser
/** An order of account x: orders are account_id = 1 + g % N for g = 0 … 3N−1, id = g + 1. */
const orderOf = (x) => x + totalAccounts * Math.floor(Math.random() * 3);

// ── the application ─────────────────────────────────────────────────────────────────────────────
const pick = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));
/** 60% of the time an account in a duplicate group (survivor or loser), else any account. */
const target = () =>
  Math.random() < 0.6 ? (Math.random() < 0.5 ? pick(1, D) : pick(...loserIds)) : pick(1, totalAccounts);

async function application(db, clients) {
  const stats = { latencies: [], errors: {}, ordersInserted: 0, amountInserted: 0, accountsInserted: 0, window: null };
  let stop = false;
  const record = (ms) => {
    if (stats.window === null || stats.window.on) stats.latencies.push(ms);
  };
  const one = async (c) => {
    const r = Math.random();
    const x = target();
    try {
      const t = performance.now();
      if (r < 0.35) {
        await c.query('begin');
        await c.query("update orders set note = 'app: child first' where id = $1", [orderOf(x)]);
        await c.query('update account set balance = balance + 1 where id = $1', [x]);
        await c.query('commit');
      } else if (r < 0.7) {
        await c.query('begin');
        await c.query('update account set balance = balance + 1 where id = $1', [x]);
        await c.query("update orders set note = 'app: parent first' where id = $1", [orderOf(x)]);
        await c.query('commit');
      } else if (r < 0.85) {
        await c.query('insert into orders (account_id, amount) values ($1, 7)', [pick(...loserIds)]);
        stats.ordersInserted++;
        stats.amountInserted += 7;
      } else if (r < 0.95) {
        await c.query('insert into account (email) values ($1)', [`user${pick(1, A)}@example.com`]);
        stats.accountsInserted++;
      } else {
        await c.query('select * from account where email = $1', [`user${pick(1, A)}@example.com`]);
      }
      record(performance.now() - t);
    } catch (e) {
      await c.query('rollback').catch(() => undefined);
      stats.errors[e.code ?? e.message] = (stats.errors[e.code ?? e.message] ?? 0) + 1;
    }
  };
  const runners = Array.from({ length: clients }, async () => {
    const c = new pg.Client({ connectionString: urlFor(db), application_name: 'app' });
    await c.connect();
    while (!stop) {
      await one(c);
      await new Promise((r) => setTimeout(r, PACE * (0.5 + Math.random())));
    }
    await c.end();
  });
  return {
    stats,
    /** From now on, only what happens until close() counts toward latencies. */
    window() {
      stats.latencies.length = 0;
      stats.errors = {};
      stats.window = { on: true };
    },
    close() {
      if (stats.window) stats.window.on = false;
    },
    async stop() {
      stop = true;
      await Promise.all(runners);
      return stats;
    },
  };
}

function rowdoctor(db, argv) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(
      process.execPath,
      [
        'bin/rowdoctor.js',
        'repair',
        '--duplicates',
        'account(email)',
        '--apply',
        '--database-url',
        urlFor(db),
        '--format',
        'json',
        '--config',
        '/dev/null',
        '--no-discover',
        ...argv,
      ],
      { env: { ...process.env, ROWDOCTOR_REPORT_STATS: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const ms = performance.now() - t;
      if (code === 2) return reject(new Error(`rowdoctor failed:\n${err}`));
      const stats = JSON.parse(/rowdoctor-stats (.*)/.exec(err)?.[1] ?? '{}');
      const notes = err.split('\n').filter((l) => l.startsWith('rowdoctor: ')).length;
      resolve({ ms, code, doc: JSON.parse(out), stats, notes });
    });
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};
const ms = (v) => `${Math.round(v)} ms`;
const secs = (v) => `${(v / 1000).toFixed(1)} s`;
const sleep = (t) => new Promise((r) => setTimeout(r, t));
async function totals(db) {
  const c = new pg.Client(urlFor(db));
  await c.connect();
  const { rows } = await c.query(`
    select (select count(*) from orders)::bigint as orders, (select sum(amount) from orders)::bigint as amount,
           (select count(*) from account)::bigint as accounts,
           (select count(*) from orders o where not exists (select 1 from account a where a.id = o.account_id))::bigint
             as dangling`);
  await c.end();
  return Object.fromEntries(Object.entries(rows[0]).map(([k, v]) => [k, Number(v)]));
}

// Phase 1: the application alone.
log(`phase 1: the application alone, ${SECONDS} s, ${CLIENTS} clients`);
await recreate('live_base', 'live_template');
const before = await totals('live_base');
const base = await application('live_base', CLIENTS);
await sleep(1000);
base.window();
await sleep(SECONDS * 1000);
base.close();
const baseStats = await base.stop();

// Phase 2: the application while rowdoctor repairs.
log('phase 2: the same application while repair --apply runs (default settings)');
await recreate('live_repair', 'live_template');
const app = await application('live_repair', CLIENTS);
await sleep(1000);
app.window();
const repair = await rowdoctor('live_repair', []);
app.close();
await sleep(500);
const appStats = await app.stop();
const after = await totals('live_repair');
const action = repair.doc.actions[0];

// Phase 3: idle throughput, default settings against fixed batches of 1000.
log('phase 3: idle copies, default settings against fixed batches of 1000');
await recreate('live_idle_a', 'live_template');
const idleDefault = await rowdoctor('live_idle_a', []);
await recreate('live_idle_b', 'live_template');
const idleFixed = await rowdoctor('live_idle_b', ['--max-transaction-time', '0', '--batch-size', '1000']);

// Conservation (phase 2): every order and every amount is accounted for; accounts = before + inserted − merged.
const expected = {
  orders: before.orders + appStats.ordersInserted,
  amount: before.amount + appStats.amountInserted,
  accounts: before.accounts + appStats.accountsInserted - action.rowsDeleted,
  dangling: 0,
};
const conserved = Object.keys(expected).every((k) => expected[k] === after[k]);

const errorsOf = (s) =>
  Object.entries(s.errors)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ') || 'none';
const lockErrors = (s) => ['40P01', '55P03', '40001'].reduce((n, k) => n + (s.errors[k] ?? 0), 0);
const p99Base = pct(baseStats.latencies, 99);
const p99Live = pct(appStats.latencies, 99);
const ratio = idleDefault.ms / idleFixed.ms;
const rows = [
  ['application transactions', baseStats.latencies.length, appStats.latencies.length],
  ['p50 latency', ms(pct(baseStats.latencies, 50)), ms(pct(appStats.latencies, 50))],
  ['p99 latency', ms(p99Base), ms(p99Live)],
  ['max latency', ms(pct(baseStats.latencies, 100)), ms(pct(appStats.latencies, 100))],
  ['application errors', errorsOf(baseStats), errorsOf(appStats)],
];
const md = [
  '<!-- live:begin -->',
  `## Live traffic (issue #12) — ${new Date().toISOString().slice(0, 10)}`,
  '',
  `\`npm run bench:live\`: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB; ` +
    `PostgreSQL ${version} (deadlock_timeout ${deadlockTimeout}). ${A.toLocaleString('en-US')} accounts, ` +
    `${action.groups.toLocaleString('en-US')} duplicate groups merged, ${(3 * totalAccounts).toLocaleString('en-US')} orders; ` +
    `${CLIENTS} application clients, one transaction each every ~${PACE} ms (${SECONDS} s baseline).`,
  '',
  '| application | alone | while rowdoctor repairs |',
  '|---|--:|--:|',
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  '',
  '| rowdoctor | |',
  '|---|--:|',
  `| repair --apply next to the application | ${secs(repair.ms)}, ${repair.stats.batches} batches, exit ${repair.code} |`,
  `| rows deleted / child rows re-pointed / skipped | ${action.rowsDeleted} / ${action.childRowsRepointed} / ${action.skipped} |`,
  `| stderr lines (retries, set-asides, skips) | ${repair.notes} |`,
  `| longest write transaction (default settings) | ${ms(repair.stats.longestTransactionMs)} |`,
  `| longest statement | ${ms(repair.stats.longestStatementMs)} |`,
  `| idle: default settings | ${secs(idleDefault.ms)} (${idleDefault.stats.batches} batches, longest transaction ${ms(idleDefault.stats.longestTransactionMs)}) |`,
  `| idle: fixed batches of 1000 (--max-transaction-time 0) | ${secs(idleFixed.ms)} (${idleFixed.stats.batches} batches, longest transaction ${ms(idleFixed.stats.longestTransactionMs)}) |`,
  `| conservation (orders, amounts, accounts, dangling orders) | ${conserved ? 'holds' : `**broken**: expected ${JSON.stringify(expected)}, found ${JSON.stringify(after)}`} |`,
  '',
  '| target | measured | |',
  '|---|---|---|',
  `| 0 application errors caused by rowdoctor (deadlocks, lock timeouts, serialization failures) | ${lockErrors(appStats)} (baseline ${lockErrors(baseStats)}) | ${lockErrors(appStats) <= lockErrors(baseStats) ? 'met' : '**missed**'} |`,
  `| application p99 ≤ baseline p99 + 250 ms | ${ms(p99Live)} against ${ms(p99Base)} + 250 ms | ${p99Live <= p99Base + 250 ? 'met' : '**missed**'} |`,
  `| longest rowdoctor write transaction ≤ 500 ms | ${ms(repair.stats.longestTransactionMs)} | ${repair.stats.longestTransactionMs <= 500 ? 'met' : '**missed**'} |`,
  `| idle throughput within 1.5× of fixed batches of 1000 | ${ratio.toFixed(2)}× | ${ratio <= 1.5 ? 'met' : '**missed**'} |`,
  '<!-- live:end -->',
].join('\n');
process.stdout.write(`${md}\n`);

const file = args.out;
let text;
try {
  text = readFileSync(file, 'utf8');
} catch {
  text = '';
}
const section = /<!-- live:begin -->[\s\S]*<!-- live:end -->/;
writeFileSync(file, section.test(text) ? text.replace(section, md) : `${text.trimEnd()}\n\n${md}\n`);
log(`written to ${file}`);

await stop();
