/**
 * Free space on the filesystem that holds data_dir, for refusing mail that cannot be stored
 * before it is sent rather than after. The reading is refreshed in the background once a
 * second, so asking for it is reading a number: no system call on a session's path.
 */
import fs from 'node:fs';

const REFRESH_MS = 1000;

/** Room kept for everything besides the messages being stored (the WAL's own growth, and the
 *  deletions that free the disk again). */
const RESERVE = 1024 * 1024;

/** What each copy of a message costs besides its body: its row, its trace fields and their
 *  pages in the write-ahead log and the database (measured: about 400 bytes). */
const PER_COPY = 1024;

/**
 * Whether `free` bytes can hold a message of `size` bytes (0 when no size was declared) stored as
 * `copies` copies (local mailboxes and queued recipients; none known yet at MAIL): what it costs
 * (see cost), leaving RESERVE.
 */
export function roomFor(free: number, size: number, copies = 0): boolean {
  return free >= roomNeeded(size, copies);
}

/** The free bytes a message needs (see roomFor). */
export function roomNeeded(size: number, copies = 0): number {
  return cost(size, copies) + RESERVE;
}

/** What storing a message takes of the disk: twice its size, since a body kept in the database
 *  (up to 32 KiB) is written to its WAL and then to the database file (a larger one, to the body
 *  log or a file of its own, only once), and PER_COPY for each copy. */
function cost(size: number, copies: number): number {
  return 2 * size + copies * PER_COPY;
}

/** Room on the disk for messages about to be stored: what `take` allows is counted off until
 *  the next reading, so that messages taken at once do not all count the same free bytes. */
export interface Room {
  /** Free bytes at the last reading, less what was taken since. */
  readonly bytes: number;
  take(size: number, copies?: number): boolean;
}

/** Room read now, for a command that stores one message and ends. */
export function roomNow(dir: string): Room {
  const bytes = freeBytes(dir);
  return { bytes, take: (size, copies) => roomFor(bytes, size, copies) };
}

export class FreeSpace implements Room {
  private readonly dir: string;
  private value: number;
  private readonly timer: NodeJS.Timeout;

  constructor(dir: string) {
    this.dir = dir;
    this.value = this.measureNow();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS).unref();
  }

  /** Bytes available to mailnest (not counting root's reserve) at the last reading; Infinity if unknown. */
  get bytes(): number {
    return this.value;
  }

  /** roomFor at the last reading. */
  roomFor(declaredSize: number): boolean {
    return roomFor(this.value, declaredSize);
  }

  /** roomFor a message about to be stored, which is counted off the reading until the next
   *  one: false, and nothing counted, when there is no room for it. */
  take(size: number, copies = 0): boolean {
    if (!roomFor(this.value, size, copies)) return false;
    this.value -= cost(size, copies);
    return true;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private measureNow(): number {
    return freeBytes(this.dir);
  }

  private refresh(): void {
    fs.statfs(this.dir, (err, s) => {
      this.value = err ? Infinity : available(s);
    });
  }
}

/** Bytes available under `dir` now, read on the calling thread; Infinity if unknown. */
export function freeBytes(dir: string): number {
  try {
    return available(fs.statfsSync(dir));
  } catch {
    return Infinity;
  }
}

function available(s: fs.StatsFs): number {
  return s.bavail * s.bsize;
}
