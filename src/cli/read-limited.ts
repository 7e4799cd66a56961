/** Reading input (stdin, a file, a pipe) with a size bound: stops, and says so, as soon as the
 *  bound is passed. */
import type { Readable } from 'node:stream';

/** A line of a single dot, after a line end and before one, the line ends as splitLines
 *  (src/mime/submitted.ts) reads them (LF, CR or CRLF): where sendmail stops reading without -i
 *  (prepareSubmitted cuts the message at that line, found among the lines). */
const DOT_LINE = /[\r\n]\.[\r\n]/;

/** The input ran past `max` bytes. */
export class TooLarge extends Error {
  readonly max: number;
  constructor(max: number) {
    super(`more than ${max} bytes, over limits.max_message_size`);
    this.max = max;
  }
}

/**
 * Reads all of `input` (stdin unless given), or throws TooLarge once more than `max` bytes have
 * arrived. With `endAtDotLine`, a line of a single dot ends the input too, as sendmail's does
 * without `-i`: it is kept, the rest is left unread, and a caller that writes the dot and waits,
 * its end of the pipe still open, is not kept waiting.
 */
export async function readLimited(max: number, endAtDotLine = false, input: Readable = process.stdin): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  // The last bytes before the chunk in hand, a dot line may begin in them; the input's start
  // counts as a line end.
  let before = Buffer.from('\n');
  for await (const c of input) {
    let chunk = c as Buffer;
    let ended = false;
    if (endAtDotLine) {
      const m = DOT_LINE.exec(before.toString('latin1') + chunk.toString('latin1'));
      if (m) {
        chunk = chunk.subarray(0, m.index + m[0].length - before.length);
        ended = true;
      } else {
        before = Buffer.concat([before, chunk]).subarray(-2);
      }
    }
    total += chunk.length;
    if (total > max) {
      input.destroy();
      throw new TooLarge(max);
    }
    chunks.push(chunk);
    if (ended) {
      input.destroy();
      break;
    }
  }
  return Buffer.concat(chunks);
}
