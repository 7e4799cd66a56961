/**
 * Medium-sized message bodies, appended to log files in `data_dir/body-log/` (segments, named
 * by a growing number); the database keeps where each body lies (`bodies.log_segment`,
 * `bodies.log_offset`).
 *
 * Why: in the database a 100 KiB body is cut into pages, each written to the WAL with a frame
 * header of its own (two system calls per page, dozens per message, all on the event loop) and
 * copied again into the database file at the checkpoint. Here it is one write on the event loop
 * and one fdatasync, in the thread pool, shared by every body written meanwhile.
 * Unlike a file per body (body-files.ts), appending creates no file, which on ext4 would cost a
 * journal commit per message.
 *
 * The body's flush runs at the same time as the flush of the commit that refers to it, and
 * nothing is acknowledged before both are done. A crash of the machine between the two can
 * leave a committed row whose body never reached the disk: a message never acknowledged, which
 * recovery finds and removes. What makes that safe:
 * - the row keeps the body's CRC-32;
 * - a segment being written has a marker file beside it, `SEGMENT.PID.TOKEN.open`, on disk
 *   before any body is appended; the writer removes it once every body in the segment is
 *   flushed and committed or given up. A marker whose writer is gone (`abandoned`) is what a
 *   crash left: sqlite-store.ts then checks every body of that segment against its row's
 *   checksum. The token tells a writer from an earlier process with the same pid (in a
 *   container, mailnest may be pid 1 on every start), and the marker holds the writer's boot
 *   and start time (process-identity.ts), which tell it from another process that has its pid
 *   since a reboot, or from itself killed and not yet reaped;
 * - a segment is only ever appended to, by the process that created it: a restart begins a new
 *   one, so nothing written before a crash is overwritten or read as part of a new body;
 * - bytes no row refers to (a rolled-back message, a crash before the commit, a deleted message)
 *   are dead space, which `sweep` in sqlite-store.ts takes back: it removes a segment no row
 *   refers to, and moves the live bodies out of one that is mostly dead.
 * A segment is busy while this process still writes to it or holds a body in it that awaits its
 * commit, and while it was written to in the last hour (perhaps by another process, such as
 * `mailnest sendmail`): the sweep leaves it alone.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, crc32, totalLength } from '../../chunks.ts';
import type { PiecePool } from './piece-pool.ts';
import { checkedPieces } from './read-pieces.ts';
import { SharedFlush } from './shared-flush.ts';
import { readIfThere } from '../data-dir.ts';
import { processIdentity } from '../process-identity.ts';

const fdatasync = promisify(fs.fdatasync);

/** The tokens of the body logs this process opened (see writerGone). */
const OURS = new Set<string>();

/** A new segment is begun once the current one holds this many bytes. */
const SEGMENT_BYTES = 16 * 1024 * 1024;

/** Where a body lies, and its CRC-32. */
export interface LogPlace {
  segment: number;
  offset: number;
  crc: number;
}

interface Segment {
  fd: number;
  /** Bytes written so far: where the next body goes. */
  end: number;
  /** Bodies written and not yet committed or given up (see release). */
  pending: number;
  /** Written since the last flush began. */
  dirty: boolean;
  /** A flush of it is under way: its descriptor stays open until that ends. */
  flushing: boolean;
}

export class BodyLog {
  readonly dir: string;
  private readonly dirFd: number;
  private readonly segmentBytes: number;
  /** Segments this process has written to and not closed. */
  private readonly open = new Map<number, Segment>();
  /** The segment this process appends to (0 until the first append). */
  private current = 0;
  /** Names this body log's markers, with the pid. */
  private readonly token = crypto.randomBytes(4).toString('hex');
  private readonly shared: SharedFlush;

  /** `segmentBytes`: where a segment ends (a test makes it small). */
  constructor(dataDir: string, opts: { segmentBytes?: number; onFailure?: (err: Error) => void } = {}) {
    this.dir = path.join(dataDir, 'body-log');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.dirFd = fs.openSync(this.dir, 'r');
    this.segmentBytes = opts.segmentBytes ?? SEGMENT_BYTES;
    OURS.add(this.token);
    this.shared = new SharedFlush(() => this.flushDirty(), opts.onFailure);
  }

  /** The numbers of the segment files there are. */
  segments(): number[] {
    return fs.readdirSync(this.dir).filter((n) => /^\d+$/.test(n)).map(Number);
  }

