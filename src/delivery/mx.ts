/**
 * Where the mail for a domain goes when no route or smarthost says otherwise (RFC 5321 §5.1):
 * its MX hosts in preference order (equal preferences in random order), or the domain itself
 * when it has no MX ("implicit MX"), never anywhere when it publishes a null MX (RFC 7505).
 * The resolver is injected so tests answer from a stub and never query real DNS.
 */
import { patientResolver } from './dns-patience.ts';
import net from 'node:net';
import os from 'node:os';
import { splitHostPort } from '../config/schema.ts';

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** The few lookups delivery needs; node's dns.promises.Resolver has this shape. */
export interface DnsResolver {
  resolveMx(name: string): Promise<MxRecord[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  /** Each record's strings (MTA-STS's `_mta-sts` record). */
  resolveTxt(name: string): Promise<string[][]>;
}

/** What DNS said of a destination, as the reply mailnest records for its recipients (its own:
 *  no server said it). */
export class DnsError extends Error {
  readonly reply: string;
  constructor(reply: string) {
    super(reply);
    this.reply = reply;
  }
}

/** A DNS answer that makes delivery impossible (the domain does not exist, or takes no mail). */
export class PermanentDnsError extends DnsError {}

/** A DNS failure worth retrying later (timeout, SERVFAIL, refused). */
export class TemporaryDnsError extends DnsError {}

/** An MX host DNS gave no address for: `failed` when the lookup failed, rather than finding none. */
interface Unresolved {
  name: string;
  preference: number;
  failed: boolean;
}

export interface MxHost {
  /** The host name (the MX exchange, or the domain itself for an implicit MX). */
  name: string;
  preference: number;
  /** Its addresses, IPv4 first then IPv6 (loopback-only machines are often without v6 routes). */
  addresses: string[];
}

/** A resolver with a per-query time limit, for production; tests pass their own. */
export function systemResolver(timeoutMs: number, servers: string[] = []): DnsResolver {
  const resolve = patientResolver(timeoutMs, servers);
  return {
    resolveMx: async (name) => ((await resolve(name, 'MX')) as MxRecord[]).map(({ exchange, priority }) => ({ exchange, priority })),
    resolve4: (name) => resolve(name, 'A') as Promise<string[]>,
    resolve6: (name) => resolve(name, 'AAAA') as Promise<string[]>,
    resolveTxt: (name) => resolve(name, 'TXT') as Promise<string[][]>,
  };
}

function dnsCode(err: unknown): string {
  return (err as { code?: string })?.code ?? '';
}

/** "No such name" and "no records of this type" are answers; anything else is a failure. */
function isNoData(err: unknown): boolean {
  return dnsCode(err) === 'ENODATA' || dnsCode(err) === 'ENOTFOUND';
}

/** Orders MX records by preference, shuffling those of equal preference (RFC 5321 §5.1). */
export function orderMx(records: MxRecord[], random: () => number = Math.random): MxRecord[] {
  const byPref = new Map<number, MxRecord[]>();
  for (const r of records) {
    const list = byPref.get(r.priority) ?? [];
    list.push(r);
    byPref.set(r.priority, list);
  }
  const out: MxRecord[] = [];
  for (const pref of [...byPref.keys()].sort((a, b) => a - b)) {
    const list = byPref.get(pref)!;
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [list[i], list[j]] = [list[j]!, list[i]!];
    }
    out.push(...list);
  }
  return out;
}

/** A host's addresses through `resolver`, IPv4 first, and whether a lookup failed (rather than
 *  finding none). */
export async function addressesOf(resolver: Pick<DnsResolver, 'resolve4' | 'resolve6'>, name: string): Promise<{ addresses: string[]; failed: boolean }> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const addresses: string[] = [];
  let failed = false;
  for (const r of [v4, v6]) {
    if (r.status === 'fulfilled') addresses.push(...r.value.slice(0, MAX_HOST_ADDRESSES));
    else if (!isNoData(r.reason)) failed = true;
  }
  return { addresses, failed };
}

/** The MX hosts of a domain looked up, the best first, and the addresses kept of each family of
 *  one: a few are tried (Postfix's smtp_mx_address_limit is 5), and a domain's owner could
 *  otherwise have thousands of each looked up and kept for every delivery there. */
const MAX_MX_HOSTS = 10;
const MAX_HOST_ADDRESSES = 10;

/**
 * Whether an MX host is this server: it bears `hostname`, or one of its addresses is one where
 * the smtp listener takes mail on port 25 (any address of the machine's when it listens on
 * 0.0.0.0 or [::]).
 */
export function selfRecognizer(hostname: string, smtpListen: string[]): (host: MxHost) => boolean {
  const mine = new Set<string>();
  for (const a of smtpListen) {
    const listen = splitHostPort(a);
    if (listen.port !== 25) continue;
    const host = listen.host.toLowerCase().replace(/\.$/, '');
    if (host === '0.0.0.0' || host === '::') {
      for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) mine.add(i.address);
    } else if (host === 'localhost') {
      mine.add('127.0.0.1');
      mine.add('::1');
    } else {
      mine.add(host);
    }
  }
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return (h) => h.name.toLowerCase() === name || h.addresses.some((a) => mine.has(a));
}

