/** SQLite's errors as the Store's: a full disk as StorageFull, however SQLite words it. */
import path from 'node:path';
import { freeBytes } from '../free-space.ts';
import { isStorageFull, StorageFull } from '../store.ts';

/**
 * An error met as `file` (a database in data_dir) opened, as what it is: on a full disk SQLite
 * says "disk I/O error" when it cannot make its -wal or -shm file, which would send an operator
 * looking for a failing disk; and a file that is damaged, or no database at all, is named with
 * what to do (`whenDamaged`), where SQLite's words name neither.
 */
export function openingError(file: string, err: unknown, whenDamaged = 'put back the file from a backup'): unknown {
  const e = storeError(err);
  const sqlite = err as { code?: unknown; errcode?: unknown; message?: unknown } | null;
  const primary = sqlite?.code === 'ERR_SQLITE_ERROR' && typeof sqlite.errcode === 'number' ? sqlite.errcode & 0xff : undefined;
  if (isStorageFull(e) || primary === undefined) return e;
  const said = String(sqlite?.message);
  // Only the errors of a file that cannot be made or written can be the disk's being full: a
  // damaged database, a lock held elsewhere or a refused migration stay what they are, however
  // little room is left.
  if ((primary === SQLITE_IOERR || primary === SQLITE_CANTOPEN) && freeBytes(path.dirname(file)) < NEARLY_FULL) {
    return new StorageFull(said, { cause: err });
  }
  if (primary === SQLITE_NOTADB || primary === SQLITE_CORRUPT) {
    return new Error(`${file} is ${primary === SQLITE_NOTADB ? 'not a database' : 'damaged'} (${said}): ${whenDamaged}`, { cause: err });
  }
  if (primary === SQLITE_CANTOPEN) return new Error(`cannot open ${file} (${said}): it must be a file that this user can read and write, in a directory it can write`, { cause: err });
  return e;
}

/** Free bytes under which an error of SQLite's on opening is taken to be the disk's being full. */
const NEARLY_FULL = 1024 * 1024;

/** SQLite's result codes for a failed read or write, a file it cannot open or make, a damaged
 *  database, and a file that is no database. */
const SQLITE_IOERR = 10;
const SQLITE_CANTOPEN = 14;
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;

/** SQLite's result code for "database or disk is full". */
const SQLITE_FULL = 13;

/** SQLite's "database or disk is full" as the Store's StorageFull; any other error unchanged. */
export function storeError(err: unknown): unknown {
  const e = err as { code?: unknown; errcode?: unknown } | null;
  const full = e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number' && (e.errcode & 0xff) === SQLITE_FULL;
  return full ? new StorageFull((err as Error).message, { cause: err }) : err;
}