  /** The segments whose writer ended without sealing them: its marker is there, its process gone. */
  abandoned(): number[] {
    return [...new Set(this.markers().filter(writerGone).map((m) => m.segment))];
  }

  /** True when the `size` bytes at `place` are there and match its checksum (a body without
   *  one, written before bodies in the log had one, only has to be there). */
  intact(place: Omit<LogPlace, 'crc'> & { crc: number | undefined }, size: number): boolean {
    try {
      for (const piece of checkedPieces(this.file(place.segment), place.offset, size, place.crc)) void piece;
      return true;
    } catch {
      // Gone, too short, or not what was written.
      return false;
    }
  }

  /** The bodies of an abandoned segment are checked: the markers of its dead writers go. */
  sealAbandoned(segment: number): void {
    for (const m of this.markers()) {
      if (m.segment === segment && writerGone(m)) unlinkIfThere(m.file);
    }
  }

  /** The marker files there are, with the segment, the writer's pid and token each names. */
  private markers(): Marker[] {
    const out = [];
    for (const n of fs.readdirSync(this.dir)) {
      const m = /^(\d+)\.(\d+)\.([0-9a-f]+)\.open$/.exec(n);
      if (m) out.push({ file: path.join(this.dir, n), segment: Number(m[1]), pid: Number(m[2]), token: m[3]! });
    }
    return out;
  }

  /** The size of a segment file. */
  size(segment: number): number {
    return fs.statSync(this.file(segment)).size;
  }

  /**
   * True while the segment may still be written to or gain a row: this process's current one,
   * one holding a body of this process that awaits its commit, one whose writer still runs (its
   * marker), and one written to in the last `recentMs`.
   */
  busy(segment: number, recentMs: number): boolean {
    if (segment === this.current || (this.open.get(segment)?.pending ?? 0) > 0) return true;
    if (this.markers().some((m) => m.segment === segment && !writerGone(m))) return true;
    try {
      return fs.statSync(this.file(segment)).mtimeMs > Date.now() - recentMs;
    } catch {
      return true;
    }
  }

  /**
   * Appends a body (on the calling thread: a copy into the page cache) and returns where it
   * lies. It is durable once `sync()` resolves. Every `append` is followed by one `release` of
   * its segment, once the row that refers to it is committed or given up.
   */
  append(chunks: Buffer[]): LogPlace {
    const size = totalLength(chunks);
    let seg = this.open.get(this.current) ?? this.begin();
    if (seg.end > 0 && seg.end + size > this.segmentBytes) seg = this.begin();
    const place = { segment: this.current, offset: seg.end, crc: crc32(chunks) };
    seg.end += size;
    seg.pending++;
    seg.dirty = true;
    try {
      writeAll(seg.fd, chunks, place.offset);
    } catch (err) {
      // What was written of it goes (appends are synchronous: nothing lies after it): on a full
      // disk those blocks are what the next message, or the sweep, needs.
      try {
        fs.ftruncateSync(seg.fd, place.offset);
        seg.end = place.offset;
      } catch {
        // Then what lies there is dead and never read.
      }
      this.release(place.segment);
      throw err;
    }
    return place;
  }

  /** The row referring to a body appended to `segment` is committed, or given up. */
  release(segment: number): void {
    const seg = this.open.get(segment);
    if (!seg) return;
    seg.pending--;
    this.closeIfDone(segment);
  }

  /** Resolves once every body appended before the call is on disk. */
  sync(): Promise<void> {
    return this.shared.flush();
  }

  /**
   * The body of `size` bytes at `offset` in `segment`, read as it is asked for and checked
   * against its `crc` (see checkedPieces): a body in the log is one piece, so nothing of a
   * damaged one goes out as if it were the message. One written before bodies in the log had a
   * checksum is read unchecked, as such a body file is.
   */
  async *read(segment: number, offset: number, size: number, crc: number | undefined, pool?: PiecePool): AsyncIterable<Buffer> {
    yield* checkedPieces(this.file(segment), offset, size, crc, pool);
  }

  /** Removes segments no row refers to any more (and none will: the caller checked `busy`), and
   *  their markers. */
  remove(segments: number[]): void {
    const gone = new Set(segments);
    for (const m of this.markers()) {
      if (gone.has(m.segment)) unlinkIfThere(m.file);
    }
    for (const s of segments) unlinkIfThere(this.file(s));
  }

