import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { expectNothingLost, ledger, type Ledger } from '../support/ledger.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * Workflow 2 merges into 1; its job 2 collides with job 1 (unique (workflow_id, name)) and merges
 * into it, while its job 5 moves. Edge 1 goes from job 2 to job 5 by composite keys sharing
 * workflow_id: re-pointing its source to job 1 moves its workflow_id, which its target key only
 * allows once job 5 has moved too — so jobs, edges and labels move in one statement.
 */
const FIXTURE = `
  create table workflow (id int primary key, name text not null);
  insert into workflow values (1, 'w'), (2, 'w'), (3, 'v'), (4, 'v');
  create table job (id int primary key, workflow_id int not null references workflow, name text not null,
                    unique (id, workflow_id), unique (workflow_id, name));
  insert into job values (1, 1, 'build'), (2, 2, 'build'), (5, 2, 'deploy'), (3, 3, 'lint'), (4, 4, 'test');
  create table edge (id int primary key, workflow_id int not null, source_job_id int not null,
                     target_job_id int not null, unique (id, workflow_id),
                     foreign key (source_job_id, workflow_id) references job (id, workflow_id),
                     foreign key (target_job_id, workflow_id) references job (id, workflow_id) on update cascade);
  insert into edge values (1, 2, 2, 5), (2, 2, 5, 2), (3, 4, 4, 4);
  create table edge_label (id int primary key, edge_id int not null, workflow_id int not null, label int not null,
                           foreign key (edge_id, workflow_id) references edge (id, workflow_id));
  insert into edge_label values (1, 1, 2, 10), (2, 2, 2, 20);
`;
const CONFIG = 'rules:\n  - { check: duplicate-rows, table: workflow, key: [name], repair: merge }\n';

let db: TestDb;
let config: string;
let before: Ledger;
let sums: Record<string, string>;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
  before = await ledger(db);
  sums = await db.checksums();
});
afterAll(() => db.drop());

const repair = async (code: number, ...args: string[]) => {
  const res = await repairJson(db.url, config, ...args);
  expect(res.code, res.stderr).toBe(code);
  return res.doc;
};

describe('jobs that collide while edges reference them by keys sharing the re-pointed column', () => {
  it('merge, with no foreign key violated at any statement boundary, as the dry run said', async () => {
    const dry = await repair(1); // 1: damage found, nothing changed
    expect(await db.checksums()).toEqual(sums);
    expect(dry.actions[0]).toMatchObject({ groups: 2, skipped: 0, rowsDeleted: 2, childRowsMerged: 1 });
    const done = await repair(0, '--apply'); // 0: every group repaired
    expect(done.actions).toEqual(dry.actions);
    expect(await db.query('select id, workflow_id from job order by id')).toEqual([
      { id: 1, workflow_id: 1 },
      { id: 3, workflow_id: 3 },
      { id: 4, workflow_id: 3 },
      { id: 5, workflow_id: 1 },
    ]);
    expect(await db.query('select id, workflow_id, source_job_id, target_job_id from edge order by id')).toEqual([
      { id: 1, workflow_id: 1, source_job_id: 1, target_job_id: 5 },
      { id: 2, workflow_id: 1, source_job_id: 5, target_job_id: 1 },
      { id: 3, workflow_id: 3, source_job_id: 4, target_job_id: 4 },
    ]);
    expect(await db.query('select id, edge_id, workflow_id from edge_label order by id')).toEqual([
      { id: 1, edge_id: 1, workflow_id: 1 },
      { id: 2, edge_id: 2, workflow_id: 1 },
    ]);
    await expectNothingLost(db, before, [done.runId]);
    // the server's keys, re-validated from scratch
    await db.exec(`
      alter table edge add foreign key (source_job_id, workflow_id) references job (id, workflow_id);
      alter table edge add foreign key (target_job_id, workflow_id) references job (id, workflow_id);
      alter table edge_label add foreign key (edge_id, workflow_id) references edge (id, workflow_id);
      create unique index on job (workflow_id, name);`);
    const undo = await runCli(['undo', done.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(sums)) expect(now[t], t).toBe(sum);
  });
});
