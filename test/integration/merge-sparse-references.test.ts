import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { repairJson, runCli, writeConfig } from '../support/run.js';

/**
 * A table with many references (MusicBrainz's artist has dozens) whose duplicate rows are named
 * through few of them: a batch plans only the references that have rows naming its losers, so its
 * transaction — and the row locks an application waits for — is not held open planning the rest.
 */
const FIXTURE = `
  create table artist (id int primary key, name text not null);
  insert into artist values (1, 'X'), (2, 'X'), (3, 'Y');
  create table credit (id int primary key, artist_id int not null references artist, k int not null, unique (artist_id, k));
  insert into credit values (1, 1, 1), (2, 2, 1), (3, 2, 2);
  create table rating (id int primary key, artist_id int not null references artist, k int not null, unique (artist_id, k));
  insert into rating values (1, 3, 1), (2, 1, 1);
`;

let db: TestDb;
let config: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  config = writeConfig('rules:\n  - { check: duplicate-rows, table: artist, key: [name] }\n');
});
afterAll(() => db.drop());

describe('a merge through few of many references', () => {
  it('plans and writes only the references that name a loser', async () => {
    const res = await runCli(['repair', '--database-url', db.url, '--config', config, '--no-discover', '--sql']);
    expect(res.code, res.stderr).toBe(1);
    // credit names artist 2: re-pointed and merged; rating names only 1 and 3: not a statement about it
    expect(res.stdout).toMatch(/update "public"\."credit"/);
    expect(res.stdout).not.toMatch(/"public"\."rating"/);
    const dry = await repairJson(db.url, config);
    const applied = await repairJson(db.url, config, '--apply');
    expect(applied.doc.actions).toEqual(dry.doc.actions);
    expect(applied.doc.actions[0]).toMatchObject({ rowsDeleted: 1, childRowsRepointed: 1, childRowsMerged: 1 });
    expect(await db.query('select id, artist_id from rating order by id')).toEqual([
      { id: 1, artist_id: 3 },
      { id: 2, artist_id: 1 },
    ]);
  });
});
