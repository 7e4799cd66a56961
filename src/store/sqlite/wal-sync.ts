/**
 * The durability barrier of the SQLite store.
 *
 * The store commits with `synchronous = NORMAL`: a COMMIT only writes the new pages to the
 * write-ahead log, which is fast and happens on the event loop. `sync()` then makes everything
 * committed so far durable with one fdatasync(2) of the WAL file, run in the thread pool, so
 * sessions keep being served while the disk works. Callers acknowledge a change (a 250 to DATA,
 * a +OK to QUIT) only after `sync()` resolves. Commits made while one fdatasync runs share the
 * next one: this is the group commit. SQLite itself still syncs around checkpoints (it does in
 * NORMAL mode: the WAL before a checkpoint, the database after it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { SharedFlush } from './shared-flush.ts';

const systemFdatasync: (fd: number) => Promise<void> = promisify(fs.fdatasync);

export class WalSync {
  private readonly walFile: string;
  private fd: number | undefined;
  private closed = false;
  private readonly shared: SharedFlush;

  /** `fdatasync` is the system call unless a test observes it; `onFailure`: see SharedFlush. */
  constructor(dbFile: string, fdatasync = systemFdatasync, onFailure?: (err: Error) => void) {
    this.walFile = `${dbFile}-wal`;
    // After close, everything committed was synced by close itself.
    this.shared = new SharedFlush(async () => {
      if (!this.closed) await fdatasync(this.walDescriptor());
    }, onFailure);
  }

  /** True while an fdatasync is under way. */
  get busy(): boolean {
    return this.shared.busy;
  }

  /** Resolves when the fdatasync under way now has ended (at once if none is). */
  settled(): Promise<void> {
    return this.shared.settled();
  }

  /** Resolves once every transaction committed before the call is on disk. */
  sync(): Promise<void> {
    return this.shared.flush();
  }

  /** The same, waiting on the calling thread (for close). */
  syncNow(): void {
    if (fs.existsSync(this.walFile)) fs.fdatasyncSync(this.walDescriptor());
  }

  /**
   * An open descriptor of the current WAL file, opened again once the one held has no name left
   * (SQLite removed the file, or another took its name): one fstat per flush, no path lookup.
   */
  private walDescriptor(): number {
    if (this.fd !== undefined) {
      if (fs.fstatSync(this.fd).nlink > 0) return this.fd;
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    this.fd = fs.openSync(this.walFile, 'r');
    // The WAL file's directory entry must be durable too, once.
    const dir = fs.openSync(path.dirname(this.walFile), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
    return this.fd;
  }

  /** Syncs what is committed, then lets go of the file once no fdatasync is under way. */
  close(): void {
    this.syncNow();
    this.closed = true;
    const release = () => {
      if (this.fd !== undefined) fs.closeSync(this.fd);
      this.fd = undefined;
    };
    void this.shared.settled().then(release);
  }
}
