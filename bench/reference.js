// The SQL a careful person (or a peer tool) writes by hand, for the same answers.

export const dbtDuplicates = `select count(*) as groups, coalesce(sum(n - 1), 0) as rows
  from (select invite_token, count(*) as n from submissions where invite_token is not null
        group by invite_token having count(*) > 1) d`;

export const antiJoinOrphans = `select count(*) as rows from tokens t
  where t.user_id is not null and t.deleted_at is null
    and not exists (select 1 from users u where u.id = t.user_id and u.deleted_at is null)`;

const map = `create temp table map as
  select id as loser, first_value(id) over (partition by invite_token order by id) as survivor
    from submissions where invite_token in (select invite_token from submissions where invite_token is not null group by 1 having count(*) > 1)`;

/** Temp map with a primary key, ANALYZE, then keyset batches of 10k, each its own transaction. */
export async function batchedRepair(client) {
  await client.query(map);
  await client.query('delete from map where loser = survivor');
  await client.query('alter table map add primary key (loser)');
  await client.query('analyze map');
  let last = -1;
  let deleted = 0;
  for (;;) {
    const r = await client.query(
      'select max(loser) as hi, count(*) as n from (select loser from map where loser > $1 order by loser limit 10000) b',
      [last],
    );
    if (!Number(r.rows[0].n)) break;
    const hi = r.rows[0].hi;
    await client.query('begin');
    await client.query(
      'update submission_files f set submission_id = m.survivor from map m where f.submission_id = m.loser and m.loser > $1 and m.loser <= $2',
      [last, hi],
    );
    deleted += (
      await client.query(
        'delete from submissions s using map m where s.id = m.loser and m.loser > $1 and m.loser <= $2',
        [last, hi],
      )
    ).rowCount;
    await client.query('commit');
    last = hi;
  }
  return deleted;
}

/** The same in one UPDATE and one DELETE. */
export async function oneStatementRepair(client) {
  await client.query(map);
  await client.query('delete from map where loser = survivor');
  await client.query(
    'update submission_files f set submission_id = m.survivor from map m where f.submission_id = m.loser',
  );
  return (await client.query('delete from submissions s using map m where s.id = m.loser')).rowCount;
}

/**
 * As ORM mergers do: one UPDATE per child, one DELETE per loser. The loop is timed on `sample`
 * losers and extrapolated; finding the losers (the same map as above) is timed in full, since
 * every variant, rowdoctor included, has to find them.
 */
export async function perRowRepair(client, sample) {
  const started = performance.now();
  await client.query(map);
  await client.query('delete from map where loser = survivor');
  const findMs = performance.now() - started;
  const total = Number((await client.query('select count(*) as n from map')).rows[0].n);
  const losers = (await client.query('select loser, survivor from map order by loser limit $1', [sample])).rows;
  const t = performance.now();
  for (const { loser, survivor } of losers) {
    const children = (await client.query('select id from submission_files where submission_id = $1', [loser])).rows;
    for (const c of children)
      await client.query('update submission_files set submission_id = $1 where id = $2', [survivor, c.id]);
    await client.query('delete from submissions where id = $1', [loser]);
  }
  const ms = performance.now() - t;
  return { total, findMs, sampleMs: ms, extrapolatedMs: findMs + (ms / Math.max(1, losers.length)) * total };
}
