/**
 * Collects a message's bytes (from DATA or BDAT) within the size limit, and checks that every
 * line ends with CRLF. Past the limit nothing more is kept, only counted (RFC 1870 §6.3:
 * answer 552 at the end). A bare CR or LF anywhere makes the message refused: mailnest stores
 * only canonical CRLF text, which is also what closes the SMTP smuggling door for good
 * (RFC 5321 §2.3.8: CR and LF occur only together as a line end). So does a NUL, which neither
 * 7-bit nor 8-bit data may hold (RFC 2045 §2.7, §2.8; mailnest offers no BINARYMIME): a next
 * hop that dropped it could read `<CR><LF><NUL>.<CR><LF>` as the end of the data.
 * What it keeps is taken from the server's BodyBudget (given a lease), and given back when the
 * session lets the message go (release: stored, refused or abandoned): past the budget, too,
 * nothing more is kept, and the message is refused for now at its end.
 */
import type { BodyLease } from './body-budget.ts';

const CR = 13;
const LF = 10;
/** A CR not followed by LF, or an LF not preceded by CR. */
const BARE = /\r(?!\n)|(?<!\r)\n/g;
/**
 * Pieces kept as they come, each a view of its own (about 100 bytes of heap besides its data).
 * Past them, a piece under SMALL is copied into a buffer of GATHER octets shared with the next
 * ones: a message of dot-stuffed lines, or of one-octet BDAT chunks, would otherwise keep millions
 * of views, gigabytes for a message within the size limit.
 */
const KEPT = 64;
const SMALL = 4096;
const GATHER = 64 * 1024;

export type SinkVerdict = 'ok' | 'too-big' | 'bare-newline' | 'nul' | 'no-room';

export class MessageSink {
  readonly maxSize: number;
  private parts: Buffer[] = [];
  /** The buffer small pieces are copied into, how far it is filled, and from where it is not yet
   *  among the parts. */
  private gather: Buffer | undefined;
  private filled = 0;
  private kept = 0;
  private bytes = 0;
  private bareNewline = false;
  private nul = false;
  private lastWasCR = false;
  private readonly lease: BodyLease | undefined;
  /** The budget had no room for a piece: nothing more is kept. */
  private noRoom = false;

  constructor(maxSize: number, lease?: BodyLease) {
    this.maxSize = maxSize;
    this.lease = lease;
  }

  /** True once the budget has refused a piece (the rest is only counted). */
  get overBudget(): boolean {
    return this.noRoom;
  }

  get size(): number {
    return this.bytes;
  }

  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.bytes += chunk.length;
    if (!this.bareNewline) this.checkLineEnds(chunk);
    if (!this.nul && chunk.includes(0)) this.nul = true;
    if (!this.noRoom && this.lease && !this.lease.take(chunk.length)) this.noRoom = true;
    if (this.bytes > this.maxSize || this.bareNewline || this.nul || this.noRoom) {
      this.release();
      return;
    }
    if (chunk.length >= SMALL || this.parts.length < KEPT) {
      this.flushGathered();
      this.parts.push(chunk);
      return;
    }
    if (!this.gather || this.filled + chunk.length > this.gather.length) {
      this.flushGathered();
      this.gather = Buffer.allocUnsafe(GATHER);
      this.filled = 0;
      this.kept = 0;
    }
    chunk.copy(this.gather, this.filled);
    this.filled += chunk.length;
  }

  /** What is gathered and not yet among the parts goes there, as one piece. */
  private flushGathered(): void {
    if (!this.gather || this.filled === this.kept) return;
    this.parts.push(this.gather.subarray(this.kept, this.filled));
    this.kept = this.filled;
  }

  /**
   * One regular-expression search over the chunk as Latin-1 text: several times faster than
   * visiting every CR and LF from JavaScript. A CR at the chunk's end waits for the next chunk;
   * an LF at its start completes that CR.
   */
  private checkLineEnds(chunk: Buffer): void {
    if (this.lastWasCR && chunk[0] !== LF) this.bareNewline = true;
    const text = chunk.toString('latin1');
    BARE.lastIndex = 0;
    for (let m = BARE.exec(text); m && !this.bareNewline; m = BARE.exec(text)) {
      const at = m.index;
      const continued = at === 0 && this.lastWasCR; // the LF of a CRLF split between chunks
      const undecided = at === text.length - 1 && chunk[at] === CR;
      if (!continued && !undecided) this.bareNewline = true;
    }
    this.lastWasCR = chunk[chunk.length - 1] === CR;
  }

  /** The verdict once all bytes are in: the message's own faults first, which no retry mends. */
  finish(): SinkVerdict {
    if (this.bytes > this.maxSize) return 'too-big';
    if (this.bareNewline || this.lastWasCR) return 'bare-newline';
    if (this.nul) return 'nul';
    if (this.noRoom) return 'no-room';
    return 'ok';
  }

  /** Lets go of what is kept, and of its share of the budget. */
  release(): void {
    this.parts = [];
    this.gather = undefined;
    this.lease?.release();
  }

  /** The collected chunks (only meaningful when finish() is 'ok'). A last line without its
   *  CRLF (possible with BDAT) gets one, so every stored message is whole lines. */
  take(): Buffer[] {
    this.flushGathered();
    this.gather = undefined;
    const p = this.parts;
    const last = p[p.length - 1];
    if (last && last[last.length - 1] !== LF) p.push(Buffer.from('\r\n'));
    this.parts = [];
    // The message stays in memory until it is stored (the checks, the flush): its share of the
    // budget goes with the transaction (release).
    return p;
  }
}
