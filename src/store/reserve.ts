/**
 * Room kept back on the disk for deleting mail: `data_dir/reserve`, a file of zeros that nothing
 * else is written to. On a disk filled to the last byte (by anything: a log, another program),
 * SQLite cannot commit even a deletion, since its write-ahead log grows first; POP3's DELE and
 * `mailnest user remove` then freed nothing, and the only way out was outside mailnest. A
 * deletion that finds the disk full gives the reserve up and is tried again (sqlite-store.ts);
 * the reserve is made again once the disk has room for it several times over (smaller on a small
 * disk), so that it is never what fills the disk. A store that cannot be opened on a full disk
 * gives it up too (sqlite-store.ts), so that the server starts; arriving mail never does. The
 * room it frees is then ordinary free space, until the operator frees more.
 */
import fs from 'node:fs';
import path from 'node:path';
import { freeBytes } from './free-space.ts';

/** Enough for SQLite's write-ahead log to grow to its checkpoint (16 MiB: CHECKPOINT_BYTES in
 *  sqlite/sqlite-store.ts) and a batch of deletions beyond it. */
const RESERVE_BYTES = 20 * 1024 * 1024;

/** The reserve is made only where the disk has this many times its size free: on a smaller disk,
 *  smaller, down to MIN_BYTES (still room for a batch of deletions). */
const ROOM_FACTOR = 4;
const MIN_BYTES = 1024 * 1024;

export class Reserve {
  readonly file: string;
  readonly bytes: number;

  constructor(dataDir: string, bytes = RESERVE_BYTES) {
    this.file = path.join(dataDir, 'reserve');
    this.bytes = bytes;
  }

  /** One being made, or left half made by a crash. */
  private get partial(): string {
    return `${this.file}.new`;
  }

  /** Makes the reserve when it is missing and the disk has room, in the thread pool (sessions
   *  go on meanwhile): `bytes`, or a quarter of the free space when that is less. A failure, or
   *  a crash, leaves no part of it behind for long: one left half made is removed first. */
  async keep(): Promise<void> {
    const partial = this.partial;
    await fs.promises.rm(partial, { force: true });
    if (fs.existsSync(this.file)) return;
    const bytes = Math.min(this.bytes, Math.floor(freeBytes(path.dirname(this.file)) / ROOM_FACTOR));
    if (bytes < Math.min(MIN_BYTES, this.bytes)) return;
    try {
      const file = await fs.promises.open(partial, 'w', 0o600);
      try {
        const zeros = Buffer.alloc(Math.min(bytes, 1024 * 1024));
        for (let written = 0; written < bytes; written += zeros.length) await file.write(zeros, 0, Math.min(zeros.length, bytes - written));
        await file.sync();
      } finally {
        await file.close();
      }
      await fs.promises.rename(partial, this.file);
    } catch {
      await fs.promises.rm(partial, { force: true });
    }
  }

  /** Gives the room up (a reserve half made too); true when there was any to give. */
  release(): boolean {
    let given = false;
    for (const file of [this.file, this.partial]) {
      try {
        fs.unlinkSync(file);
        given = true;
      } catch {
        // none there
      }
    }
    return given;
  }
}
