/**
 * Polls `ready` every `everyMs` until it returns something truthy, and returns that; fails naming
 * `what` after `timeoutMs`. The bound is time, and generous: on a loaded CI machine starting a CLI
 * process alone can take seconds, and a fixed number of quick tries races with that load. A test
 * that works waits no longer than it must.
 */
export async function until<T>(
  what: string,
  ready: () => Promise<T> | T,
  { timeoutMs = 60_000, everyMs = 25 } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await ready();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000}s waiting until ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
