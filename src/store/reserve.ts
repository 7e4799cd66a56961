/**
 * Room kept back on the disk for deleting mail: `data_dir/reserve`, a file of zeros that nothing
 * else is written to. On a disk filled to the last byte (by anything: a log, another program),
 * SQLite cannot commit even a deletion, since its write-ahead log grows first; POP3's DELE and
 * `mailnest user remove` then freed nothing, and the only way out was outside mailnest. A
 * deletion that finds the disk full gives the reserve up and is tried again (sqlite-store.ts);
 * the reserve is made again once the disk has room for it several times over, so that it is
 * never what fills the disk. Only deletions give it up; the room it frees is then ordinary free
 * space, until the operator frees more.
 */
import fs from 'node:fs';
import path from 'node:path';
import { freeBytes } from './free-space.ts';

/** Enough for SQLite's write-ahead log to grow to its checkpoint (16 MiB: CHECKPOINT_BYTES in
 *  sqlite/sqlite-store.ts) and a batch of deletions beyond it. */
const RESERVE_BYTES = 20 * 1024 * 1024;

/** The reserve is made only where the disk has this many times its size free. */
const ROOM_FACTOR = 4;

export class Reserve {
  readonly file: string;
  readonly bytes: number;

  constructor(dataDir: string, bytes = RESERVE_BYTES) {
    this.file = path.join(dataDir, 'reserve');
    this.bytes = bytes;
  }

  /** Makes the reserve when it is missing and the disk has room, in the thread pool (sessions
   *  go on meanwhile). A failure leaves no part of it behind. */
  async keep(): Promise<void> {
    if (fs.existsSync(this.file) || freeBytes(path.dirname(this.file)) < ROOM_FACTOR * this.bytes) return;
    const partial = `${this.file}.new`;
    try {
      const file = await fs.promises.open(partial, 'w', 0o600);
      try {
        const zeros = Buffer.alloc(Math.min(this.bytes, 1024 * 1024));
        for (let written = 0; written < this.bytes; written += zeros.length) await file.write(zeros, 0, Math.min(zeros.length, this.bytes - written));
        await file.sync();
      } finally {
        await file.close();
      }
      await fs.promises.rename(partial, this.file);
    } catch {
      await fs.promises.rm(partial, { force: true });
    }
  }

  /** Gives the room up; true when there was a reserve to give. */
  release(): boolean {
    try {
      fs.unlinkSync(this.file);
      return true;
    } catch {
      return false;
    }
  }
}
