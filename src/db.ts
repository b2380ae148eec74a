import pg from 'pg';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  sql,
  type DatabaseConnection,
  type RawBuilder,
  type Transaction,
} from 'kysely';
import { RowdoctorError, describePgError, isPgError } from './errors.js';
import { exactTypes } from './sql/exact-json.js';
import { connectionHint } from './connection/hints.js';
import type { ConnectionTarget } from './connection/resolve.js';

/** The database as tables are unknown until introspected: every query is `sql` with catalog names. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Db = Kysely<any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Tx = Transaction<any>;

/**
 * Every query goes over the extended protocol, even without parameters. The server then refuses a
 * second statement in one query text, so a scope or expression from a config can never smuggle in
 * `; DROP TABLE …` — a guarantee from Postgres itself rather than from our own parsing.
 */
class ExtendedProtocolClient extends pg.Client {
  // pg.Client.query has a dozen overloads; this override forwards whatever it is given.
  /* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-argument */
  override query(config: any, values?: any, callback?: any): any {
    if (typeof config === 'string') {
      const cb: unknown = typeof values === 'function' ? values : callback;
      const params: unknown[] = Array.isArray(values) ? (values as unknown[]) : [];
      return super.query({ text: config, values: params, queryMode: 'extended' } as pg.QueryConfig, cb as any);
    }
    return super.query(config, values, callback);
  }
  /* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-argument */
}

/** Replace the password in anything URL-shaped, so no error message or log ever shows it. */
export function redact(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)([^@\s]*)@/gi, '$1****@');
}

export interface OpenOptions {
  maxConnections?: number;
}

export interface Connection {
  db: Db;
  target: ConnectionTarget;
  close(): Promise<void>;
}

/** Open a pool and prove it works, turning connection failures into errors a person can act on. */
export async function openDatabase(target: ConnectionTarget, options: OpenOptions = {}): Promise<Connection> {
  const pool = new pg.Pool({
    ...target.client, // libpq's settings, resolved in connection/resolve.ts
    max: options.maxConnections ?? 2,
    Client: ExtendedProtocolClient,
    types: exactTypes,
  });
  // An idle client dying (server restart) must not crash the process with an unhandled event; nor
  // may one in use (a standby ends a session for a recovery conflict): its query fails with the error.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  try {
    const client = await pool.connect();
    client.release();
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw connectionError(e, target);
  }
  const db: Db = new Kysely({ dialect: new PostgresDialect({ pool, onCreateConnection: sessionSettings }) });
  return { db, target, close: () => db.destroy() };
}

/**
 * Every session searches pg_catalog first and pg_temp last, whatever the role's search_path says:
 * a user's function can never stand in for a built-in rowdoctor calls, and its work tables (always
 * written `pg_temp.name`, see sql/work-table.ts) can never be shadowed by, or mistaken for, a user's
 * table. The role's own schemas stay in between, so expressions from a config resolve as they do
 * for the application.
 *
 * JIT is off: rowdoctor's statements touch a batch of rows each, but are often costed over tables
 * the planner knows little about (backups, work tables, a freshly loaded schema), and above
 * jit_above_cost a server built with LLVM compiles hundreds of functions per statement — an undo
 * of a few hundred rows took 340–410 s on a default server (jit = on), 2 s with it off.
 */
async function sessionSettings(connection: DatabaseConnection): Promise<void> {
  await connection.executeQuery(
    CompiledQuery.raw(`
      select set_config('search_path', array_to_string(
               array['pg_catalog']
               || array(select quote_ident(s)
                          from unnest(current_schemas(false)) with ordinality as p(s, i)
                         where s <> 'pg_catalog' and s !~ '^pg_temp_'
                         order by i)
               || array['pg_temp'],
             ', '), false),
             set_config('jit', 'off', false)`),
  );
}

function connectionError(e: unknown, target: ConnectionTarget): RowdoctorError {
  if (e instanceof RowdoctorError) return e;
  const where = target.display;
  if (isPgError(e)) {
    const hints: Record<string, string> = {
      '3D000': 'Check the database name in --database-url / DATABASE_URL / PGDATABASE.',
      '28P01': 'Check the user name and password.',
      '28000': 'The server refused this user or host (pg_hba.conf); check the user name and where you connect from.',
      '57P03': 'The server is starting up or shutting down; try again in a moment.',
    };
    return new RowdoctorError(`Could not connect to ${where}: ${describePgError(e)}`, {
      hint: connectionHint(e, target) ?? hints[e.code ?? ''],
      cause: e,
    });
  }
  const err = e as NodeJS.ErrnoException;
  const msg = redact(err?.message ?? String(e));
  const hint =
    connectionHint(e, target) ??
    (err?.code === 'ECONNREFUSED' || err?.code === 'ENOTFOUND' || /timeout/i.test(msg)
      ? 'Is the server running and reachable? ' +
        'Give the database with --database-url, DATABASE_URL or PGHOST/PGPORT/PGDATABASE/PGUSER.'
      : 'Check the connection settings (--database-url, DATABASE_URL or PG* variables).');
  return new RowdoctorError(`Could not connect to ${where}: ${msg}`, { hint, cause: e });
}

