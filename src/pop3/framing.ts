/**
 * Multi-line responses on the wire (RFC 1939 §3): every line that starts with "." gets one
 * more "." in front (byte-stuffing), and the response ends with CRLF "." CRLF. RETR and TOP
 * stream the message through these transforms chunk by chunk, on Buffers, so memory stays at a
 * few chunks whatever the message size.
 */

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const DOT_BUF = Buffer.from('.');
const CRLF = Buffer.from('\r\n');
export const TERMINATOR = Buffer.from('.\r\n');

/** Byte-stuffs a message given in any chunking; `end` closes the response. */
export class DotStuffer {
  private atLineStart = true;

  /**
   * Appends the stuffed form of `chunk` to `out` (as slices of it, no copy). The search is for
   * dots, each then checked for a line end before it: in mail they are far rarer than line ends
   * (base64 attachments have none), so this scans the fewest bytes twice.
   */
  push(chunk: Buffer, out: Buffer[]): void {
    if (chunk.length === 0) return;
    let start = 0;
    for (let i = chunk.indexOf(DOT); i >= 0; i = chunk.indexOf(DOT, i + 1)) {
      if (i === 0 ? !this.atLineStart : chunk[i - 1] !== LF) continue;
      if (i > start) out.push(chunk.subarray(start, i));
      out.push(DOT_BUF);
      start = i;
    }
    out.push(start === 0 ? chunk : chunk.subarray(start));
    this.atLineStart = chunk[chunk.length - 1] === LF;
  }

  /** The end of the response: a line break if the message lacks a final one, then ".". */
  end(out: Buffer[]): void {
    if (!this.atLineStart) out.push(CRLF);
    out.push(TERMINATOR);
  }
}

/**
 * TOP n m (RFC 1939 §7): the header, the blank line after it, and at most m lines of the body.
 * A message without a blank line is all header and is sent whole.
 */
export class TopFilter {
  private inHeader = true;
  private remaining: number;
  /** Bytes of the current line seen so far (excluding its LF), and its first byte. */
  private lineLength = 0;
  private firstByte = -1;
  done = false;

  constructor(bodyLines: number) {
    this.remaining = bodyLines;
  }

  /** The part of `chunk` to send; sets `done` once nothing more is wanted. */
  push(chunk: Buffer): Buffer {
    if (this.done) return chunk.subarray(0, 0);
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.inHeader && this.remaining === 0) {
        this.done = true;
        return chunk.subarray(0, pos);
      }
      if (this.lineLength === 0) this.firstByte = chunk[pos]!;
      const lf = chunk.indexOf(LF, pos);
      if (lf < 0) {
        this.lineLength += chunk.length - pos;
        return chunk;
      }
      const length = this.lineLength + (lf - pos);
      if (this.inHeader) {
        // The empty line is "" or "\r" before the LF.
        if (length === 0 || (length === 1 && this.firstByte === CR)) this.inHeader = false;
      } else {
        this.remaining--;
      }
      this.lineLength = 0;
      pos = lf + 1;
    }
    if (!this.inHeader && this.remaining === 0) this.done = true;
    return chunk;
  }
}

export interface FrameOptions {
  /** The status line ("+OK ...\r\n") sent before the message. */
  status: string;
  /** TOP: body lines to send; undefined sends the whole message (RETR). */
  bodyLines?: number;
  /** Pieces are gathered up to this many bytes before they are handed on as one batch. */
  batchBytes?: number;
  /** Told when the first bytes are handed on, and when the last are (not when the source fails:
   *  a response cut short is still under way for whoever must decide what the client sees). */
  onStart?: () => void;
  onEnd?: () => void;
  /**
   * Given each source chunk back once no batch still to be sent refers to it: after the batch
   * holding its last slice was handed on and the next one asked for. The consumer asks only
   * once the batch is on the network (see Output 'stream').
   */
  recycle?: (chunk: Buffer) => void;
}

const DEFAULT_BATCH = 64 * 1024;

/** The same response as frameMessage for a message already in memory, as the pieces of one write. */
export function frameWhole(parts: Buffer[], o: FrameOptions): Buffer[] {
  const stuffer = new DotStuffer();
  const top = o.bodyLines === undefined ? undefined : new TopFilter(o.bodyLines);
  const pieces: Buffer[] = [Buffer.from(o.status, 'latin1')];
  for (const part of parts) {
    stuffer.push(top ? top.push(part) : part, pieces);
    if (top?.done) break;
  }
  stuffer.end(pieces);
  return pieces;
}

/**
 * The whole RETR/TOP response as a stream: status line, stuffed message, terminator, handed on
 * in batches of pieces (slices of the stored parts, never copied) that each leave in one write.
 * Every slice of a source chunk is in the same batch.
 */
export async function* frameMessage(source: AsyncIterable<Buffer>, o: FrameOptions): AsyncGenerator<Buffer[]> {
  const batch = o.batchBytes ?? DEFAULT_BATCH;
  const stuffer = new DotStuffer();
  const top = o.bodyLines === undefined ? undefined : new TopFilter(o.bodyLines);
  let pieces: Buffer[] = [Buffer.from(o.status, 'latin1')];
  let pending = pieces[0]!.length;
  /** The source chunks that `pieces` slices. */
  let sliced: Buffer[] = [];
  let started = false;
  const handOn = (): Buffer[] => {
    if (!started) o.onStart?.();
    started = true;
    const out = pieces;
    pieces = [];
    pending = 0;
    return out;
  };
  const recycle = (chunks: Buffer[]): void => {
    if (o.recycle) for (const c of chunks) o.recycle(c);
  };
  for await (const chunk of source) {
    const data = top ? top.push(chunk) : chunk;
    const before = pieces.length;
    stuffer.push(data, pieces);
    sliced.push(chunk);
    for (let i = before; i < pieces.length; i++) pending += pieces[i]!.length;
    if (pending >= batch) {
      const sent = sliced;
      sliced = [];
      yield handOn();
      recycle(sent);
    }
    if (top?.done) break;
  }
  stuffer.end(pieces);
  yield handOn();
  recycle(sliced);
  o.onEnd?.();
}
