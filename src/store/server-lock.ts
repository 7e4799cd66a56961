/**
 * One server per data directory. Two would each think they hold every POP3 maildrop lock, and
 * both would deliver the queue. The lock is SQLite's own (an fcntl lock) on
 * `data_dir/server.lock`, held by an exclusive transaction for as long as the server runs. The
 * system lets go of it when the process ends, however it ends: nothing a crash leaves behind
 * stands in the way (a pid file would, once its pid belonged to another process), and two
 * servers starting at the same moment cannot both take it. `server.pid` names the holder, for
 * the message the next one gives. The CLI's other commands need no lock: SQLite orders their
 * writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { prepareDataDir, readIfThere } from './data-dir.ts';
import { openingError } from './sqlite/sqlite-errors.ts';

/** SQLite's result code for a lock held elsewhere. */
const SQLITE_BUSY = 5;

export class ServerLock {
  private readonly db: DatabaseSync;
  private readonly pidFile: string;

  private constructor(db: DatabaseSync, pidFile: string) {
    this.db = db;
    this.pidFile = pidFile;
  }

  /** Throws, naming the other server, when one runs on `dataDir`. */
  static acquire(dataDir: string): ServerLock {
    prepareDataDir(dataDir);
    const pidFile = path.join(dataDir, 'server.pid');
    const lockFile = path.join(dataDir, 'server.lock');
    const db = new DatabaseSync(lockFile, { timeout: 0 });
    try {
      db.exec('PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if ((err as { errcode?: number }).errcode !== SQLITE_BUSY) throw openingError(lockFile, err, 'remove it: it holds no mail, and the server makes it again');
      const pid = Number.parseInt(readIfThere(pidFile), 10);
      throw new Error(`data_dir ${dataDir} is in use by another mailnest server${pid > 0 ? ` (pid ${pid})` : ''}; stop it, or give this one a data_dir of its own`);
    }
    fs.writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
    return new ServerLock(db, pidFile);
  }

  /**
   * The pid of the server that runs on `dataDir` (0 when its pid file is gone), or undefined
   * when none does. The lock is tried and let go at once; the pid file is left alone.
   */
  static holder(dataDir: string): number | undefined {
    const file = path.join(dataDir, 'server.lock');
    if (!fs.existsSync(file)) return undefined;
    const db = new DatabaseSync(file, { timeout: 0 });
    try {
      db.exec('BEGIN EXCLUSIVE');
      db.exec('ROLLBACK');
      return undefined;
    } catch (err) {
      if ((err as { errcode?: number }).errcode !== SQLITE_BUSY) throw err;
      return Math.max(0, Number.parseInt(readIfThere(path.join(dataDir, 'server.pid')), 10) || 0);
    } finally {
      db.close();
    }
  }

  /** Lets go of the lock. The pid file stays where it cannot be removed (a filesystem turned
   *  read-only): it names a holder only while the lock is held, and the next server rewrites it. */
  release(): void {
    if (!this.db.isOpen) return;
    try {
      fs.rmSync(this.pidFile, { force: true });
    } finally {
      this.db.close();
    }
  }
}
