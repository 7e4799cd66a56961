/**
 * Buffers for reading body files, used again once their reader hands them back. A new 256 KiB
 * buffer for every piece cost more than the read into it: the memory lies outside V8's heap, and
 * V8 collects garbage the more often the more of it is allocated. That was about a fifth of
 * the CPU of a POP3 download of 1 MiB messages.
 *
 * Only a reader that knows when nothing refers to a piece any more hands it back (POP3, once
 * the piece is on the network). Pieces that are never handed back are garbage like any buffer.
 */
export class PiecePool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out and not back yet, by their memory, so that a slice finds its buffer. */
  private readonly lent = new WeakMap<ArrayBufferLike, Buffer>();

  private readonly size: number;
  private readonly keep: number;

  /** Buffers of `size` bytes; at most `keep` of them wait unused. */
  constructor(size: number, keep: number) {
    this.size = size;
    this.keep = keep;
  }

  /** A buffer of `length` bytes (at most the pool's size), its contents undefined. */
  take(length: number): Buffer {
    if (length > this.size) throw new RangeError(`a piece of ${length} bytes is over the pool's ${this.size}`);
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool.
    const buf = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    this.lent.set(buf.buffer, buf);
    return length === this.size ? buf : buf.subarray(0, length);
  }

  /**
   * Hands back the buffer that `piece` is (or is a slice of): the caller promises that nothing
   * refers to any part of it any more. A buffer this pool did not lend, or got back already, is
   * ignored.
   */
  give(piece: Buffer): void {
    const buf = this.lent.get(piece.buffer);
    if (!buf) return;
    this.lent.delete(piece.buffer);
    if (this.free.length < this.keep) this.free.push(buf);
  }
}
