/**
 * The retry schedule of the outbound queue: after the n-th failed attempt the next one waits
 * `retry[n-1]`, and once the list is used up its last interval repeats. A recipient older than
 * `max_age` is not retried again: it expires and bounces.
 */
export interface RetryPolicy {
  retry: number[];
  maxAge: number;
}

/** Milliseconds to wait after `attempts` failed attempts (attempts >= 1). */
export function retryDelay(retry: number[], attempts: number): number {
  if (retry.length === 0) throw new Error('empty retry schedule');
  const i = Math.min(Math.max(attempts, 1), retry.length) - 1;
  return retry[i]!;
}

/** What to do after a temporary failure: the time of the next attempt, or expiry. */
export function afterTemporaryFailure(policy: RetryPolicy, created: number, attempts: number, now: number): { expired: false; next: number } | { expired: true } {
  if (now - created >= policy.maxAge) return { expired: true };
  return { expired: false, next: now + retryDelay(policy.retry, attempts) };
}
