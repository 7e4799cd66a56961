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
