import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats, type TableStats } from '../support/conservation.js';
import { freshDatabase, serverRefusal, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

/**
 * One batch of six duplicate groups; four of them the server refuses to merge — a CHECK constraint,
 * an exclusion constraint, a trigger that raises, an ON UPDATE RESTRICT key — and each of those is
 * skipped alone with the constraint's name and SQLSTATE, while the two others merge.
 */
const FIXTURE = `
  create table users (id int primary key, email text not null);
  insert into users values (1, 'chk'), (2, 'chk'), (3, 'excl'), (4, 'excl'), (5, 'trg'), (6, 'trg'),
                           (7, 'rst'), (8, 'rst'), (9, 'ok'), (10, 'ok'), (11, 'ok2'), (12, 'ok2');
  create table review (id int primary key, owner_id int not null references users, reviewer_id int not null references users,
                       constraint review_not_self check (owner_id <> reviewer_id));
  insert into review values (1, 1, 2), (2, 9, 11), (3, 10, 11);               -- 2 → 1 breaks the CHECK
  create table booking (id int primary key, user_id int not null references users, during int4range not null,
    constraint booking_no_overlap exclude using gist (int4range(user_id, user_id, '[]') with &&, during with &&));
  insert into booking values (1, 3, '[1,5)'), (2, 4, '[3,8)'), (3, 9, '[1,5)'), (4, 10, '[6,9)');  -- 4 → 3 overlaps
  create table note (id int primary key, user_id int not null references users, body text);
  create function note_frozen() returns trigger language plpgsql as $$
    begin if old.user_id = 6 then raise exception 'notes of user 6 are frozen'; end if; return new; end $$;
  create trigger note_frozen before update on note for each row execute function note_frozen();
  insert into note values (1, 6, 'x'), (2, 10, 'y');
  create table job (id int primary key, user_id int not null references users, unique (id, user_id));
  create table job_edge (id int primary key, job_id int not null, user_id int not null,
                         foreign key (job_id, user_id) references job (id, user_id) on update restrict);
  insert into job values (1, 8), (2, 12);
  insert into job_edge values (1, 1, 8);                                       -- job 1 cannot move to user 7
`;
const CONFIG = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n';

let db: TestDb;
let config: string;
let before: TableStats;
let sums: Record<string, string>;
/** What the server raises for moving job 1 off user 8 (23001 or 23503, by major). */
let restrictCode: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
  before = await tableStats(db);
  sums = await db.checksums();
  restrictCode = (await serverRefusal(db, 'update job set user_id = 7 where id = 1')).code;
});
afterAll(() => db.drop());

const repair = (...args: string[]) =>
  runCli(['repair', '--database-url', db.url, '--config', config, '--no-discover', ...args]);

describe('a group the server refuses to merge is skipped alone', () => {
  let runId: string;
  it('the dry run foresees every refusal but the trigger’s (it plans on copies with the constraints), changing nothing', async () => {
    const res = await repair();
    expect(res.code, res.stderr).toBe(1);
    expect(res.stdout).toMatch(/check constraint review_not_self on public\.review \(23514\)/);
    expect(res.stdout).toMatch(/exclusion constraint booking_no_overlap on public\.booking \(23P01\)/);
    expect(res.stdout).toContain(`key job_edge_job_id_user_id_fkey on public.job_edge (${restrictCode})`);
    expect(res.stdout).not.toMatch(/rd_shadow/);
    const json = await repair('--format', 'json');
    expect(JSON.parse(json.stdout).actions[0]).toMatchObject({
      groups: 6,
      skipped: 3,
      rowsDeleted: 3,
      childRowsRepointed: 5,
      childRowsMerged: 0,
    });
    expect(await db.checksums()).toEqual(sums);
  });

  it('--apply merges the two mergeable groups and skips each refused one with its constraint and SQLSTATE', async () => {
    const res = await repair('--apply');
    expect(res.code, res.stderr).toBe(1);
    expect(res.stdout).toMatch(/check constraint review_not_self on public\.review \(23514\)/);
    expect(res.stdout).toMatch(/exclusion constraint booking_no_overlap on public\.booking \(23P01\)/);
    expect(res.stdout).toMatch(
      /notes of user 6 are frozen on public\.note \(P0001\)|notes of user 6 are frozen \(P0001\)/,
    );
    expect(res.stdout).toContain(`key job_edge_job_id_user_id_fkey on public.job_edge (${restrictCode})`);
    // each refused group under the table, with its key, its ids and its reason
    expect(res.stdout).toMatch(/Skipped groups, left as they were:\n {2}public\.users \(.+\): .+ — \S/);
    expect(res.stdout.match(/^ {2}public\.users \(.+\): .+ — .+\(2[3P]\w+\)$/gm)?.length).toBeGreaterThanOrEqual(3);
    const [run] = await db.query<{ run_id: string; counts: Record<string, number>[] }>(
      'select run_id, counts from rowdoctor_backup.runs',
    );
    runId = run!.run_id;
    expect(run!.counts[0]).toMatchObject({
      groups: 6,
      skipped: 4,
      rowsDeleted: 2,
      childRowsRepointed: 4,
      childRowsMerged: 0,
    });
    expect(await db.query('select id from users order by id')).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 11].map((id) => ({ id })),
    );
    // conservation: only users 10 and 12 are gone; every child row is still there with its values
    const after = await tableStats(db);
    expect(after['public.users']).toEqual({ rows: 10, sums: { id: String(78 - 22) } });
    for (const t of ['public.review', 'public.booking', 'public.note', 'public.job', 'public.job_edge'])
      expect(after[t]!.rows, t).toBe(before[t]!.rows);
    expect(after['public.review']!.sums.owner_id).toBe(String(1 + 9 + 9));
    expect(after['public.job_edge']).toEqual(before['public.job_edge']);
    // the server's constraints still hold
    await db.exec('alter table review add constraint review_not_self_again check (owner_id <> reviewer_id)');
    await db.exec('alter table job_edge add foreign key (job_id, user_id) references job (id, user_id)');
  });

  it('undo --apply restores every table bit for bit', async () => {
    await db.exec('alter table review drop constraint review_not_self_again');
    await db.exec('alter table job_edge drop constraint job_edge_job_id_user_id_fkey1');
    const res = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(res.code, res.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(sums)) expect(now[t], t).toBe(sum);
  });
});
