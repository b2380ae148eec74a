import { Chalk, type ChalkInstance } from 'chalk';
import './table-layout.js'; // every text renderer comes through here: tables draw in linear time

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

/** Longest value a table cell shows; the JSON output always has the whole value. */
const MAX_VALUE = 80;

/**
 * A value as a cell shows it, cut before any width is measured: laying out a table costs time in
 * the width of its cells (a 1 MB key never finished rendering), and nobody reads 1 MB in a table.
 */
export function show(v: unknown): string {
  const text = v === null ? 'NULL' : typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined');
  return text.length > MAX_VALUE
    ? `${text.slice(0, MAX_VALUE - 1)}… (${text.length.toLocaleString('en-US')} chars)`
    : text;
}

/**
 * Break words longer than `width` so a table wraps them instead of cutting them off: a long id or
 * numeric key is shown whole, over two lines, never as a shorter number that looks complete.
 */
export function breakLongWords(text: string, width: number): string {
  return text.replace(new RegExp(`[^\\s]{${width + 1},}`, 'g'), (word) =>
    word.match(new RegExp(`.{1,${width}}`, 'g'))!.join('\n'),
  );
}
