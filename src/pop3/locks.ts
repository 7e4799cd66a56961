/**
 * Maildrop locks (RFC 1939 §8): one session at a time per mailbox. The table lives in the
 * process, shared by the pop3 and pop3s listeners; a lock is released when its session quits
 * or its connection ends, and a crash of the process takes the whole table with it, so a stale
 * lock can never keep the owner out.
 */
import type { Pop3Owner } from './effects.ts';

export class MaildropLocks {
  private byUser = new Map<number, Pop3Owner>();
  private byOwner = new Map<Pop3Owner, number>();

  /** Takes the lock of `userId` for `owner`; false when another session holds it. */
  acquire(userId: number, owner: Pop3Owner): boolean {
    if (owner.closed) return false;
    const holder = this.byUser.get(userId);
    if (holder !== undefined && holder !== owner) return false;
    this.release(owner);
    this.byUser.set(userId, owner);
    this.byOwner.set(owner, userId);
    return true;
  }

  /** Releases whatever `owner` holds (nothing is fine). */
  release(owner: Pop3Owner): void {
    const userId = this.byOwner.get(owner);
    if (userId === undefined) return;
    this.byOwner.delete(owner);
    if (this.byUser.get(userId) === owner) this.byUser.delete(userId);
  }

  isLocked(userId: number): boolean {
    return this.byUser.has(userId);
  }

  get size(): number {
    return this.byUser.size;
  }
}
