import { replaceUnprintable } from '../ascii.ts';

/** Plain aligned columns for human-readable listings. */
export function printTable(headers: string[], rows: string[][], empty: string): void {
  process.stdout.write(`${rows.length === 0 ? empty : tableLines(headers, rows).join('\n')}\n`);
}

/** The lines of a table, each column as wide as its widest cell but the last, which is left as
 *  it is. Widths are found row by row: a queue of a hundred thousand rows is a listing too. */
export function tableLines(headers: string[], given: string[][]): string[] {
  const rows = given.map((row) => row.map(printable));
  const widths = headers.map((h) => h.length);
  for (const row of rows) {
    row.forEach((cell, i) => {
      if (cell.length > widths[i]!) widths[i] = cell.length;
    });
  }
  return [headers, ...rows].map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

/** A cell as the terminal shows it and nothing more: a control character (an escape sequence a
 *  remote server put in its reply, which `queue list` shows) is written as `\xHH`, a mark that
 *  turns text around as `\u{HHHH}`. */
function printable(cell: string): string {
  return replaceUnprintable(cell, (c) => {
    const code = c.charCodeAt(0);
    return code > 0xff ? `\\u{${code.toString(16)}}` : `\\x${code.toString(16).padStart(2, '0')}`;
  });
}
