/** Progress lines on stderr (never stdout, which carries results), only for a person at a terminal. */
export interface Progress {
  start(label: string): { done(): void };
  log(line: string): void;
}

export function createProgress(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): Progress {
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  if (!enabled) return { start: () => ({ done: () => undefined }), log: () => undefined };
  return {
    start(label) {
      const started = Date.now();
      stream.write(`${elapsed().padStart(7)}  ${label} …`);
      return {
        done() {
          stream.write(` ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
        },
      };
    },
    log(line) {
      stream.write(`${elapsed().padStart(7)}  ${line}\n`);
    },
  };
}

export const silentProgress: Progress = createProgress(false);
