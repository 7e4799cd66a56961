/**
 * Failed-login throttling, shared by SMTP, POP3 (and IMAP): per client address, each failure
 * past the first adds a growing delay before the answer; at `maxFailures` the session is
 * dropped, and the address is refused until its failures are forgotten after a quiet window.
 * The clock is passed in.
 *
 * - An attempt is counted from its start (`begin`), not once its slow password check is over:
 *   otherwise attempts sent at once on many connections would all be checked before the first
 *   failure counted (RFC 4954 §14 asks servers to limit password guessing).
 * - A success forgives the failures for the same user only: one account of one's own must not
 *   reset the count of guesses at the others'.
 */
export interface ThrottleVerdict {
  /** Milliseconds to wait before answering the failed attempt. */
  delayMs: number;
  /** True when the client has used up its attempts: answer, then disconnect. */
  disconnect: boolean;
}

interface Entry {
  /** Failures counted (those forgiven taken out). */
  count: number;
  /** Of them, per user name (lower case). */
  byUser: Map<string, number>;
  /** Attempts begun and not yet ended. */
  pending: number;
  last: number;
}

const FORGET_AFTER_MS = 15 * 60_000;
const MAX_TRACKED = 100_000;

export class AuthThrottle {
  private entries = new Map<string, Entry>();
  private readonly maxFailures: number;

  constructor(maxFailures: number) {
    this.maxFailures = maxFailures;
  }

  /** Starts an attempt from `client`; false when it is over the limit, counting the attempts
   *  under way (refuse it then). Every true is followed by one fail, succeed or abandon. */
  begin(client: string, now: number): boolean {
    const entry = this.current(client, now);
    if (entry.count + entry.pending >= this.maxFailures) return false;
    entry.pending++;
    entry.last = now;
    return true;
  }

  /** Ends an attempt as a failure for `user` and says how to answer it. */
  fail(client: string, user: string, now: number): ThrottleVerdict {
    const entry = this.current(client, now);
    entry.pending = Math.max(0, entry.pending - 1);
    entry.count++;
    const key = user.toLowerCase();
    entry.byUser.set(key, (entry.byUser.get(key) ?? 0) + 1);
    entry.last = now;
    // 0, 0.5 s, 1 s, 2 s, ... capped at 8 s.
    const delayMs = entry.count <= 1 ? 0 : Math.min(500 * 2 ** (entry.count - 2), 8000);
    return { delayMs, disconnect: entry.count >= this.maxFailures };
  }

  /** Ends an attempt as a success for `user`, whose failures are forgiven. */
  succeed(client: string, user: string): void {
    const entry = this.entries.get(client);
    if (!entry) return;
    entry.pending = Math.max(0, entry.pending - 1);
    const key = user.toLowerCase();
    entry.count -= entry.byUser.get(key) ?? 0;
    entry.byUser.delete(key);
    if (entry.count <= 0 && entry.pending === 0) this.entries.delete(client);
  }

  /** Ends an attempt that came to no verdict (an error on the way). */
  abandon(client: string): void {
    const entry = this.entries.get(client);
    if (entry) entry.pending = Math.max(0, entry.pending - 1);
  }

  /** True when the client is over the limit from earlier attempts. */
  blocked(client: string, now: number): boolean {
    const entry = this.entries.get(client);
    return !!entry && now - entry.last < FORGET_AFTER_MS && entry.count >= this.maxFailures;
  }

  /** The client's entry, a fresh one when it had none or its failures are forgotten. */
  private current(client: string, now: number): Entry {
    let entry = this.entries.get(client);
    if (entry && now - entry.last >= FORGET_AFTER_MS) {
      entry.count = 0;
      entry.byUser.clear();
    }
    if (!entry) {
      if (this.entries.size >= MAX_TRACKED) this.prune(now);
      entry = { count: 0, byUser: new Map(), pending: 0, last: now };
      this.entries.set(client, entry);
    }
    return entry;
  }

  private prune(now: number): void {
    for (const [k, v] of this.entries) if (now - v.last >= FORGET_AFTER_MS && v.pending === 0) this.entries.delete(k);
  }
}
