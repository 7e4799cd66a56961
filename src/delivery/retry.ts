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

/**
 * What to do after a temporary failure: the time of the next attempt, or expiry. The next
 * attempt is made no later than `max_age`, and no later than `warnAt` (the message's
 * `delay_warning` age, while a warning is still due): each is judged at an attempt, and would
 * otherwise wait for the next one, up to a whole interval late ("4h" on the default schedule).
 */
export function afterTemporaryFailure(policy: RetryPolicy, created: number, attempts: number, now: number, warnAt?: number): { expired: false; next: number } | { expired: true } {
  if (now - created >= policy.maxAge) return { expired: true };
  let next = Math.min(now + retryDelay(policy.retry, attempts), created + policy.maxAge);
  if (warnAt !== undefined && warnAt > now) next = Math.min(next, warnAt);
  return { expired: false, next };
}
