/**
 * Failed-login throttling, shared by SMTP, POP3 (and IMAP): per client address (an IPv6 one by
 * its /64: see clientKey), each failure
 * past the first adds a growing delay before the answer; at `maxFailures` the session is
 * dropped, and the address is refused until its failures are forgotten, a quiet window (15
 * minutes without a failure) after the last one, however many logins succeed meanwhile.
 * The clock is passed in.
 *
 * - An attempt is counted from its start (`begin`), not once its slow password check is over:
 *   otherwise attempts sent at once on many connections would all be checked before the first
 *   failure counted (RFC 4954 §14 asks servers to limit password guessing). No more attempts
 *   from one address are checked at once than it has failures left; the others wait their turn
 *   (a client's parallel logins, or many users behind one address, are only put in a line).
 * - A success forgives the failures for the same user only: one account of one's own must not
 *   reset the count of guesses at the others'.
 */
import { clientKey } from '../net/client-key.ts';

export interface ThrottleVerdict {
  /** Milliseconds to wait before answering the failed attempt. */
  delayMs: number;
  /** True when the client has used up its attempts: answer, then disconnect. */
  disconnect: boolean;
}

interface Entry {
  /** Failures not forgiven, per user name (lower case). */
  byUser: Map<string, number>;
  /** Attempts begun and not yet ended. */
  pending: number;
  /** Attempts waiting for their turn. */
  waiting: (() => void)[];
  /** When the last failure was: the failures are forgotten a quiet window after it. */
  lastFailure: number;
  /** When the address was last seen at all (for pruning). */
  lastSeen: number;
}

const FORGET_AFTER_MS = 15 * 60_000;
/** Addresses tracked at most; past it, a tenth of them make room (see prune). */
const MAX_TRACKED = 100_000;

export class AuthThrottle {
  private entries = new Map<string, Entry>();
  private readonly maxFailures: number;
  private readonly maxTracked: number;

  constructor(maxFailures: number, maxTracked = MAX_TRACKED) {
    this.maxFailures = maxFailures;
    this.maxTracked = maxTracked;
  }

  /** Starts an attempt from `client` once its turn comes; false when the client is over the
   *  limit (refuse it then). Every true is followed by one fail, succeed or abandon. */
  async begin(client: string, now: number): Promise<boolean> {
    const key = clientKey(client);
    for (;;) {
      // Looked up again after each wait: the entry may have been forgiven and dropped meanwhile.
      const entry = this.current(key, now);
      const count = failures(entry);
      if (count >= this.maxFailures) return false;
      if (entry.pending < Math.max(1, this.maxFailures - count)) {
        entry.pending++;
        entry.lastSeen = Math.max(entry.lastSeen, now);
        return true;
      }
      await new Promise<void>((resolve) => entry.waiting.push(resolve));
    }
  }

  /** Ends an attempt as a failure for `user` and says how to answer it. */
  fail(client: string, user: string, now: number): ThrottleVerdict {
    const entry = this.current(clientKey(client), now);
    const name = user.toLowerCase();
    entry.byUser.set(name, (entry.byUser.get(name) ?? 0) + 1);
    entry.lastFailure = now;
    entry.lastSeen = Math.max(entry.lastSeen, now);
    this.end(entry);
    // 0, 0.5 s, 1 s, 2 s, ... capped at 8 s.
    const count = failures(entry);
    const delayMs = count <= 1 ? 0 : Math.min(500 * 2 ** (count - 2), 8000);
    return { delayMs, disconnect: count >= this.maxFailures };
  }

  /** Ends an attempt as a success for `user`, whose failures are forgiven. */
  succeed(client: string, user: string): void {
    const key = clientKey(client);
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.byUser.delete(user.toLowerCase());
    this.end(entry);
    if (entry.byUser.size === 0 && entry.pending === 0) this.entries.delete(key);
  }

  /** Ends an attempt that came to no verdict (an error on the way). */
  abandon(client: string): void {
    const entry = this.entries.get(clientKey(client));
    if (entry) this.end(entry);
  }

  /** One attempt fewer under way: those waiting look again. */
  private end(entry: Entry): void {
    entry.pending = Math.max(0, entry.pending - 1);
    for (const wake of entry.waiting.splice(0)) wake();
  }

  /** The client's entry, a fresh one when it had none; its failures forgotten after the window. */
  private current(client: string, now: number): Entry {
    let entry = this.entries.get(client);
    if (entry && now - entry.lastFailure >= FORGET_AFTER_MS) entry.byUser.clear();
    if (!entry) {
      if (this.entries.size >= this.maxTracked) this.prune(now);
      entry = { byUser: new Map(), pending: 0, waiting: [], lastFailure: 0, lastSeen: now };
      this.entries.set(client, entry);
    }
    return entry;
  }

  /** Drops the addresses quiet for the window and, when that leaves over nine tenths of the
   *  limit (a flood of new addresses, each failing), the earliest tracked: a scan of them all
   *  every tenth of the limit new addresses, not one for each. An address with an attempt under
   *  way or waiting stays. */
  private prune(now: number): void {
    const idle = (e: Entry) => e.pending === 0 && e.waiting.length === 0;
    for (const [k, v] of this.entries) {
      if (idle(v) && now - v.lastSeen >= FORGET_AFTER_MS) this.entries.delete(k);
    }
    const keep = Math.floor(this.maxTracked * 0.9);
    for (const [k, v] of this.entries) {
      if (this.entries.size <= keep) break;
      if (idle(v)) this.entries.delete(k);
    }
  }
}

/** The failures of an address not forgiven, all users together. */
function failures(entry: Entry): number {
  let n = 0;
  for (const c of entry.byUser.values()) n += c;
  return n;
}
