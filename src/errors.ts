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

/** SQLSTATEs that mean "retry the batch": lock timeout, deadlock, serialization failure. */
export const RETRYABLE_SQLSTATES = new Set(['55P03', '40P01', '40001']);

/**
 * A batch found the database moved under it in a way a fresh attempt handles (a row written
 * meanwhile for a row it is merging away): roll back and retry it, like a lock timeout.
 */
export class BatchRetry extends Error {}
