/** A message body as it is passed around: a list of buffers, as they were read from the socket,
 *  and written out with writev. */
import zlib from 'node:zlib';

/** The bytes in `chunks`. */
export function totalLength(chunks: Buffer[]): number {
  return chunks.reduce((n, c) => n + c.length, 0);
}

/** The CRC-32 of the bytes in `chunks`. */
export function crc32(chunks: Buffer[]): number {
  return chunks.reduce((crc, c) => zlib.crc32(c, crc), 0);
}

/** True when `b` holds a byte beyond ASCII: 8-bit data, or UTF-8. One regular-expression search
 *  over the bytes as Latin-1 text, several times faster than visiting each from JavaScript. */
export function hasEightBit(b: Buffer): boolean {
  return /[\x80-\xff]/.test(b.toString('latin1'));
}

/** The bytes of `chunks` after the first `n`: what is left after a short write. */
export function after(chunks: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < chunks.length && n >= chunks[i]!.length) n -= chunks[i++]!.length;
  const rest = chunks.slice(i);
  if (n > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}

/** The first `n` bytes of `chunks` as one buffer, and the chunks of the rest. */
export function splitAt(chunks: Buffer[], n: number): [Buffer, Buffer[]] {
  return [Buffer.concat(chunks, n), after(chunks, n)];
}

/** What a reader of text is handed at a time, at least: `atLineEnds`'s pieces. */
const PIECE = 64 * 1024;

/**
 * `message` in pieces of at least 64 KiB that each end with a line (after an LF), the last one
 * as it ends: for mailauth's DKIM body hash, which carries a line not ended yet over to the next
 * piece and reads it all again from its start there, so that a line of megabytes in pieces of
 * 64 KiB costs the square of its length. Here a long line is one piece, read once.
 */
export function* atLineEnds(message: Buffer): Generator<Buffer> {
  for (let at = 0; at < message.length;) {
    let end = Math.min(message.length, at + PIECE);
    if (end < message.length) {
      const lf = message.indexOf(0x0a, end - 1);
      end = lf < 0 ? message.length : lf + 1;
    }
    yield message.subarray(at, end);
    at = end;
  }
}

/** The same over pieces read from the store: a line's start waits for its end, and what ends in
 *  a line goes on as it came. */
export async function* piecesAtLineEnds(pieces: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  for await (const piece of pieces) {
    const lf = piece.lastIndexOf(0x0a);
    if (lf < 0) {
      held.push(piece);
      continue;
    }
    yield held.length === 0 && lf === piece.length - 1 ? piece : Buffer.concat([...held, piece.subarray(0, lf + 1)]);
    held = lf + 1 < piece.length ? [piece.subarray(lf + 1)] : [];
  }
  if (held.length > 0) yield Buffer.concat(held);
}

/** The pieces read until `stop` is among them (undefined: all of them), or past `max` octets,
 *  joined. Each piece is searched once, with the end of the one before it. */
export async function readUntil(pieces: AsyncIterable<Buffer>, stop: string | undefined, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let len = 0;
  /** The end of what was read, as long as `stop` less one: it may span two pieces. */
  let tail: Buffer = Buffer.alloc(0);
  for await (const c of pieces) {
    parts.push(c);
    len += c.length;
    if (stop !== undefined) {
      if (c.includes(stop) || Buffer.concat([tail, c.subarray(0, stop.length - 1)]).includes(stop)) break;
      tail = (c.length >= stop.length - 1 ? c : Buffer.concat([tail, c])).subarray(-(stop.length - 1));
    }
    if (len > max) break;
  }
  return Buffer.concat(parts);
}