/**
 * For the rest of the transaction, let the planner split a whole-table aggregate across parallel
 * workers. A check reads every row once and returns a few; at Gather's default cost per tuple
 * (0.1) the planner sorts 10M keys in one process instead, 13% slower here. The server's own
 * limits on parallel workers still apply.
 */
export async function preferParallel(tx: Tx): Promise<void> {
  await sql`select set_config('parallel_tuple_cost', '0.01', true)`.execute(tx);
}

/**
 * Run `work` in a READ ONLY transaction with a statement timeout: whatever a `where` scope or an
 * expression key says, a scan can never write. REPEATABLE READ: every rule is checked against the
 * same moment of the database, so counts of related rules add up even while writers are busy.
 */
export async function readOnly<T>(
  db: Db,
  statementTimeoutMs: number,
  work: (tx: Tx) => Promise<T>,
  first?: RawBuilder<unknown>,
): Promise<T> {
  let done: { result: T } | null = null;
  let failure: { error: unknown } | null = null;
  try {
    return await db
      .transaction()
      .setIsolationLevel('repeatable read')
      .setAccessMode('read only')
      .execute(async (tx) => {
        try {
          if (first) await first.execute(tx); // e.g. SET TRANSACTION SNAPSHOT, which must come before any query
          await sql`select set_config('statement_timeout', ${String(statementTimeoutMs)}, true)`.execute(tx);
          done = { result: await work(tx) };
          return done.result;
        } catch (e) {
          failure = { error: e };
          throw e;
        }
      });
  } catch (e) {
    // The session is gone (a standby ended it for a recovery conflict): COMMIT or ROLLBACK then
    // fails too. A read-only transaction has nothing to lose: finished work keeps its result, and
    // failed work keeps its own error rather than the rollback's.
    if (done) return (done as { result: T }).result;
    if (failure) throw (failure as { error: unknown }).error;
    throw e;
  }
}

/**
 * readOnly, plus `extra` more read-only transactions that import its snapshot, as pg_dump -j does:
 * work spread over them still reads one consistent database. Each holds a connection of the pool.
 */
export async function readOnlyAlongside<T>(
  db: Db,
  statementTimeoutMs: number,
  extra: number,
  work: (tx: Tx, alongside: Tx[]) => Promise<T>,
): Promise<T> {
  if (extra <= 0) return readOnly(db, statementTimeoutMs, (tx) => work(tx, []));
  return readOnly(db, statementTimeoutMs, async (tx) => {
    const { rows } = await sql<{ id: string }>`select pg_export_snapshot() as id`.execute(tx);
    const id = rows[0]?.id ?? '';
    if (!/^[0-9A-F-]+$/i.test(id)) throw new Error(`internal: unexpected snapshot id ${id}`);
    const open = (n: number, alongside: Tx[]): Promise<T> =>
      n === 0
        ? work(tx, alongside)
        : // SET TRANSACTION SNAPSHOT takes no parameters: the id is inlined, checked above.
          readOnly(
            db,
            statementTimeoutMs,
            (h) => open(n - 1, [...alongside, h]),
            sql`set transaction snapshot ${sql.lit(id)}`,
          );
    return open(extra, []);
  });
}

/** Turn any error from a query into a RowdoctorError that keeps SQLSTATE, detail and hint. */
export function queryError(e: unknown, doing: string, hint?: string): RowdoctorError {
  if (e instanceof RowdoctorError) return e;
  if (isPgError(e)) {
    const extra: Record<string, string> = {
      '57014': 'The statement timed out; raise --statement-timeout or narrow the check with --only/--schema.',
      '42501': 'The connecting role lacks a privilege; grant it or connect as a role that has it.',
      '25006': 'A read-only transaction refused a write: scopes and expressions must be read-only.',
    };
    return new RowdoctorError(`${doing} failed: ${describePgError(e)}`, {
      hint: hint ?? extra[e.code ?? ''],
      cause: e,
    });
  }
  return new RowdoctorError(`${doing} failed: ${redact(e instanceof Error ? e.message : String(e))}`, {
    hint,
    cause: e,
  });
}
