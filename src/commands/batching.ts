import type { Command } from 'commander';
import { parseDuration, parsePositiveInt } from './options.js';

/** The flags that pace a command's write batches (repair, undo), as commander gives them. */
export interface BatchFlags {
  batchSize: string;
  maxTransactionTime: string;
  lockTimeout: string;
  maxReplicaLag: string;
}

/** Adds the pacing flags; `--batch-size` says what it counts (groups for repair, backed-up rows for undo). */
export function withBatchFlags(cmd: Command, batchSize: { help: string; default: string }): Command {
  return cmd
    .option('--batch-size <n>', batchSize.help, batchSize.default)
    .option(
      '--max-transaction-time <duration>',
      'target time of one batch transaction: the batch size adapts between batches (0: fixed --batch-size)',
      '200ms',
    )
    .option(
      '--lock-timeout <duration>',
      "lock_timeout per batch (at most half the server's deadlock_timeout); a batch that hits it is retried",
      '2s',
    )
    .option(
      '--max-replica-lag <duration>',
      "pause between batches while a streaming replica's replay lag exceeds this (0: off)",
      '10s',
    );
}

export function parseBatchFlags(opts: BatchFlags) {
  return {
    batchSize: parsePositiveInt(opts.batchSize, '--batch-size', 1),
    maxTransactionMs: parseDuration(opts.maxTransactionTime, '--max-transaction-time'),
    lockTimeoutMs: parseDuration(opts.lockTimeout, '--lock-timeout'),
    maxReplicaLagMs: parseDuration(opts.maxReplicaLag, '--max-replica-lag'),
  };
}

/**
 * Ctrl-C finishes the current batch, then stops: the first one sets the flag the batch loop reads,
 * a second one exits at once (the open batch rolls back). Returns the flag's reader and what
 * removes the handler.
 */
export function stopOnCtrlC(): { interrupted: () => boolean; release: () => void } {
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    process.stderr.write(
      '\nrowdoctor: interrupted — finishing the current batch, then stopping ' +
        '(Ctrl-C again to abort it; it rolls back).\n',
    );
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  return { interrupted: () => interrupted, release: () => void process.removeListener('SIGINT', onSignal) };
}
