/**
 * Large message bodies, kept as files in `data_dir/bodies/`, one per body, named by its queue id.
 *
 * In the database a body is copied four times: into SQLite's pages, into the write-ahead log,
 * into the database file at the checkpoint, and out again, page by page, on every read. A file is
 * written once, flushed once, and read back with one system call per piece. The database keeps
 * the row that says the body is here (`bodies.external`).
 *
 * Order is what keeps this safe:
 * - a file is complete and durable (fdatasync, then an fsync of the directory) before the
 *   transaction that refers to it commits, so a committed row never points at a missing file;
 * - a file is removed only once the transaction that dropped its row is durable;
 * - a crash between the two steps leaves a file no row refers to, which `sweep` removes later.
 * Files never change once written. The row keeps the body's CRC-32, checked as the file is read
 * back, so a file damaged on disk is an error, not the message.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, crc32 } from '../../chunks.ts';
import type { PiecePool } from './piece-pool.ts';
import { checkedPieces } from './read-pieces.ts';
import { SharedFlush } from './shared-flush.ts';

const open = promisify(fs.open);
const writev = promisify(fs.writev);
const fdatasync = promisify(fs.fdatasync);
const fsync = promisify(fs.fsync);
const close = promisify(fs.close);
const unlink = promisify(fs.unlink);

export class BodyFiles {
  readonly dir: string;
  private dirFd: number;
  /** The directory's fsync, shared by every file created while one runs. */
  private readonly dirFlush: SharedFlush;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'bodies');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.dirFd = fs.openSync(this.dir, 'r');
    this.dirFlush = new SharedFlush(() => fsync(this.dirFd));
  }

  private file(queueId: string): string {
    return path.join(this.dir, queueId);
  }

  /** Whether the body file is there. */
  has(queueId: string): boolean {
    return fs.existsSync(this.file(queueId));
  }

  /** Writes a new body file and resolves once it and its directory entry are on disk, with the
   *  body's CRC-32, which its row keeps. */
  async write(queueId: string, chunks: Buffer[]): Promise<number> {
    const crc = crc32(chunks);
    const file = this.file(queueId);
    const fd = await open(file, 'wx', 0o600);
    try {
      // A short write (the disk filled up midway) is followed by one that fails with the reason.
      for (let left = chunks; left.length > 0;) {
        const { bytesWritten } = await writev(fd, left);
        if (bytesWritten === 0) throw new Error(`${file}: nothing more could be written`);
        left = after(left, bytesWritten);
      }
      await fdatasync(fd);
    } catch (err) {
      await close(fd).catch(() => {});
      await unlink(file).catch(() => {});
      throw err;
    }
    await close(fd);
    await this.dirFlush.flush();
    return crc;
  }

  /** The body of `size` bytes, read as it is asked for and checked against its `crc` when it
   *  has one (see checkedPieces). */
  async *read(queueId: string, size: number, crc: number | undefined, pool?: PiecePool): AsyncIterable<Buffer> {
    yield* checkedPieces(this.file(queueId), 0, size, crc, pool);
  }

  /** Removes body files (their rows are gone for good); a file already gone is fine. */
  async remove(queueIds: string[]): Promise<void> {
    await Promise.all(queueIds.map((id) => unlink(this.file(id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    })));
  }

  /**
   * Removes the files that a crash left without a row: those `referenced` does not know and
   * that were last written before `before` (younger ones may be waiting for their commit, in
   * this process or another). Yields to other work every few hundred names. Returns how many
   * it removed.
   */
  async sweep(referenced: (queueId: string) => boolean, before: number): Promise<number> {
    let removed = 0;
    let seen = 0;
    for (const name of await fs.promises.readdir(this.dir)) {
      if (++seen % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
      if (referenced(name)) continue;
      const file = this.file(name);
      try {
        if ((await fs.promises.stat(file)).mtimeMs >= before) continue;
        await unlink(file);
        removed++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return removed;
  }

  close(): void {
    void this.dirFlush.settled().then(() => fs.closeSync(this.dirFd));
  }
}
