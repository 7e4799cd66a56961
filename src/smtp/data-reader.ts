/**
 * DATA mode (RFC 5321 §4.1.1.4, §4.5.2): removes dot-stuffing and finds the end of data.
 *
 * The end of data is recognised only as <CRLF>.<CRLF>: a line that starts after a real CRLF
 * and holds just a dot. Bare LF and bare CR never end a line here, so "\n.\n", "\r\n.\n",
 * "\n.\r\n" and "\r.\r" cannot end the message early and smuggle commands (the SMTP smuggling
 * attacks). Such bare line ends are passed on as content; MessageSink refuses the message.
 *
 * Only a dot at the start of a line means anything here, so the reader searches for dots and
 * looks at the two bytes before each, instead of visiting every line end: mail holds far fewer
 * dots than lines, and base64 holds none.
 */
import { EMPTY } from '../net/empty.ts';
const CR = 13;
const LF = 10;
const DOT = 46;

export interface DataStep {
  /** Content bytes, dot-unstuffed, in order (CRLF line ends as sent). */
  content: Buffer[];
  /** True when the end-of-data line was seen. */
  done: boolean;
  /** Input bytes after the end of data (pipelined commands), when done. */
  rest: Buffer;
}

export class DataReader {
  /** The next chunk's first byte starts a line (the last ended with CRLF, or DATA just began). */
  private lineStart = true;
  /** The last chunk ended with a CR (a next chunk starting with LF completes a CRLF). */
  private afterCR = false;
  /** A line-start dot at the end of a chunk, with its CR if any: the next bytes decide whether
   *  it ends the data or was stuffed. */
  private carry: Buffer = EMPTY;

  feed(chunk: Buffer): DataStep {
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = EMPTY;
    const content: Buffer[] = [];
    // Content leaves in spans as long as possible: split only where a stuffed dot is dropped.
    let spanStart = 0;
    const span = (end: number) => {
      if (end > spanStart) content.push(buf.subarray(spanStart, end));
    };
    for (let dot = buf.indexOf(DOT); dot >= 0; dot = buf.indexOf(DOT, dot + 1)) {
      if (!this.startsLine(buf, dot)) continue;
      const left = buf.length - dot;
      if (left === 1 || (left === 2 && buf[dot + 1] === CR)) {
        span(dot);
        this.carry = buf.subarray(dot);
        this.lineStart = true;
        this.afterCR = false;
        return { content, done: false, rest: EMPTY };
      }
      if (buf[dot + 1] === CR && buf[dot + 2] === LF) {
        span(dot);
        return { content, done: true, rest: buf.subarray(dot + 3) };
      }
      // §4.5.2: the first dot of a line that begins with one is removed
      span(dot);
      spanStart = dot + 1;
    }
    span(buf.length);
    const n = buf.length;
    if (n > 0) {
      this.lineStart = n >= 2 ? buf[n - 2] === CR && buf[n - 1] === LF : buf[0] === LF && this.afterCR;
      this.afterCR = buf[n - 1] === CR;
    }
    return { content, done: false, rest: EMPTY };
  }

  /** Only CRLF starts a new line; a bare LF stays inside the current one. */
  private startsLine(buf: Buffer, i: number): boolean {
    if (i >= 2) return buf[i - 1] === LF && buf[i - 2] === CR;
    if (i === 1) return buf[0] === LF && this.afterCR;
    return this.lineStart;
  }
}
