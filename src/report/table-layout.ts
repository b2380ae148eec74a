import utils from 'cli-table3/src/utils.js';

/**
 * cli-table3 draws every line of a cell after passing the cell's whole text through its
 * `truncate(text, 10)` for a debug message it never prints, and that truncate cuts a multi-line
 * text one character at a time, measuring the width of what is left each time: drawing a cell
 * costs its lines × its length², so 50 samples took over two minutes and a few long keys seconds.
 * Its only other call passes one line at a time. For a multi-line text only the first line can
 * matter to a 10-character message, so it is cut there first: the table is then drawn in time
 * linear in its text, and what is drawn is unchanged. Patched once, where cli-table3 keeps it
 * (its cells look `truncate` up on this very object at each call).
 */
const original = utils.truncate;
utils.truncate = (text: string, width: number, ellipsis?: string): string => {
  const newline = typeof text === 'string' ? text.indexOf('\n') : -1;
  return original(newline < 0 ? text : text.slice(0, newline), width, ellipsis);
};
