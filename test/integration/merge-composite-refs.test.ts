import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, serverRefusal, type TestDb } from '../support/db.js';
import { runCli, writeConfig } from '../support/run.js';

/**
 * A workflow merge re-points jobs.workflow_id, which edges(source_job_id, workflow_id) and
 * edges(target_job_id, workflow_id) reference (NO ACTION and ON UPDATE CASCADE), and labels
 * reference the edges the same way: all of them move in one statement, so no foreign key is
 * violated at any statement boundary. A key ON UPDATE RESTRICT makes its group impossible: that
 * group is skipped with the key as its reason, the others merge.
 */
const FIXTURE = `
  create table workflow (id int primary key, name text not null);
  insert into workflow values (1, 'w'), (2, 'w'), (3, 'v'), (4, 'v'), (5, 'u'), (6, 'u');
  create table job (id int primary key, workflow_id int not null references workflow, name text not null,
                    unique (id, workflow_id));
  insert into job values (1, 1, 'build'), (2, 2, 'test'), (5, 2, 'deploy'), (7, 4, 'pinned'), (8, 6, 'lint');
  create table edge (id int primary key, workflow_id int not null references workflow,
                     source_job_id int not null, target_job_id int not null, unique (id, workflow_id),
                     foreign key (source_job_id, workflow_id) references job (id, workflow_id),
                     foreign key (target_job_id, workflow_id) references job (id, workflow_id) on update cascade);
  insert into edge values (1, 2, 2, 5), (2, 2, 5, 2), (3, 1, 1, 1);
  create table edge_label (id int primary key, edge_id int not null, workflow_id int not null, label int not null,
                           foreign key (edge_id, workflow_id) references edge (id, workflow_id));
  insert into edge_label values (1, 1, 2, 10), (2, 3, 1, 20);
  create table pin (id int primary key, job_id int not null, workflow_id int not null,
                    constraint pin_job foreign key (job_id, workflow_id) references job (id, workflow_id) on update restrict);
  insert into pin values (1, 7, 4);
`;
const CONFIG = 'rules:\n  - { check: duplicate-rows, table: workflow, key: [name], repair: merge }\n';

let db: TestDb;
let config: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
});
afterAll(() => db.drop());

const repair = async (...args: string[]) => {
  const res = await runCli(['repair', '--database-url', db.url, '--config', config, '--no-discover', ...args]);
  expect(res.code, res.stderr).toBe(1);
  return res.stdout;
};

describe('composite references that share the re-pointed column', () => {
  it('move with it in one statement; an ON UPDATE RESTRICT key skips its group alone', async () => {
    const original = await db.checksums();
    const before = await tableStats(db);
    const dry = JSON.parse(await repair('--format', 'json'));
    expect(await db.checksums()).toEqual(original);
    // w: jobs 2 and 5, edges 1 and 2, label 1 move to workflow 1; u: job 8; v: refused by pin_job
    expect(dry.actions[0]).toMatchObject({ groups: 3, skipped: 1, rowsDeleted: 2, childRowsRepointed: 6 });
    // the reason is what the server raises for moving the pinned job (its SQLSTATE differs between majors)
    const refused = await serverRefusal(db, 'update job set workflow_id = 3 where id = 7');
    expect(refused.constraint).toBe('pin_job');
    const text = await repair('--apply');
    expect(text).toContain(`key pin_job on public.pin (${refused.code})`);
    const [run] = await db.query<{ run_id: string; counts: Record<string, number>[] }>(
      'select run_id, counts from rowdoctor_backup.runs',
    );
    expect(run!.counts[0]).toMatchObject({ groups: 3, skipped: 1, rowsDeleted: 2, childRowsRepointed: 6 });

    expect(await db.query('select id, workflow_id from job order by id')).toEqual([
      { id: 1, workflow_id: 1 },
      { id: 2, workflow_id: 1 },
      { id: 5, workflow_id: 1 },
      { id: 7, workflow_id: 4 },
      { id: 8, workflow_id: 5 },
    ]);
    expect(await db.query('select id, workflow_id, source_job_id, target_job_id from edge order by id')).toEqual([
      { id: 1, workflow_id: 1, source_job_id: 2, target_job_id: 5 },
      { id: 2, workflow_id: 1, source_job_id: 5, target_job_id: 2 },
      { id: 3, workflow_id: 1, source_job_id: 1, target_job_id: 1 },
    ]);
    expect(await db.query('select id, edge_id, workflow_id from edge_label order by id')).toEqual([
      { id: 1, edge_id: 1, workflow_id: 1 },
      { id: 2, edge_id: 3, workflow_id: 1 },
    ]);
    // conservation: only workflows 2 and 6 are gone; ids and labels unchanged
    const after = await tableStats(db);
    expect(after['public.workflow']!.rows).toBe(4);
    for (const t of ['public.job', 'public.edge', 'public.edge_label', 'public.pin']) {
      expect(after[t]!.rows, t).toBe(before[t]!.rows);
      expect(after[t]!.sums.id, t).toBe(before[t]!.sums.id);
    }
    // the server's foreign keys: re-validated from scratch
    await db.exec(`
      alter table edge_label add foreign key (edge_id, workflow_id) references edge (id, workflow_id) not valid;
      alter table edge add foreign key (source_job_id, workflow_id) references job (id, workflow_id) not valid;
      alter table edge add foreign key (target_job_id, workflow_id) references job (id, workflow_id) not valid;`);
    const fks = await db.query<{ conname: string }>(
      "select conname from pg_constraint where contype = 'f' and not convalidated",
    );
    for (const { conname } of fks) {
      const [{ t }] = (await db.query<{ t: string }>(
        `select conrelid::regclass::text as t from pg_constraint where conname = '${conname}'`,
      )) as [{ t: string }];
      await db.exec(`alter table ${t} validate constraint ${conname}; alter table ${t} drop constraint ${conname}`);
    }

    const undo = await runCli(['undo', run!.run_id, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(original)) expect(now[t], t).toBe(sum);
  });
});
