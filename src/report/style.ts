import { Chalk, type ChalkInstance } from 'chalk';

/** Colour only for a terminal, never with NO_COLOR or --no-color. The only place chalk is configured. */
export function makeStyle(color: boolean, stream: NodeJS.WriteStream = process.stdout): ChalkInstance {
  const enabled = color && stream.isTTY === true && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '');
  return new Chalk({ level: enabled ? 1 : 0 });
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** A sample as one short line: `key → ids`. */
export function sampleLine(key: unknown[], ids: unknown[], max = 6): string {
  const k = key.map(show).join(', ');
  const shown = ids.slice(0, max).map(show).join(', ');
  return `(${k}) → ${shown}${ids.length > max ? `, … +${ids.length - max}` : ''}`;
}

export function show(v: unknown): string {
  if (v === null) return 'NULL';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
