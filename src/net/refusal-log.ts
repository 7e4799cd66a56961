/**
 * The log line of a refused connection, one per client (an IPv6 one by its /64) and minute at
 * most, with the number left unlogged since: a client refused thousands of times a second wrote
 * as many lines. Past CLIENTS clients logged in the last minute, the others share one line a
 * minute. One per listener (SMTP, POP3, HTTP).
 */
import type { Logger } from 'pino';
import { clientKey } from './client-key.ts';

const EVERY_MS = 60_000;
const CLIENTS = 10_000;
const OTHERS = '';

export class RefusalLog {
  private readonly log: Logger;
  private readonly listener: string;
  private readonly logged = new Map<string, { at: number; unlogged: number }>();
  private swept = 0;

  constructor(log: Logger, listener: string) {
    this.log = log;
    this.listener = listener;
  }

  refused(ip: string, reason: string): void {
    const now = Date.now();
    let key = clientKey(ip);
    if (!this.logged.has(key) && this.logged.size >= CLIENTS) {
      // Those logged over a minute ago go, a second at most after the last look.
      if (now - this.swept >= 1000) {
        this.swept = now;
        for (const [k, l] of this.logged) if (now - l.at >= EVERY_MS) this.logged.delete(k);
      }
      if (this.logged.size >= CLIENTS) key = OTHERS;
    }
    const last = this.logged.get(key);
    if (last && now - last.at < EVERY_MS) {
      last.unlogged++;
      return;
    }
    this.logged.set(key, { at: now, unlogged: 0 });
    const client = key === OTHERS ? 'others' : ip;
    this.log.warn({ listener: this.listener, client, reason, ...(last?.unlogged ? { unlogged: last.unlogged } : {}) }, 'connection refused');
  }
}
