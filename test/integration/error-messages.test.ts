import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePgError, isPgError } from '../../src/errors.js';
import { freshDatabase, type TestDb } from '../support/db.js';

/** Messages built from the server's errors read as sentences: never `..` where two are joined. */
let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(`
    create table t (id int primary key);
    insert into t values (1);
    create function boom() returns void language plpgsql as $$
      begin raise exception 'no way.' using detail = 'It was refused.', hint = 'Try again later.'; end $$;
  `);
});
afterAll(() => db.drop());

async function serverError(statement: string): Promise<Error> {
  try {
    await db.exec(statement);
  } catch (e) {
    if (isPgError(e)) return e;
    throw e;
  }
  throw new Error(`${statement} did not fail`);
}

describe('describePgError', () => {
  it('joins message, detail and hint, and what follows it, with single periods', async () => {
    const unique = await serverError('insert into t values (1)');
    expect((unique as { detail?: string }).detail).toMatch(/already exists\.$/);
    const text = `restoring would violate a unique key: ${describePgError(unique)}. Nothing was changed.`;
    expect(text).toMatch(/\(SQLSTATE 23505\)\. Detail: Key \(id\)=\(1\) already exists\. Nothing was changed\.$/);

    const raised = describePgError(await serverError('select boom()'));
    expect(raised).toBe('no way (SQLSTATE P0001). Detail: It was refused. Hint: Try again later');
    expect(`${raised}.`).not.toMatch(/\.\./);
  });
});