  /** Flushes what was written, seals it and lets go of the files (for close). */
  close(): void {
    for (const [n, seg] of this.open) {
      // A flush under way may not have ended: this one makes sure before the marker goes.
      if (seg.dirty || seg.flushing) fs.fdatasyncSync(seg.fd);
      seg.dirty = false;
      this.open.delete(n);
      unlinkIfThere(this.marker(n));
      // A flush under way may still use the descriptor: it is closed once that has ended.
      void this.shared.settled().then(() => fs.closeSync(seg.fd));
    }
    void this.shared.settled().then(() => fs.closeSync(this.dirFd));
  }

  /** Whether the segment's file is there. */
  has(segment: number): boolean {
    return fs.existsSync(this.file(segment));
  }

  private file(segment: number): string {
    return path.join(this.dir, name(segment));
  }

  private marker(segment: number): string {
    return path.join(this.dir, `${name(segment)}.${process.pid}.${this.token}.open`);
  }

  /**
   * Begins a new segment after every one there is, with its marker, and makes it the current
   * one. Another process on the same data directory (`mailnest sendmail`) appends to segments of
   * its own: 'wx' makes sure no two share one. Both names are flushed to disk here, once per
   * segment, so that no commit can refer to a segment a crash could take away.
   */
  private begin(): Segment {
    const before = this.current;
    for (;;) {
      const n = Math.max(before, ...this.segments()) + 1;
      try {
        const seg = { fd: fs.openSync(this.file(n), 'wx', 0o600), end: 0, pending: 0, dirty: false, flushing: false };
        writeMarker(this.marker(n));
        fs.fsyncSync(this.dirFd);
        this.open.set(n, seg);
        this.current = n;
        // The one before is written to no more: once flushed and released it is closed.
        this.closeIfDone(before);
        return seg;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }

  /** Seals and closes a segment that is written to no more, flushed, and holds no body awaiting
   *  its commit. */
  private closeIfDone(n: number): void {
    const seg = this.open.get(n);
    if (!seg || n === this.current || seg.pending > 0 || seg.dirty || seg.flushing) return;
    this.open.delete(n);
    fs.closeSync(seg.fd);
    unlinkIfThere(this.marker(n));
  }

  /** One flush: every segment written since the last began. */
  private async flushDirty(): Promise<void> {
    const dirty = [...this.open].filter(([, s]) => s.dirty);
    for (const [, s] of dirty) {
      s.dirty = false;
      s.flushing = true;
    }
    try {
      await Promise.all(dirty.map(([, s]) => fdatasync(s.fd)));
    } catch (err) {
      // Not flushed: the next flush tries again.
      for (const [, s] of dirty) s.dirty = true;
      throw err;
    } finally {
      for (const [n, s] of dirty) {
        s.flushing = false;
        this.closeIfDone(n);
      }
    }
  }
}

/** Writes every byte of `chunks` at `offset`; a short write (the disk filled up midway) is
 *  followed by one that fails with the reason. */
function writeAll(fd: number, chunks: Buffer[], offset: number): void {
  let left = chunks;
  let at = offset;
  while (left.length > 0) {
    const n = fs.writevSync(fd, left, at);
    if (n === 0) throw new Error('nothing more could be written to the body log');
    at += n;
    left = after(left, n);
  }
}

function name(segment: number): string {
  return String(segment).padStart(8, '0');
}

interface Marker {
  file: string;
  segment: number;
  pid: number;
  token: string;
}

/** A marker, holding who its writer is (process-identity.ts), on disk before it is relied on. */
function writeMarker(file: string): void {
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    fs.writeSync(fd, processIdentity(process.pid) ?? '');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * True when the process that wrote a marker has ended: with this process's pid, it is an
 * earlier process unless this one made the marker; with another pid, the process that has the
 * pid now is not the one the marker names (another boot, another start, or none: a pid taken
 * by an unrelated program after a reboot, or a writer killed and not yet reaped). A marker that
 * names no one (an earlier version's, or a system without /proc) goes by the pid alone.
 */
function writerGone(m: Marker): boolean {
  if (m.pid === process.pid) return !OURS.has(m.token);
  const writer = readIfThere(m.file).trim();
  const now = processIdentity(m.pid);
  if (writer !== '' && now !== undefined) return now !== writer;
  try {
    process.kill(m.pid, 0);
    return false;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code !== 'EPERM';
  }
}

function unlinkIfThere(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
