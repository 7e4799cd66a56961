/**
 * Drives a sans-I/O SmtpSession in memory: effects are answered from a small table of users
 * and aliases, so every protocol rule can be tested without sockets.
 */
import type { Output, TlsInfo } from '../../src/net/session.ts';
import { SmtpSession, type SmtpEffect, type SmtpResult, type SmtpSessionOptions, type Delivery } from '../../src/smtp/session.ts';
import { outboundOf, type Resolution } from '../../src/delivery/recipients.ts';
import type { Screening } from '../../src/delivery/blocklists.ts';

export interface DriverWorld {
  users: Record<string, { id: number; password: string }>;
  aliases: Record<string, string[]>;
  domains: string[];
}

export const WORLD: DriverWorld = {
  users: { 'alice@example.test': { id: 1, password: 'secret' }, 'bob@example.test': { id: 2, password: 'hunter2' } },
  aliases: { 'team@example.test': ['alice@example.test', 'bob@example.test'], 'al@example.test': ['alice@example.test'], 'fwd@example.test': ['x@remote.test'] },
  domains: ['example.test'],
};

export class SmtpDriver {
  readonly session: SmtpSession;
  readonly world: DriverWorld;
  /** Everything written to the client, as text. */
  written = '';
  delivered: Delivery[] = [];
  effects: SmtpEffect[] = [];
  closed = false;
  tlsRequested = false;
  /** The reasons of the refusals the session reported for counting. */
  refusals: string[] = [];
  /** Their envelopes, for the log (undefined outside a transaction). */
  refusalEnvelopes: ({ from: string; to: string[] } | undefined)[] = [];
  failDelivery: false | 'store-error' | 'storage-full' = false;
  /** Recipients at other domains each user (by id) sent to in the last 24 hours. */
  sent = new Map<number, number>();
  /** What the DNS blocklists say of a client that has not logged in (nothing: clear). */
  screening: Exclude<Screening, 'clear'> | undefined;

  constructor(opts: Partial<SmtpSessionOptions> & { tls?: TlsInfo } = {}, world: DriverWorld = WORLD) {
    this.world = world;
    const { tls, ...policy } = opts;
    this.session = new SmtpSession({
      role: 'smtp', hostname: 'mx.example.test', postmasterDomain: 'example.test', starttls: true, allowInsecureAuth: false,
      maxMessageSize: 10_000, maxRecipients: 5, maxLineLength: 512, ...policy,
    }, '192.0.2.1', tls);
    this.handle(this.session.start());
  }

  /** Sends text (or bytes) and returns what the server wrote in answer. */
  send(data: string | Buffer): string {
    const before = this.written.length;
    this.handle(this.session.receive(typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
    return this.written.slice(before);
  }

  /** The reply codes written since the session started. */
  codes(text = this.written): number[] {
    return text.split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => Number(l.slice(0, 3)));
  }

  handle(outputs: Output<SmtpEffect>[]): void {
    for (const o of outputs) {
      switch (o.type) {
        case 'write': this.written += o.data.toString(); break;
        case 'close': this.closed = true; break;
        case 'starttls': this.tlsRequested = true; break;
        case 'more': this.handle(this.session.receive(Buffer.alloc(0))); break;
        case 'refused': this.refusals.push(o.reason); this.refusalEnvelopes.push(o.envelope); break;
        case 'stream': throw new Error('SMTP does not stream');
        case 'effect': this.effects.push(o.effect); this.handle(this.session.resolve(this.perform(o.effect))); break;
      }
    }
  }

  /** Completes a STARTTLS requested by the session. */
  startTls(): void {
    this.tlsRequested = false;
    this.handle(this.session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' }));
  }

  resolve(address: string, depth = 0): Resolution {
    const key = address.toLowerCase();
    const domain = key.slice(key.lastIndexOf('@') + 1);
    if (!this.world.domains.includes(domain)) return { kind: 'remote' };
    const u = this.world.users[key];
    if (u) return { kind: 'local', users: [{ id: u.id, address: key, passwordHash: '' }], forward: [] };
    const targets = this.world.aliases[key];
    if (!targets || depth > 5) return { kind: 'unknown' };
    const users: { id: number; address: string; passwordHash: string }[] = [];
    const forward: string[] = [];
    for (const t of targets) {
      const r = this.resolve(t, depth + 1);
      if (r.kind === 'local') { users.push(...r.users); forward.push(...r.forward); }
      if (r.kind === 'remote') forward.push(t);
    }
    return { kind: 'local', users, forward };
  }

  perform(e: SmtpEffect): SmtpResult {
    switch (e.kind) {
      case 'auth': {
        const u = this.world.users[e.username.toLowerCase()];
        return u && u.password === e.password ? { kind: 'auth', user: { id: u.id, address: e.username } } : { kind: 'auth' };
      }
      case 'sender': {
        const r = this.resolve(e.address);
        return { kind: 'sender', allowed: r.kind === 'local' && r.users.some((u) => u.id === e.user.id) };
      }
      case 'rcpt': {
        const resolution = this.resolve(e.address);
        if (e.client !== undefined && this.screening) return { kind: 'rcpt', resolution, screening: this.screening };
        return outboundOf(resolution) > 0 && e.sentBy !== undefined ? { kind: 'rcpt', resolution, sent: this.sent.get(e.sentBy) ?? 0 } : { kind: 'rcpt', resolution };
      }
      case 'verify': {
        const targets = this.world.aliases[e.address.toLowerCase()];
        return { kind: 'verify', resolution: this.resolve(e.address), ...(targets ? { alias: { alias: e.address, targets } } : {}) };
      }
      case 'deliver':
        if (this.failDelivery) return { kind: 'deliver', failure: this.failDelivery, reason: this.failDelivery.replace('-', '_') };
        this.delivered.push(e.delivery);
        return { kind: 'deliver', id: `ID${this.delivered.length}` };
    }
  }
}

/** The body of a delivery as one string. */
export function bodyOf(d: Delivery): string {
  return Buffer.concat(d.body).toString('utf8');
}
