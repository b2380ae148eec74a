// Damaged data at a chosen scale, in the shape issue #5 describes. Deterministic (no random()).
export async function generate(client, rows, log) {
  const users = Math.max(1000, Math.floor(rows / 10));
  const base = Math.floor(rows * 0.99); // rows 1..base hold distinct tokens (a few NULL); the rest repeat earlier ones
  const steps = [
    [
      'users',
      `create unlogged table users (id bigint primary key, deleted_at timestamptz);
      insert into users select g, case when g % 20 = 0 then timestamptz '2026-01-01' end from generate_series(1, ${users}) g`,
    ],
    [
      'submissions',
      `create unlogged table submissions (id bigint primary key, invite_token text, user_id bigint, created_at timestamptz not null);
      insert into submissions
      select g, case when g <= ${base} then (case when g % 500 = 0 then null else 'tok-' || g end)
                     else 'tok-' || (1 + (g::bigint * 7919) % ${Math.floor(base / 2)}) end,
             1 + (g::bigint * 31) % ${users}, timestamptz '2026-01-01' + g * interval '1 second'
        from generate_series(1, ${rows}) g`,
    ],
    [
      'submission_files',
      `create unlogged table submission_files (id bigserial primary key, submission_id bigint not null references submissions (id));
      insert into submission_files (submission_id) select 1 + (g::bigint * 104729) % ${rows} from generate_series(1, ${Math.floor(rows / 20)}) g;
      insert into submission_files (submission_id) select g from generate_series(${base + 1}, ${rows}, 2) g;
      create index on submission_files (submission_id)`,
    ],
    [
      'tokens',
      `create unlogged table tokens (id bigint primary key, user_id bigint, external_id text, deleted_at timestamptz);
      insert into tokens select g, case when g % 97 = 0 then null else 1 + (g::bigint * 7) % ${Math.floor(users * 1.05)} end,
             'ext-' || (case when g % 100 = 0 then g - 1 else g end), case when g % 50 = 0 then now() end
        from generate_series(1, ${Math.floor(rows / 2)}) g`,
    ],
    ['analyze', 'analyze'],
  ];
  for (const [name, sql] of steps) {
    const t = performance.now();
    await client.query(sql);
    log(`  generated ${name} in ${((performance.now() - t) / 1000).toFixed(1)}s`);
  }
}
