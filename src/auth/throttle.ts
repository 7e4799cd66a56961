/**
 * Failed-login throttling, shared by SMTP, POP3 (and IMAP): per client address, each failure
 * past the first adds a growing delay before the answer; at `maxFailures` the session is
 * dropped. Failures are forgotten after a quiet window. The clock is passed in.
 */
export interface ThrottleVerdict {
  /** Milliseconds to wait before answering the failed attempt. */
  delayMs: number;
  /** True when the client has used up its attempts: answer, then disconnect. */
  disconnect: boolean;
}

const FORGET_AFTER_MS = 15 * 60_000;
const MAX_TRACKED = 100_000;

export class AuthThrottle {
  private failures = new Map<string, { count: number; last: number }>();
  private readonly maxFailures: number;

  constructor(maxFailures: number) {
    this.maxFailures = maxFailures;
  }

  /** Records one failure from `client` and says how to answer it. */
  fail(client: string, now: number): ThrottleVerdict {
    const entry = this.failures.get(client);
    const count = entry && now - entry.last < FORGET_AFTER_MS ? entry.count + 1 : 1;
    if (!entry && this.failures.size >= MAX_TRACKED) this.prune(now);
    this.failures.set(client, { count, last: now });
    // 0, 0.5 s, 1 s, 2 s, ... capped at 8 s.
    const delayMs = count <= 1 ? 0 : Math.min(500 * 2 ** (count - 2), 8000);
    return { delayMs, disconnect: count >= this.maxFailures };
  }

  /** True when the client is still over the limit from earlier sessions. */
  blocked(client: string, now: number): boolean {
    const entry = this.failures.get(client);
    return !!entry && now - entry.last < FORGET_AFTER_MS && entry.count >= this.maxFailures;
  }

  succeed(client: string): void {
    this.failures.delete(client);
  }

  private prune(now: number): void {
    for (const [k, v] of this.failures) if (now - v.last >= FORGET_AFTER_MS) this.failures.delete(k);
  }
}
