/**
 * DNS queries that get the time the configuration gives them. Node's resolver (c-ares 1.34)
 * shortens its wait for an answer once its server has answered fast: behind a local caching
 * resolver, after a few dozen answers from its cache, a query it was told to wait 3 s for times
 * out after 1 s, and a cold recursive lookup that takes 1 to 3 s fails. A query that times out
 * before its own limit is asked again (a recursive resolver answers the repeat once its
 * recursion is done), until that limit.
 */
import { Resolver } from 'node:dns/promises';

/** `ask()`, asked again while it times out (ETIMEOUT), each time for what is left of `ms`: the
 *  whole lookup ends within `ms` of the first question. Exported for its test. */
export async function withinTime<T>(ask: () => Promise<T>, ms: number): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      return await before(ask(), deadline);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ETIMEOUT' || err instanceof TimeUp || performance.now() >= deadline) throw err;
    }
  }
}

/** The lookup's own time ran out: no question is asked again. */
class TimeUp extends Error {
  readonly code = 'ETIMEOUT';
}

/** `answer`, or TimeUp at `deadline` (the query itself is left to end on its own). */
function before<T>(answer: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeUp('DNS query timed out')), Math.max(0, deadline - performance.now()));
  });
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/** A resolver of `servers` (the system's when none) whose every query has `ms`. */
export function patientResolver(ms: number, servers: string[]): (name: string, rrtype: string) => Promise<unknown> {
  const r = new Resolver({ timeout: ms, tries: 1 });
  if (servers.length > 0) r.setServers(servers);
  return (name, rrtype) => withinTime(() => r.resolve(name, rrtype), ms);
}
