/**
 * DNS blocklists (RFC 5782) of the clients of the `smtp` listener, `[checks] dnsbl`: a client
 * whose address one of the zones lists gets `554 5.7.1` at RCPT, as Postfix's reject_rbl_client
 * answers, except for mail to a local postmaster (RFC 5321 §4.5.1), so that a client listed by
 * mistake can still say so. A session that has logged in is never screened: a user's home
 * address is in the lists of dynamic addresses (Spamhaus's PBL, in its zen zone).
 *
 * A client is looked up when it connects, so that the answers are in by its first RCPT, and
 * what the lookup came to is remembered for a while (see LISTED_MS). A zone that fails or does
 * not answer in time lists nobody: a blocklist that cannot be asked must not stop the mail. But
 * when too many lookups are under way for another to be asked (a flood of connections from
 * many addresses while the DNS is slow), the recipient gets a temporary refusal: a flood must
 * not be the way past the lists.
 */
import net from 'node:net';
import { remember } from '../bounded-map.ts';
import { clientAddress, ipv6Groups } from '../net/client-key.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { patientResolver } from './dns-patience.ts';
import { DnsCache, type DNSResolver } from './inbound-checks.ts';

export interface Listing {
  /** The zone, as a reply may show it (see shownZone). */
  zone: string;
  /** The zone's TXT record for the address (RFC 5782 §2.1), its first MAX_REASON characters,
   *  when it has one. */
  reason?: string;
}

/** What a client's lookup came to: a zone lists it; none does, or none could tell (`clear`); or
 *  it could not be asked, too many lookups being under way (`busy`, see MAX_QUERIES in DnsCache). */
export type Screening = Listing | 'clear' | 'busy';

/** Most of a TXT reason put in a reply: a URL to the listing, as the zones give. */
const MAX_REASON = 200;

/** How long a client's screening is remembered: a listing for as long as the DNS answers are
 *  (five minutes), its absence a minute, also when a zone did not answer in time, so that a
 *  zone that does not answer costs a client its wait once, not at every recipient. */
const LISTED_MS = 5 * 60_000;
const CLEAR_MS = 60_000;
/** Clients whose screening is remembered, at most (the oldest go first). */
const REMEMBERED = 10_000;

/** RFC 5782 §2.1 and §2.4: the name under `zone` that lists `ip`, its octets (IPv4) or nibbles
 *  (IPv6) in reverse order; an IPv4 address mapped into IPv6 is its IPv4 address. */
export function listingName(ip: string, zone: string): string | undefined {
  const address = clientAddress(ip).replace(/%.*$/, '');
  if (net.isIPv4(address)) return `${address.split('.').reverse().join('.')}.${zone}`;
  if (!net.isIPv6(address)) return undefined;
  const nibbles = ipv6Groups(address).map((g) => g.toString(16).padStart(4, '0')).join('');
  return `${[...nibbles].reverse().join('.')}.${zone}`;
}

/** RFC 5782 §2.3: a listing is an address in 127.0.0.0/8. Others are no answer of the zone's
 *  (a resolver that answers every name with its own page, say), nor are 127.255.255.0/24, the
 *  error codes Spamhaus answers a resolver it refuses (a public one, or one over its limit). */
export function isListing(a: string): boolean {
  return a.startsWith('127.') && !a.startsWith('127.255.255.');
}

/** The zone as replies and the log show it: a label that is an access key (16 characters or
 *  more, letters and digits both, as the key Spamhaus's DQS puts first in its zones' names) is
 *  shown as "*", so that no listed client reads the operator's key. */
export function shownZone(zone: string): string {
  return zone.split('.').map((l) => (l.length >= 16 && /[a-z]/i.test(l) && /\d/.test(l) ? '*' : l)).join('.');
}

/** How often a zone that answers with an error code is said to, at most. */
const ERROR_CODE_TOLD_EVERY_MS = 3_600_000;

export class Blocklists {
  private readonly zones: string[];
  private readonly dns: DnsCache;
  /** Each client's screening, under way or done (with when it is to be forgotten), so that the
   *  one begun at the connection serves its recipients and the connections soon after it. */
  private readonly screenings = new Map<string, { promise: Promise<Screening>; expires: number }>();
  private readonly onErrorCode: (zone: string, code: string) => void;
  /** When each zone's error code was last told. */
  private readonly errorCodeTold = new Map<string, number>();
  private readonly now: () => number;

