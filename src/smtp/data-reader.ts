/**
 * DATA mode (RFC 5321 §4.1.1.4, §4.5.2): removes dot-stuffing and finds the end of data.
 *
 * The end of data is recognised only as <CRLF>.<CRLF>: a line that starts after a real CRLF
 * and holds just a dot. Bare LF and bare CR never end a line here, so "\n.\n", "\r\n.\n",
 * "\n.\r\n" and "\r.\r" cannot end the message early and smuggle commands (the SMTP smuggling
 * attacks). Such bare line ends are passed on as content; MessageSink refuses the message.
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
  /** The next byte starts a line (we are after a CRLF, or at the start of DATA). */
  private lineStart = true;
  /** Bytes held back until the next chunk decides what they are (".", ".\r" or "\r"). */
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
    let pos = 0;
    while (pos < buf.length) {
      if (this.lineStart) {
        if (buf[pos] === DOT) {
          const left = buf.length - pos;
          if (left === 1 || (left === 2 && buf[pos + 1] === CR)) {
            span(pos);
            this.carry = buf.subarray(pos);
            return { content, done: false, rest: EMPTY };
          }
          if (buf[pos + 1] === CR && buf[pos + 2] === LF) {
            span(pos);
            return { content, done: true, rest: buf.subarray(pos + 3) };
          }
          // §4.5.2: the first dot of a line that begins with one is removed
          span(pos);
          spanStart = ++pos;
        }
        this.lineStart = false;
      }
      const lf = buf.indexOf(LF, pos);
      if (lf < 0) {
        let end = buf.length;
        if (buf[end - 1] === CR) {
          end--;
          this.carry = buf.subarray(end);
        }
        span(end);
        return { content, done: false, rest: EMPTY };
      }
      // Only CRLF starts a new line; a bare LF stays inside the current one.
      this.lineStart = lf > 0 && buf[lf - 1] === CR;
      pos = lf + 1;
    }
    span(pos);
    return { content, done: false, rest: EMPTY };
  }
}
