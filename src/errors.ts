/**
 * The one error type that reaches the user. It carries what went wrong, what to do about it, and
 * the exit code; `cli.ts` prints it once (no stack trace unless --debug).
 */
export class RowdoctorError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  constructor(message: string, options: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RowdoctorError';
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 2;
  }
}

/** Fields node-postgres puts on a server error; kept so messages keep SQLSTATE, detail and hint. */
export interface PgErrorFields {
  code?: string;
  detail?: string;
  hint?: string;
  position?: string;
  routine?: string;
}

export function isPgError(e: unknown): e is Error & PgErrorFields {
  return (
    e instanceof Error &&
    typeof (e as PgErrorFields).code === 'string' &&
    /^[0-9A-Z]{5}$/.test((e as PgErrorFields).code ?? '')
  );
}

/**
 * Render a Postgres server error as one paragraph: message, SQLSTATE, detail and hint. It ends
 * without a period (the server's detail and hint end with one), so a caller may go on with
 * `. Nothing was changed.` and no message ever reads `..`.
 */
export function describePgError(e: Error & PgErrorFields): string {
  const parts = [`${unstopped(e.message)} (SQLSTATE ${e.code})`];
  if (e.detail) parts.push(`Detail: ${unstopped(e.detail)}`);
  if (e.hint) parts.push(`Hint: ${unstopped(e.hint)}`);
  return parts.join('. ');
}

/** `text` without its closing period (an ellipsis stays): for a sentence that goes on after it. */
export function unstopped(text: string): string {
  return text.replace(/(?<!\.)\.\s*$/, '').trimEnd();
}

/**
 * The session's connection is gone: its backend was terminated (pg_terminate_backend), the server
 * shut down or restarted (08…, 57P01–57P03), or the network dropped. A query on a dead session fails
 * with node-postgres's own error ("Connection terminated unexpectedly"), not a server error. An error
 * that wraps one (its `cause`) counts too.
 */
export function connectionLost(e: unknown): boolean {
  for (let x = e, depth = 0; x instanceof Error && depth < 5; x = x.cause, depth++) {
    if (isPgError(x) && /^(08|57P0[1-3])/.test(x.code ?? '')) return true;
    if (LOST.test(x.message)) return true;
  }
  return false;
}

const LOST =
  /Connection terminated|not queryable|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|socket has been ended|connection (was )?(closed|ended)/i;

/**
 * A lost connection that nothing more specific described (repair and undo say what they had
 * committed): one paragraph, exit 2, instead of an internal error.
 */
export function lostConnectionError(e: unknown): unknown {
  if (e instanceof RowdoctorError || !connectionLost(e)) return e;
  const why = e instanceof Error ? e.message : String(e);
  return new RowdoctorError(
    `Lost the connection to the server (${unstopped(why)}): the session was terminated, the server restarted or ` +
      'the network dropped. Everything rowdoctor writes commits whole, so nothing is half done; run the same ' +
      'command again.',
    { cause: e },
  );
}

/** SQLSTATEs that mean "retry the batch": lock timeout, deadlock, serialization failure. */
export const RETRYABLE_SQLSTATES = new Set(['55P03', '40P01', '40001']);

/**
 * A batch found the database moved under it in a way a fresh attempt handles (a row written
 * meanwhile for a row it is merging away): roll back and retry it, like a lock timeout.
 */
export class BatchRetry extends Error {}

/**
 * rowdoctor itself will not take a group's change (a loser that a candidate reference it does not
 * follow still names): like a constraint the server enforces, the group is rolled back and skipped
 * alone with this message as its reason (repair/groupwise.ts).
 */
export class GroupRefusal extends Error {}

/**
 * The server refused a batch of several groups (a CHECK, a raising trigger …): roll it back and run
 * its halves as batches of their own, down to the one group it refuses. Re-running the groups one by
 * one inside the refused batch's transaction held its row locks for a minute on a 300-table schema.
 */
export class BatchSplit extends Error {}

/**
 * Why a key part or reference column of type `type` cannot be compared, and what to do: a type with
 * no default btree equality (xml, point, json) cannot be grouped, matched or indexed uniquely.
 */
export function noEquality(
  role: 'key part' | 'reference column',
  column: string,
  type: string,
): { message: string; hint: string } {
  const cast = type === 'json' ? 'jsonb' : 'text';
  return {
    message: `${role} ${column} is of type ${type}, which has no equality operator (no default btree operator class)`,
    hint:
      role === 'key part'
        ? `Compare it as a type that has one, with an expression key that casts it: ` +
          `key: [{ expr: "${column}::${cast}" }]` +
          (cast === 'text' ? ' (values then compare as written).' : '.')
        : `A reference can only be checked on a comparable type: change the columns' type ` +
          `(ALTER TABLE … ALTER COLUMN ${column} TYPE ${cast}), or leave the rule out.`,
  };
}
