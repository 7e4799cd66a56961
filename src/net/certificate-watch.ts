/**
 * Keeps the server's certificate current while it runs: every hour, and at once when asked (the
 * start command asks on SIGHUP, as certbot's deploy hook or `systemctl reload` signal), a
 * certificate renewed on disk is taken up and a self-signed one due for renewal is made anew
 * (tls.ts). A configured certificate near its end is its owner's to renew: that is said once a
 * day from 14 days before.
 */
import type { Logger } from '../log.ts';
import type { Service } from '../server.ts';
import type { ServerCertificate } from './tls.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WARN_BEFORE = 14 * DAY;
const RELOADED = 'TLS certificate reloaded; TLS sessions that begin from now on use it';

export class CertificateWatch implements Service {
  readonly name = 'tls';
  private readonly certificate: ServerCertificate;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  /** The check under way: a second request waits for it, then checks again. */
  private checking: Promise<void> = Promise.resolve();
  private warnedAt = -Infinity;
  /** Stops a renewal under way when the server stops. */
  private readonly stopping = new AbortController();

  constructor(certificate: ServerCertificate, log: Logger) {
    this.certificate = certificate;
    this.log = log;
  }

  async start(): Promise<string[]> {
    this.warnIfEnding();
    this.timer = setInterval(() => void this.check(), HOUR);
    this.timer.unref();
    return [];
  }

  /** A renewal under way is stopped, not waited for: what it left is made again at the next
   *  start, as the certificate there is still due. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopping.abort();
  }

  /** Resolves, once the files have been looked at, with true when the certificate in use
   *  changed (never rejects: what went wrong is logged). */
  check(): Promise<boolean> {
    const done = this.checking.then(async () => {
      const { certificate: c } = this;
      let changed = false;
      try {
        changed = await c.refresh(this.stopping.signal);
        if (changed) this.log.info({ cert: c.certFile, valid_until: c.validTo.toISOString() }, RELOADED);
      } catch (err) {
        if (this.stopping.signal.aborted) return false;
        this.log.warn({ cert: c.certFile, valid_until: c.validTo.toISOString() }, `${(err as Error).message}; the certificate loaded before stays in use`);
      }
      this.warnIfEnding();
      return changed;
    });
    this.checking = done.then(() => undefined);
    return done;
  }

  private warnIfEnding(): void {
    const c = this.certificate;
    const now = Date.now();
    if (c.madeHere || c.validTo.getTime() - now > WARN_BEFORE || now - this.warnedAt < DAY) return;
    this.warnedAt = now;
    const ended = c.validTo.getTime() <= now;
    this.log.warn({ cert: c.certFile, valid_until: c.validTo.toISOString() },
      `tls.cert ${ended ? 'has ended' : 'ends soon'}: renew it; mailnest takes up the renewed files within an hour, or at once on SIGHUP`);
  }
}
