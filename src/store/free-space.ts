/**
 * Free space on the filesystem that holds data_dir, for refusing mail that cannot be stored
 * before it is sent rather than after. statfs(2) reads no disk and costs a few microseconds;
 * it is still taken at most once a second, however many sessions ask.
 */
import fs from 'node:fs';

const MAX_AGE_MS = 1000;

export class FreeSpace {
  private readonly dir: string;
  private value = Infinity;
  private takenAt = -Infinity;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Bytes available to mailnest (not counting root's reserve); Infinity if unknown. */
  bytes(now = Date.now()): number {
    if (now - this.takenAt >= MAX_AGE_MS) {
      this.takenAt = now;
      try {
        const s = fs.statfsSync(this.dir);
        this.value = s.bavail * s.bsize;
      } catch {
        this.value = Infinity;
      }
    }
    return this.value;
  }
}