/**
 * The hosts to try for `domain`, best first. Throws PermanentDnsError for a null MX, a domain
 * that does not exist or has no address at all, or one whose best MX host is this server
 * (`isSelf`), TemporaryDnsError when DNS could not answer. RFC 5321 §5.1: when this server is
 * among the hosts, it and every host of its preference or worse are left out (mail to a domain
 * it is a backup MX for waits for the better hosts, never comes back to it); when that leaves
 * none, the mail would loop.
 */
export async function resolveMxHosts(resolver: DnsResolver, domain: string, random: () => number = Math.random, isSelf: (host: MxHost) => boolean = () => false): Promise<MxHost[]> {
  const { hosts, unresolved } = await mxHosts(resolver, domain, random);
  // Known by its name too when DNS gave no address for it this time.
  const own = [...hosts, ...unresolved.map((r) => ({ ...r, addresses: [] }))].filter(isSelf);
  if (own.length === 0) return hosts;
  const ours = Math.min(...own.map((h) => h.preference));
  const better = hosts.filter((h) => h.preference < ours);
  if (better.length > 0) return better;
  // Better hosts whose addresses DNS did not give this time: they are there, the mail waits.
  const waiting = unresolved.filter((r) => r.preference < ours);
  if (waiting.some((r) => r.failed)) throw new TemporaryDnsError(`451 4.4.3 address lookup for the MX hosts of ${domain} better than this server failed`);
  if (waiting.length > 0) throw new TemporaryDnsError(`451 4.4.4 no MX host of ${domain} better than this server has an address`);
  throw new PermanentDnsError(`550 5.4.6 mail for ${domain} loops back to this server (${own[0]!.name}), which is its best MX host but does not take its mail: add ${domain} to domains, or correct its MX record`);
}

/** The hosts with addresses, and the MX hosts without (`failed`: the lookup failed, rather than
 *  finding none). */
async function mxHosts(resolver: DnsResolver, domain: string, random: () => number): Promise<{ hosts: MxHost[]; unresolved: Unresolved[] }> {
  const literal = /^\[(.+)\]$/.exec(domain);
  if (literal) {
    const ip = literal[1]!.replace(/^IPv6:/i, '');
    if (!net.isIP(ip)) throw new PermanentDnsError(`550 5.1.2 bad address literal ${domain}`);
    return { hosts: [{ name: ip, preference: 0, addresses: [ip] }], unresolved: [] };
  }
  let records: MxRecord[];
  try {
    records = await resolver.resolveMx(domain);
  } catch (err) {
    if (dnsCode(err) === 'ENOTFOUND') throw new PermanentDnsError(`550 5.1.2 domain ${domain} does not exist`);
    if (dnsCode(err) !== 'ENODATA') throw new TemporaryDnsError(`451 4.4.3 MX lookup for ${domain} failed: ${dnsCode(err) || String(err)}`);
    records = [];
  }
  // RFC 7505 §3: a single MX with an empty exchange (".") means the domain accepts no mail.
  if (records.some((r) => r.exchange === '' || r.exchange === '.')) {
    if (records.length === 1) throw new PermanentDnsError(`556 5.1.10 domain ${domain} accepts no mail (null MX)`);
    records = records.filter((r) => r.exchange !== '' && r.exchange !== '.');
  }
  if (records.length === 0) {
    // RFC 5321 §5.1: no MX, so the domain itself is the one host (implicit MX).
    const { addresses, failed } = await addressesOf(resolver, domain);
    if (addresses.length > 0) return { hosts: [{ name: domain, preference: 0, addresses }], unresolved: [] };
    if (failed) throw new TemporaryDnsError(`451 4.4.3 address lookup for ${domain} failed`);
    throw new PermanentDnsError(`550 5.1.2 domain ${domain} has no MX and no address`);
  }
  const hosts: MxHost[] = [];
  const unresolved: Unresolved[] = [];
  let anyFailed = false;
  // An exchange is a host name whose addresses are looked up (RFC 1035 §3.3.9), never an
  // address written as one: such a record names no host.
  const ordered = orderMx(records.filter((r) => !net.isIP(r.exchange.replace(/\.$/, ''))), random).slice(0, MAX_MX_HOSTS);
  const looked = await Promise.all(ordered.map((r) => addressesOf(resolver, r.exchange.replace(/\.$/, ''))));
  ordered.forEach((r, i) => {
    const { addresses, failed } = looked[i]!;
    if (failed) anyFailed = true;
    if (addresses.length > 0) hosts.push({ name: r.exchange.replace(/\.$/, ''), preference: r.priority, addresses });
    else unresolved.push({ name: r.exchange.replace(/\.$/, ''), preference: r.priority, failed });
  });
  if (hosts.length === 0) {
    if (anyFailed) throw new TemporaryDnsError(`451 4.4.3 address lookup for the MX hosts of ${domain} failed`);
    // MX hosts that do not resolve: retry rather than bounce, DNS may be mid-change.
    throw new TemporaryDnsError(`451 4.4.4 no MX host of ${domain} has an address`);
  }
  return { hosts, unresolved };
}
