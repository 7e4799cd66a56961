/** SQLite's errors as the Store's: a full disk as StorageFull, however SQLite words it. */
import { freeBytes } from '../free-space.ts';
import { isStorageFull, StorageFull } from '../store.ts';

/**
 * An error met as the store opened, as what it is: on a full disk SQLite says "disk I/O error"
 * when it cannot make its -wal or -shm file, which would send an operator looking for a
 * failing disk.
 */
export function openingError(dataDir: string, err: unknown): unknown {
  const e = storeError(err);
  const sqlite = err as { code?: unknown; errcode?: unknown } | null;
  const primary = sqlite?.code === 'ERR_SQLITE_ERROR' && typeof sqlite.errcode === 'number' ? sqlite.errcode & 0xff : undefined;
  // Only the errors of a file that cannot be made or written: a damaged database, a lock held
  // elsewhere or a refused migration stay what they are, however little room is left.
  if (isStorageFull(e) || (primary !== SQLITE_IOERR && primary !== SQLITE_CANTOPEN)) return e;
  return freeBytes(dataDir) < NEARLY_FULL ? new StorageFull((err as Error).message, { cause: err }) : e;
}

/** Free bytes under which an error of SQLite's on opening is taken to be the disk's being full. */
const NEARLY_FULL = 1024 * 1024;

/** SQLite's result codes for a failed read or write, and for a file it cannot open or make. */
const SQLITE_IOERR = 10;
const SQLITE_CANTOPEN = 14;

/** SQLite's result code for "database or disk is full". */
const SQLITE_FULL = 13;

/** SQLite's "database or disk is full" as the Store's StorageFull; any other error unchanged. */
export function storeError(err: unknown): unknown {
  const e = err as { code?: unknown; errcode?: unknown } | null;
  const full = e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number' && (e.errcode & 0xff) === SQLITE_FULL;
  return full ? new StorageFull((err as Error).message, { cause: err }) : err;
}
