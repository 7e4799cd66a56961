/**
 * Reading a body back from a file of its own or from a body-log segment: in pieces, one
 * synchronous read each, as the database's reads are. Such a file is usually in the page
 * cache, and a read from there costs less than a trip to the thread pool.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
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

/**
 * readPieces, with the body checked against its CRC-32 (when it has one) before its last piece is
 * handed out. A body of one piece is then never handed out damaged; of a longer one, the reader
 * fails before its end, as it does for a file cut short.
 */
export function* checkedPieces(file: string, offset: number, size: number, crc: number | undefined, pool?: PiecePool): Generator<Buffer> {
  let sum = 0;
  let seen = 0;
  for (const piece of readPieces(file, offset, size, pool)) {
    seen += piece.length;
    if (crc !== undefined) {
      sum = zlib.crc32(piece, sum);
      if (seen === size && sum !== crc) throw new Error(`the body at ${offset} in ${file} does not match its checksum`);
    }
    yield piece;
  }
}
