import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runCli } from '../support/run.js';

let db: TestDb;
afterEach(() => db.drop());

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

/** Merge tags by name, then ask undo: its dry run must name the table it cannot match rows of, and --apply refuse. */
async function mergeThenUndo(afterRepair?: () => Promise<void>): Promise<{
  dry: { inexact: { table: string; reason: string }[] };
  code: number | null;
}> {
  const repair = await runCli([
    'repair',
    '--database-url',
    db.url,
    '--duplicates',
    'tags(name)',
    '--no-discover',
    '--apply',
    '--format',
    'json',
  ]);
  expect(repair.code, repair.stderr).toBe(0);
  const { runId } = JSON.parse(repair.stdout) as { runId: string };
  await afterRepair?.();
  const repaired = userTables(await db.checksums());
  const dry = await runCli(['undo', runId, '--database-url', db.url, '--format', 'json']);
  expect(dry.code).toBe(1);
  const applied = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
  expect(applied.stderr).toMatch(/cannot restore every row bit for bit[\s\S]*restore them by hand/);
  expect(userTables(await db.checksums())).toEqual(repaired); // nothing changed
  return { dry: JSON.parse(dry.stdout) as { inexact: { table: string; reason: string }[] }, code: applied.code };
}

describe('undo never reverts rows it cannot find by key', () => {
  // Runs of this version record the row version an update left (undo-nokey-versions.test.ts): undo finds the row by it.
  it('a join table without a primary key, backed up by an earlier version: named in the dry run, refused on --apply', async () => {
    db = await freshDatabase(`
      create table tags (id int primary key, name text not null);
      insert into tags values (1, 'red'), (2, 'blue'), (3, 'red'), (4, 'green');
      create table posts_tags (post_id int not null, tag_id int not null references tags (id));
      insert into posts_tags values (1, 3), (1, 2), (1, 4), (2, 1);
    `);
    const { dry, code } = await mergeThenUndo(async () => {
      const [{ backup }] = (await db.query(
        `select backup_table as backup from rowdoctor_backup.tables where table_name = 'posts_tags'`,
      )) as [{ backup: string }];
      await db.exec(`update rowdoctor_backup."${backup}" set _rd_xmin = null`);
    });
    expect(code).toBe(2);
    expect(dry.inexact).toEqual([
      expect.objectContaining({ table: 'public.posts_tags', reason: expect.stringMatching(/no primary key/) }),
    ]);
    expect(await db.query('select post_id, tag_id from posts_tags order by 1, 2')).toEqual([
      { post_id: 1, tag_id: 1 },
      { post_id: 1, tag_id: 2 },
      { post_id: 1, tag_id: 4 },
      { post_id: 2, tag_id: 1 },
    ]);
  });

  // Backups written before the key an update gives a row was recorded (test/integration/undo-join-keys.test.ts
  // shows undo restoring such rows today): no key after, no after-image.
  it('a re-pointed key inside the primary key, backed up by an earlier version: named in the dry run, refused on --apply', async () => {
    db = await freshDatabase(`
      create table tags (id int primary key, name text not null);
      insert into tags values (1, 'red'), (2, 'blue'), (3, 'red');
      create table "PostTag" ("postId" int not null, "tagId" int not null references tags (id), n int,
                              primary key ("postId", "tagId"));
      insert into "PostTag" values (1, 3, 10), (2, 2, 20);
    `);
    const { dry, code } = await mergeThenUndo(async () => {
      const [{ backup }] = (await db.query(
        `select backup_table as backup from rowdoctor_backup.tables where table_name = 'PostTag'`,
      )) as [{ backup: string }];
      await db.exec(`update rowdoctor_backup."${backup}" set _rd_key = null, _rd_after = null where _rd_op = 'update'`);
    });
    expect(code).toBe(2);
    expect(dry.inexact).toEqual([
      expect.objectContaining({
        table: 'public.PostTag',
        reason: expect.stringMatching(/primary-key column\(s\) tagId of 1 row/),
      }),
    ]);
  });
});

describe('what undo cannot take back, it says before it starts', () => {
  it("an AFTER trigger's side effects elsewhere: a warning naming the trigger, in the dry run and on stderr", async () => {
    db = await freshDatabase(`
      create table posts (id int primary key, comments_count int not null default 0);
      create table comments (id int primary key, post_id int references posts (id), body text);
      insert into posts values (1, 0), (2, 0);
      create function count_comments() returns trigger language plpgsql as $$
        begin
          update posts p set comments_count = (select count(*) from comments c where c.post_id = p.id);
          return null;
        end $$;
      create trigger comments_count after insert or update or delete on comments
        for each statement execute function count_comments();
      insert into comments values (1, 1, 'x'), (2, 1, 'x'), (3, 2, 'y');
    `);
    const repair = await runCli([
      'repair',
      '--database-url',
      db.url,
      '--duplicates',
      'comments(post_id, body)',
      '--no-discover',
      '--apply',
    ]);
    expect(repair.code, repair.stderr).toBe(0);
    const { run_id: runId } = (await db.query<{ run_id: string }>('select run_id from rowdoctor_backup.runs'))[0]!;
    const dry = await runCli(['undo', runId, '--database-url', db.url, '--format', 'json']);
    expect(JSON.parse(dry.stdout)).toMatchObject({
      warnings: [
        {
          code: 'trigger',
          table: 'public.comments',
          message: expect.stringMatching(/trigger comments_count on public\.comments fired .* not undone/),
        },
      ],
    });
    expect(dry.stderr).toMatch(/warning: trigger comments_count/);
  });
});

describe('a composite foreign key that shares a column with the primary key (multi-tenant)', () => {
  it('re-points rows without changing their key: undo restores every table bit for bit', async () => {
    db = await freshDatabase(`
      create table org (tenant_id int, id int, name text not null, primary key (tenant_id, id));
      insert into org values (1, 1, 'acme'), (1, 2, 'acme'), (2, 1, 'acme');
      create table project (tenant_id int, id int, org_id int not null, primary key (tenant_id, id),
                            foreign key (tenant_id, org_id) references org);
      insert into project values (1, 10, 2), (1, 11, 1), (2, 10, 1);
    `);
    const original = userTables(await db.checksums());
    const args = ['--database-url', db.url, '--duplicates', 'org(tenant_id,name)', '--no-discover', '--apply'];
    const repair = await runCli(['repair', ...args, '--format', 'json']);
    expect(repair.code, repair.stderr).toBe(0);
    const { runId } = JSON.parse(repair.stdout) as { runId: string };
    expect(await db.query('select tenant_id, id, org_id from project order by 1, 2')).toEqual([
      { tenant_id: 1, id: 10, org_id: 1 },
      { tenant_id: 1, id: 11, org_id: 1 },
      { tenant_id: 2, id: 10, org_id: 1 },
    ]);
    const undo = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(undo.code, undo.stdout + undo.stderr).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });
});
