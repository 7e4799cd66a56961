/**
 * DNS blocklists (RFC 5782) of the clients of the `smtp` listener, `[checks] dnsbl`: a client
 * whose address one of the zones lists gets `554 5.7.1` at RCPT, as Postfix's reject_rbl_client
 * answers, except for mail to a local postmaster (RFC 5321 §4.5.1), so that a client listed by
 * mistake can still say so. A session that has logged in is never screened: a user's home
 * address is in the lists of dynamic addresses (Spamhaus's PBL, in its zen zone).
 *
 * A client is looked up when it connects, so that the answers are in by its first RCPT. A lookup
 * that fails or runs out of time lists nobody: a blocklist that cannot be asked must not stop
 * the mail. Answers are cached as the checks' are (DnsCache).
 */
import net from 'node:net';
import { clientAddress, ipv6Groups } from '../net/client-key.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { patientResolver } from './dns-patience.ts';
import { DnsCache, type DNSResolver } from './inbound-checks.ts';

export interface Listing {
  zone: string;
  /** The zone's TXT record for the address (RFC 5782 §2.1), printable ASCII, when it has one. */
  reason?: string;
}

/** Most of a TXT reason put in a reply: a URL to the listing, as the zones give. */
const MAX_REASON = 200;

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

/** How often a zone that answers with an error code is said to, at most. */
const ERROR_CODE_TOLD_EVERY_MS = 3_600_000;

export class Blocklists {
  private readonly zones: string[];
  private readonly dns: DnsCache;
  /** The lookups under way, by client, so that the one begun at the connection serves its RCPTs. */
  private readonly underWay = new Map<string, Promise<Listing | undefined>>();
  private readonly onErrorCode: (zone: string, code: string) => void;
  /** When each zone's error code was last told. */
  private readonly errorCodeTold = new Map<string, number>();

  /** `onErrorCode`: a zone answered one of its error codes (127.255.255.x), at most once an hour
   *  a zone: it refuses the resolver, and lists nobody until the operator changes that. */
  constructor(zones: string[], resolver: DNSResolver, timeoutMs: number, onErrorCode: (zone: string, code: string) => void = () => {}) {
    this.zones = zones;
    this.dns = new DnsCache(resolver, timeoutMs);
    this.onErrorCode = onErrorCode;
  }

  /** The first of the zones (in their order) that lists `ip`; undefined when none does, or none
   *  could tell. Never rejects. */
  listing(ip: string): Promise<Listing | undefined> {
    let lookup = this.underWay.get(ip);
    if (!lookup) {
      lookup = this.lookUp(ip);
      this.underWay.set(ip, lookup);
      void lookup.finally(() => this.underWay.delete(ip));
    }
    return lookup;
  }

  private async lookUp(ip: string): Promise<Listing | undefined> {
    const answers = await Promise.all(this.zones.map(async (zone) => {
      const name = listingName(ip, zone);
      if (!name) return undefined;
      const a = await this.dns.resolve(name, 'A').catch(() => []) as string[];
      const error = a.find((x) => x.startsWith('127.') && !isListing(x));
      if (error) this.errorCode(zone, error);
      return a.some(isListing) ? { zone, name } : undefined;
    }));
    const found = answers.find((x) => x !== undefined);
    if (!found) return undefined;
    const reason = await this.reasonOf(found.name);
    return { zone: found.zone, ...(reason ? { reason } : {}) };
  }

  private errorCode(zone: string, code: string): void {
    const now = Date.now();
    if (now - (this.errorCodeTold.get(zone) ?? -Infinity) < ERROR_CODE_TOLD_EVERY_MS) return;
    this.errorCodeTold.set(zone, now);
    this.onErrorCode(zone, code);
  }

  private async reasonOf(name: string): Promise<string | undefined> {
    const txt = await this.dns.resolve(name, 'TXT').catch(() => []) as string[][];
    const text = txt[0]?.join('');
    if (!text) return undefined;
    // Into a reply: printable ASCII only, one line, not too long.
    const clean = text.replace(/[^\x20-\x7e]/g, '?').trim();
    return clean === '' ? undefined : clean.slice(0, MAX_REASON);
  }
}

/** The blocklists `[checks] dnsbl` names, asked through `dns_servers`; undefined when it names
 *  none. A zone that refuses the resolver is a warning in the log. */
export function blocklistsOf(config: Config, log: Logger): Blocklists | undefined {
  if (config.checks.dnsbl.length === 0) return undefined;
  const timeout = config.checks.dns_timeout;
  const resolve = patientResolver(timeout, config.dns_servers);
  return new Blocklists(config.checks.dnsbl, (name, rrtype) => resolve(name, rrtype) as Promise<string[][] | string[]>, timeout, (zone, code) => {
    log.warn({ zone, answer: code }, 'a DNS blocklist answers with an error code, refusing this resolver (Spamhaus refuses public ones such as 8.8.8.8): it lists nobody until asked through a resolver of your own (dns_servers)');
  });
}
