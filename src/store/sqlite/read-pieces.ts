/**
 * Reading a body back from a file of its own or from a body-log segment: in pieces, one
 * synchronous read each, as the database's reads are. Such a file is usually in the page
 * cache, and a read from there costs less than a trip to the thread pool.
 */
import fs from 'node:fs';
import type { PiecePool } from './piece-pool.ts';

/** Bytes read at a time: the memory a reader needs. */
export const PIECE = 256 * 1024;

/**
 * The `size` bytes at `offset` in `file`, in pieces of at most PIECE bytes, read as they are
 * asked for: the file is opened for the first and closed after the last (or when the reader
 * stops). With a `pool`, the pieces are its buffers, for a reader that hands them back.
 */
export function* readPieces(file: string, offset: number, size: number, pool?: PiecePool): Generator<Buffer> {
  const fd = fs.openSync(file, 'r');
  try {
    for (let pos = 0; pos < size; pos += PIECE) {
      const length = Math.min(PIECE, size - pos);
      const buf = pool ? pool.take(length) : Buffer.allocUnsafe(length);
      if (fs.readSync(fd, buf, 0, length, offset + pos) !== length) {
        throw new Error(`${file} is too short for the ${size} bytes at ${offset}`);
      }
      yield buf;
    }
  } finally {
    fs.closeSync(fd);
  }
}
