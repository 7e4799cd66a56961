/**
 * Command-line framing with a length limit, shared by the protocol cores. Lines end at LF; a
 * preceding CR is removed. `maxLength` counts the line end too, as RFC 5321 §4.5.3.1.4 and
 * RFC 2449 §4 count it. A longer line is not buffered: its bytes are discarded up to the next LF
 * and it is reported once as `overlong`.
 */
import { EMPTY } from './empty.ts';
export type LineEvent = { type: 'line'; line: Buffer } | { type: 'overlong' };

export class LineReader {
  private readonly maxLength: number;
  private buffered: Buffer[] = [];
  private bufferedLength = 0;
  private discarding = false;

  constructor(maxLength: number) {
    this.maxLength = maxLength;
  }

  /** Takes the next line out of `input`, returning the event and the bytes left after it. */
  next(input: Buffer): { event: LineEvent | undefined; rest: Buffer } {
    const lf = input.indexOf(10);
    if (lf < 0) {
      if (!this.discarding) {
        if (this.bufferedLength + input.length > this.maxLength) {
          this.drop();
          this.discarding = true;
        } else {
          this.buffered.push(input);
          this.bufferedLength += input.length;
        }
      }
      return { event: undefined, rest: EMPTY };
    }
    const rest = input.subarray(lf + 1);
    if (this.discarding) {
      this.discarding = false;
      return { event: { type: 'overlong' }, rest };
    }
    let line = this.bufferedLength === 0 ? input.subarray(0, lf) : Buffer.concat([...this.buffered, input.subarray(0, lf)]);
    this.drop();
    // With its LF: over the limit?
    if (line.length + 1 > this.maxLength) return { event: { type: 'overlong' }, rest };
    if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
    return { event: { type: 'line', line }, rest };
  }

  reset(): void {
    this.drop();
    this.discarding = false;
  }

  private drop(): void {
    this.buffered = [];
    this.bufferedLength = 0;
  }
}
