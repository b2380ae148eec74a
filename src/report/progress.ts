/**
 * Progress on stderr (never stdout, which carries results). Progress lines are only for a person at
 * a terminal; notes (a retry, a pause, a skip) are one line each, on a terminal or not, so a log
 * or a CI job sees every one of them.
 */
export interface Progress {
  start(label: string): { done(): void };
  log(line: string): void;
  note(line: string): void;
}

export function createProgress(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): Progress {
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  if (!enabled)
    return {
      start: () => ({ done: () => undefined }),
      log: () => undefined,
      note: (line) => stream.write(`rowdoctor: ${line}\n`),
    };
  let open = false;
  const log = (line: string) => {
    stream.write(`${open ? '\n' : ''}${elapsed().padStart(7)}  ${line}\n`);
    open = false;
  };
  return {
    start(label) {
      const started = Date.now();
      stream.write(`${elapsed().padStart(7)}  ${label} …`);
      open = true;
      return {
        done() {
          stream.write(`${open ? '' : '         …'} ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
          open = false;
        },
      };
    },
    log,
    note: log,
  };
}

export const silentProgress: Progress = {
  start: () => ({ done: () => undefined }),
  log: () => undefined,
  note: () => undefined,
};
