import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * The workflow engine's schema: triggers(id, workflow_id) and workflow_edges(source_trigger_id,
 * workflow_id) → triggers(id, workflow_id). Merging duplicate workflows moves triggers and edges
 * to the survivor together; a copy's trigger that collides with the survivor's (same name) is
 * merged into it, and the edges naming it follow. Each group was skipped whole before (23503 on
 * workflow_edges_source_trigger_id_fkey): one statement moved one table.
 */
const GROUPS = 25;
const FIXTURE = `
  create table workflows (id int primary key, name text not null);
  insert into workflows select g, 'wf' || ((g - 1) % ${GROUPS}) from generate_series(1, ${GROUPS * 2}) g;
  create table triggers (id int primary key, workflow_id int not null references workflows, name text not null,
                         unique (id, workflow_id), unique (workflow_id, name));
  -- each workflow: a trigger 'start' (the copies' collide with the survivor's) and one of its own
  insert into triggers select w.id * 10 + k, w.id, case k when 1 then 'start' else 'own' || w.id end
    from workflows w, generate_series(1, 2) k;
  create table workflow_edges (id int primary key, workflow_id int not null references workflows,
                               source_trigger_id int not null,
                               foreign key (source_trigger_id, workflow_id) references triggers (id, workflow_id));
  insert into workflow_edges select w.id * 10 + k, w.id, w.id * 10 + k from workflows w, generate_series(1, 2) k;
`;
const CONFIG = 'rules:\n  - { check: duplicate-rows, table: workflows, key: [name], repair: merge }\n';

let db: TestDb;
let config: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig(CONFIG);
});
afterAll(() => db.drop());

describe('references that share columns', () => {
  it('merge every workflow group: triggers and edges move together, nothing skipped, keys validate', async () => {
    const original = await db.checksums();
    const before = await tableStats(db);
    const dry = await repairJson(db.url, config);
    expect(dry.code, dry.stderr).toBe(1); // work left: it changed nothing
    expect(await db.checksums()).toEqual(original);
    const apply = await repairJson(db.url, config, '--apply');
    expect(apply.code, apply.stderr).toBe(0);
    // The dry run's counts are what the apply did.
    expect(dry.doc.actions).toEqual(apply.doc.actions);
    expect(apply.doc.actions[0]).toMatchObject({ groups: GROUPS, skipped: 0, rowsDeleted: GROUPS });
    // Every copy's 'start' trigger merged into the survivor's; its own trigger and both edges moved.
    expect(apply.doc.actions[0]!.childRowsMerged).toBe(GROUPS);
    const after = await tableStats(db);
    expect(after['public.workflows']!.rows).toBe(GROUPS);
    expect(after['public.triggers']!.rows).toBe(before['public.triggers']!.rows - GROUPS);
    expect(after['public.workflow_edges']!.rows).toBe(before['public.workflow_edges']!.rows);
    expect(after['public.workflow_edges']!.sums.id).toBe(before['public.workflow_edges']!.sums.id);
    // The server's own word: every foreign key re-validated from scratch.
    const fks = await db.query<{ t: string; fk: string }>(
      `select conrelid::regclass::text as t, conname as fk from pg_constraint where contype = 'f'`,
    );
    for (const { t, fk } of fks) await db.exec(`alter table ${t} drop constraint ${fk}`);
    await db.exec(`
      alter table triggers add foreign key (workflow_id) references workflows;
      alter table workflow_edges add foreign key (workflow_id) references workflows;
      alter table workflow_edges add foreign key (source_trigger_id, workflow_id) references triggers (id, workflow_id);`);
    const undo = await runCli(['undo', apply.doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(original)) expect(now[t], t).toBe(sum);
  });
});
