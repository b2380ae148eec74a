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

/**
 * The same engine with edges between two triggers that have their own unique key
 * (source_trigger_id, target_trigger_id): each copy's 'start' and 'end' triggers merge into the
 * survivor's, so the copy's start → end edge becomes the survivor's own and is merged into it
 * before the edges move (each group was skipped before: 23505 on that key).
 */
const EDGES_FIXTURE = `
  create schema keyed;
  set search_path = keyed;
  create table workflows (id int primary key, name text not null);
  insert into workflows select g, 'wf' || ((g - 1) % ${GROUPS}) from generate_series(1, ${GROUPS * 2}) g;
  create table triggers (id int primary key, workflow_id int not null references workflows, name text not null,
                         unique (id, workflow_id), unique (workflow_id, name));
  -- each workflow: 'start' and 'end' (both collide with the survivor's) and one of its own
  insert into triggers select w.id * 10 + k, w.id, case k when 1 then 'start' when 2 then 'end' else 'own' || w.id end
    from workflows w, generate_series(1, 3) k;
  create table workflow_edges (id int primary key, workflow_id int not null references workflows,
                               source_trigger_id int not null, target_trigger_id int not null,
                               foreign key (source_trigger_id, workflow_id) references triggers (id, workflow_id),
                               foreign key (target_trigger_id, workflow_id) references triggers (id, workflow_id),
                               unique (source_trigger_id, target_trigger_id));
  -- start → end (collides once moved), start → own (moves)
  insert into workflow_edges select w.id * 10 + k, w.id, w.id * 10 + 1, w.id * 10 + 1 + k
    from workflows w, generate_series(1, 2) k;
  reset search_path;
`;

describe('edges with a unique key of their own', () => {
  it('merges the copy edge that becomes the survivor edge, moves the rest, skips nothing', async () => {
    await db.exec(EDGES_FIXTURE);
    const keyed = writeConfig(
      'rules:\n  - { check: duplicate-rows, table: keyed.workflows, key: [name], repair: merge }\n',
    );
    const original = await db.checksums();
    const before = await tableStats(db);
    const dry = await repairJson(db.url, keyed);
    expect(dry.code, dry.stderr).toBe(1);
    expect(await db.checksums()).toEqual(original);
    const apply = await repairJson(db.url, keyed, '--apply');
    expect(apply.code, apply.stderr).toBe(0);
    expect(dry.doc.actions).toEqual(apply.doc.actions);
    // Per group: 'start' and 'end' triggers and the start → end edge merged.
    expect(apply.doc.actions[0]).toMatchObject({ groups: GROUPS, skipped: 0, rowsDeleted: GROUPS });
    expect(apply.doc.actions[0]!.childRowsMerged).toBe(3 * GROUPS);
    const after = await tableStats(db);
    expect(after['keyed.workflows']!.rows).toBe(GROUPS);
    expect(after['keyed.triggers']!.rows).toBe(before['keyed.triggers']!.rows - 2 * GROUPS);
    expect(after['keyed.workflow_edges']!.rows).toBe(before['keyed.workflow_edges']!.rows - GROUPS);
    // The survivors' edges are the ones kept; each copy's start → own edge now starts at the survivor's start.
    const kept = await db.query<{ id: number }>('select id from keyed.workflow_edges order by id');
    expect(kept.map((r) => r.id)).toEqual([
      ...Array.from({ length: GROUPS }, (_, g) => [(g + 1) * 10 + 1, (g + 1) * 10 + 2]).flat(),
      ...Array.from({ length: GROUPS }, (_, g) => (g + 1 + GROUPS) * 10 + 2),
    ]);
    const fks = await db.query<{ t: string; fk: string }>(
      `select conrelid::regclass::text as t, conname as fk from pg_constraint
        where contype = 'f' and connamespace = 'keyed'::regnamespace`,
    );
    for (const { t, fk } of fks) await db.exec(`alter table ${t} drop constraint ${fk}`);
    await db.exec(`
      alter table keyed.triggers add foreign key (workflow_id) references keyed.workflows;
      alter table keyed.workflow_edges add foreign key (workflow_id) references keyed.workflows;
      alter table keyed.workflow_edges add foreign key (source_trigger_id, workflow_id) references keyed.triggers (id, workflow_id);
      alter table keyed.workflow_edges add foreign key (target_trigger_id, workflow_id) references keyed.triggers (id, workflow_id);`);
    const undo = await runCli(['undo', apply.doc.runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stderr).toBe(0);
    const now = await db.checksums();
    for (const [t, sum] of Object.entries(original)) if (t.startsWith('keyed.')) expect(now[t], t).toBe(sum);
  });
});
