import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { until } from '../support/poll.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * Most production servers run with jit = on. rowdoctor's statements are short (one batch, a few
 * rows) but are costed over tables the planner knows little about, and above jit_above_cost the
 * server compiles hundreds of functions per statement: minutes of an undo spent compiling. Every
 * rowdoctor session turns JIT off, and analyses the backup tables it reads.
 *
 * The embedded server is built without LLVM, so EXPLAIN would never show JIT here; instead the
 * sessions themselves report their setting: an ENABLE ALWAYS trigger on rowdoctor's own runs table
 * (it fires in undo's replica mode too) records what `jit` is in the transaction that writes it.
 */
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table org (id int primary key, name text not null);
    insert into org select i, 'o' || (i % 20) from generate_series(1, 60) i;
    create table team (id int primary key, org_id int not null references org);
    insert into team select i, 1 + i % 60 from generate_series(1, 200) i;
    create table seen (command text, jit text);
    create function note_jit() returns trigger language plpgsql as $$
      begin
        insert into public.seen values (new.command, current_setting('jit'));
        return new;
      end $$;
  `);
  await db.exec(`alter database ${db.name} set jit = on`);
  await db.exec(`alter database ${db.name} set jit_above_cost = 0`);
  await db.exec(`alter database ${db.name} set jit_inline_above_cost = 0`);
  await db.exec(`alter database ${db.name} set jit_optimize_above_cost = 0`);
});
afterAll(() => db.drop());

/** The trigger on rowdoctor_backup.runs, which the first repair creates. */
async function watchRuns(): Promise<void> {
  await db.exec(`
    create trigger note_jit before insert or update on rowdoctor_backup.runs
       for each row execute function note_jit();
    alter table rowdoctor_backup.runs enable always trigger note_jit;`);
}

describe('on a server with jit = on and jit_above_cost = 0', () => {
  it('repair and undo run every statement with JIT off, and analyse the backup tables undo reads', async () => {
    const config = writeConfig('rules:\n  - { check: duplicate-rows, table: org, key: [name], repair: merge }\n');
    // A first repair of nothing creates rowdoctor_backup and its runs table.
    const first = await repairJson(db.url, config, '--apply', '--only', 'orphaned-rows');
    expect(first.code, first.stderr).toBe(0);
    await watchRuns();
    // A fresh session of the test's own sees the database's settings: the trigger would record 'on'.
    expect(await db.query(`select current_setting('jit') as jit`)).toEqual([{ jit: 'on' }]);

    const repair = await repairJson(db.url, config, '--apply', '--batch-size', '10');
    expect(repair.code, repair.stderr).toBe(0);
    const undo = await runCli(['undo', repair.doc.runId, '--database-url', db.url, '--apply', '--batch-size', '50']);
    expect(undo.code, undo.stdout + undo.stderr).toBe(0);

    const seen = await db.query<{ command: string; jit: string }>('select command, jit from seen');
    expect(new Set(seen.map((s) => s.command))).toEqual(new Set(['repair', 'undo']));
    expect(seen.filter((s) => s.jit !== 'off')).toEqual([]);

    // Statistics reach the shared counters when the sessions end; every backup table of the run was analysed.
    const analysed = () =>
      db.query<{ relname: string; n: number }>(`
        select s.relname, s.analyze_count::int as n
          from pg_stat_all_tables s
          join rowdoctor_backup.tables b on b.backup_table = s.relname
         where s.schemaname = 'rowdoctor_backup'
         order by 1`);
    await until('both backup tables of the run show a manual ANALYZE', async () => {
      const rows = await analysed();
      return rows.length === 2 && rows.every((r) => r.n > 0);
    });
  });
});