  /** `onErrorCode`: a zone answered one of its error codes (127.255.255.x), at most once an hour
   *  a zone: it refuses the resolver, and lists nobody until the operator changes that. */
  constructor(zones: string[], resolver: DNSResolver, timeoutMs: number, opts: { onErrorCode?: (zone: string, code: string) => void; now?: () => number } = {}) {
    this.zones = zones;
    this.now = opts.now ?? Date.now;
    this.dns = new DnsCache(resolver, timeoutMs, this.now);
    this.onErrorCode = opts.onErrorCode ?? (() => {});
  }

  /** What the zones say of `ip`. Never rejects. */
  screen(ip: string): Promise<Screening> {
    const known = this.screenings.get(ip);
    if (known && known.expires > this.now()) return known.promise;
    const promise = this.lookUp(ip);
    const entry = { promise, expires: Infinity };
    remember(this.screenings, ip, entry, REMEMBERED);
    void promise.then((s) => {
      if (s === 'busy') {
        if (this.screenings.get(ip) === entry) this.screenings.delete(ip);
      }
      else entry.expires = this.now() + (s === 'clear' ? CLEAR_MS : LISTED_MS);
    });
    return promise;
  }

  /** A zone that lists the client, the first to say so: one that is slow to answer does not
   *  hold up another's listing. */
  private async lookUp(ip: string): Promise<Screening> {
    let busy = false;
    const found = await firstFound(this.zones.map(async (zone) => {
      const name = listingName(ip, zone);
      if (!name) return undefined;
      const a = await this.dns.resolve(name, 'A').catch((err: unknown) => {
        if ((err as { code?: string }).code === 'EBUSY') busy = true;
        return [];
      }) as string[];
      const error = a.find((x) => x.startsWith('127.') && !isListing(x));
      if (error) this.errorCode(zone, error);
      return a.some(isListing) ? { zone, name } : undefined;
    }));
    if (!found) return busy ? 'busy' : 'clear';
    const reason = await this.reasonOf(found.name);
    return { zone: shownZone(found.zone), ...(reason ? { reason } : {}) };
  }

  private errorCode(zone: string, code: string): void {
    const now = this.now();
    if (now - (this.errorCodeTold.get(zone) ?? -Infinity) < ERROR_CODE_TOLD_EVERY_MS) return;
    this.errorCodeTold.set(zone, now);
    this.onErrorCode(shownZone(zone), code);
  }

  private async reasonOf(name: string): Promise<string | undefined> {
    const txt = await this.dns.resolve(name, 'TXT').catch(() => []) as string[][];
    // Kept short; the reply it goes into makes it text (renderReply: each character a reply
    // may not hold is a "?").
    const text = (txt[0]?.join('') ?? '').trim().slice(0, MAX_REASON);
    return text === '' ? undefined : text;
  }
}

/** The first value of `tasks` that is not undefined, as soon as it comes; undefined once all
 *  have ended without one. The tasks never reject. */
function firstFound<T>(tasks: Promise<T | undefined>[]): Promise<T | undefined> {
  return new Promise((resolve) => {
    let left = tasks.length;
    if (left === 0) resolve(undefined);
    for (const t of tasks) {
      void t.then((v) => {
        if (v !== undefined) resolve(v);
        else if (--left === 0) resolve(undefined);
      });
    }
  });
}

/** The blocklists `[checks] dnsbl` names, asked through `dns_servers`; undefined when it names
 *  none. A zone that refuses the resolver is a warning in the log. */
export function blocklistsOf(config: Config, log: Logger): Blocklists | undefined {
  if (config.checks.dnsbl.length === 0) return undefined;
  const timeout = config.checks.dns_timeout;
  const resolve = patientResolver(timeout, config.dns_servers);
  return new Blocklists(config.checks.dnsbl, (name, rrtype) => resolve(name, rrtype) as Promise<string[][] | string[]>, timeout, {
    onErrorCode: (zone, code) => log.warn({ zone, answer: code }, 'a DNS blocklist answers with an error code, refusing this resolver (Spamhaus refuses public ones such as 8.8.8.8): it lists nobody until asked through a resolver of your own (dns_servers)'),
  });
}
