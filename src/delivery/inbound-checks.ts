/**
 * SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) of mail arriving on the smtp listener,
 * evaluated by mailauth and recorded in an Authentication-Results header (RFC 8601). Every DNS
 * query is bounded by a short timeout and answered from a cache when it can be, the whole check
 * by a longer one, so a machine with slow or absent DNS never stalls a session: the result then
 * reads "temperror". `[checks] enabled = false` skips it all.
 *
 * The smtp listener calls `checkInbound(config, { clientIp, helo, sender, message })` after the
 * message is read and before it is accepted, prepends `authResults` to the stored copy, and
 * refuses the message (550 5.7.1, chosen by the SMTP session) with `reject` as the reason when
 * set, or defers it (451 4.7.0) with `defer`.
 *
 * With `[checks] reject_dmarc`, a sender must not get past a domain's p=reject by what it alone
 * controls:
 * - rsa-sha1 signatures do not pass (RFC 8301 §3.1);
 * - a message naming several authors, in one From field or several, is held to the policy of
 *   each author's domain (RFC 7489 §6.6.1), where mailauth evaluates none;
 * - the authors' policies are looked up beside the checks, alone: when the checks run out of
 *   time (DKIM keys in the sender's own slow DNS can make them), an author domain with p=reject,
 *   or one whose policy is not known by then, defers the message rather than letting it through
 *   unchecked (RFC 7489 §6.6.2 allows a temporary failure).
 */
import type { Worker } from 'node:worker_threads';
import { patientResolver } from './dns-patience.ts';
import addressparser from 'nodemailer/lib/addressparser';
import type { DMARCResult, DNSResolver } from 'mailauth';
import type { CheckRequest, Checked, DnsAnswer, DnsQuestion } from './inbound-checks-worker.ts';
import { ThreadOnDemand } from './thread-on-demand.ts';
import type { Config } from '../config/schema.ts';
import { fieldTexts, headerEnd, unfoldedValue, withoutFields } from '../mime/header-section.ts';
import { domainKey } from '../store/store.ts';
import { ClientCounts } from '../net/client-counts.ts';
import { remember } from '../bounded-map.ts';

export type { DNSResolver };

export interface InboundInput {
  clientIp: string;
  /** The EHLO/HELO name. */
  helo?: string;
  /** The envelope sender ('' for the null sender). */
  sender: string;
  /** The message as received (header and body, CRLF), whole or in the pieces it arrived in
   *  (joined only when the checks run). */
  message: Buffer | Buffer[];
}

export interface InboundResult {
  /** Header lines to prepend (Received-SPF, Authentication-Results), CRLF-terminated; '' when the checks are off. */
  authResults: string;
  /** Set when the message fails DMARC under p=reject and `[checks] reject_dmarc` is on: why. */
  reject?: string;
  /** Set when, with `reject_dmarc` on, the checks could not finish for a message whose From
   *  domain asks for rejection: why. */
  defer?: string;
  /** SPF passed for the envelope sender's domain: the client may send as it (see dsn-trust.ts). */
  senderAuthorized?: true;
}

export interface InboundOptions {
  /** mailauth-style resolver (name, rrtype) → answers; tests pass a stub. */
  resolver?: DNSResolver;
}

/**
 * RFC 6376 §6.1: a verifier may limit the signatures it tries, against denial of service. Each
 * costs a pass over the body (one with its own l= a hash of its own): 500 of them on a 2 MB
 * message held every session for 20 s when the checks ran on the event loop, and would hold the
 * checks' thread as long. The first MAX_SIGNATURES are checked, as OpenDKIM's
 * MaximumSignaturesToVerify (3 by default) has it. A signature's header-field list costs its
 * length times the header's fields (one with 300,000 names kept the thread 40 s): a signature
 * (or ARC message signature) of over MAX_SIGNATURE_BYTES, or naming over MAX_SIGNED_FIELDS
 * fields, is not checked either. What is not checked is left out of the copy the verifier reads,
 * and of Authentication-Results; a sender signs its mail once or twice, naming a few dozen fields.
 */
const MAX_SIGNATURES = 5;
const MAX_SIGNATURE_BYTES = 8 * 1024;
const MAX_SIGNED_FIELDS = 100;

function withCheckableSignatures(message: Buffer): Buffer {
  let seen = 0;
  const kept = withoutFields([message], /^(?:dkim-signature|arc-message-signature)[ \t]*:/im, (f) => {
    const dkim = /^dkim-signature[ \t]*:/i.test(f);
    if (!dkim && !/^arc-message-signature[ \t]*:/i.test(f)) return false;
    if (f.length > MAX_SIGNATURE_BYTES || signedFields(f) > MAX_SIGNED_FIELDS) return true;
    return dkim && ++seen > MAX_SIGNATURES;
  });
  return kept.length === 1 ? kept[0]! : Buffer.concat(kept);
}

/** How many header fields a signature's h= tag names (RFC 6376 §3.5). */
function signedFields(field: string): number {
  const h = /(?:^|;)[ \t]*h[ \t]*=([^;]*)/i.exec(unfoldedValue(field));
  return h ? h[1]!.split(':').length : 0;
}

/** What is read of mailauth's result. */
type Checks = Checked['result'];

/** The resolvers of the checks under way in the thread, by the token their questions carry. */
const resolvers = new Map<number, DNSResolver>();
let nextToken = 1;

/** Answers a DNS question of a checks' thread from the resolver of the check that asked it. */
function answerQuestion(m: unknown, thread: Worker): void {
  const q = m as DnsQuestion;
  const answer = (a: Omit<DnsAnswer, 'answer'>) => thread.postMessage({ answer: q.ask, ...a } satisfies DnsAnswer);
  const resolve = resolvers.get(q.token);
  // A lookup mailauth left running after its check was answered.
  if (!resolve) return answer({ error: { message: 'the check has ended', code: 'ECANCELLED' } });
  resolve(q.name, q.rrtype).then((value) => answer({ value }), (err: NodeJS.ErrnoException) => {
    answer({ error: { message: err?.message ?? String(err), ...(err?.code ? { code: err.code } : {}) } });
  });
}

/** The checks' threads: one for messages up to LARGE_CHECK octets, nearly all mail, and one for
 *  larger ones (see LARGE_CHECK). Each starts when first needed and ends after a while idle. */
const checksThread = new ThreadOnDemand<Omit<CheckRequest, 'id'>, Checked>(import.meta.url, 'inbound-checks-worker', 'the inbound checks', answerQuestion);
const largeChecksThread = new ThreadOnDemand<Omit<CheckRequest, 'id'>, Checked>(import.meta.url, 'inbound-checks-worker', 'the inbound checks of large messages', answerQuestion);

/**
 * Checks in the threads at once (or waiting for their turn there, see LARGE_CHECK), the octets
 * of their messages, and the checks of one client (an IPv6 one by its /64) at most: a check that
 * runs out of time here goes on there (mailauth cannot be stopped; its lookups end at
 * `dns_timeout` each), and without a bound a sender could pile up message copies in the
 * threads as fast as it could send, or keep every place taken with lookups its own DNS answers
 * slowly. Past them a message is not checked (the header says temperror), as one whose checks
 * take too long.
 */
const CHECKS_AT_ONCE = 32;
const CHECK_BYTES_AT_ONCE = 64 * 1024 * 1024;
const CHECKS_PER_CLIENT = 4;
let checking = 0;
let checkingBytes = 0;
const checkingFor = new ClientCounts();

/**
 * A checks' thread takes 64 KiB of every check's message a turn of its event loop, each through
 * every body hash its signatures ask for: a turn lasts as long as the large messages in it make
 * it, and a small message's check, a few dozen turns, as long as that many. Senders of 20 MB
 * messages with five forged signatures each, from six addresses, held others' small messages
 * 6 to 11 s when all shared one thread. So messages over LARGE_CHECK octets are checked in a
 * thread of their own, at most LARGE_CHECKS_AT_ONCE at once there (the CPU they take); the others
 * wait their turn in order (counted in the bounds above while they wait).
 */
const LARGE_CHECK = 1024 * 1024;
const LARGE_CHECKS_AT_ONCE = 2;
let largeChecking = 0;
const largeWaiting: { go: () => void }[] = [];

/** A place for a large message's check, once one is free; false when `deadline` comes first. */
function largeTurn(deadline: number): Promise<boolean> {
  if (largeChecking < LARGE_CHECKS_AT_ONCE) {
    largeChecking++;
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const entry = {
      go: () => {
        clearTimeout(timer);
        largeChecking++;
        resolve(true);
      },
    };
    const timer = setTimeout(() => {
      largeWaiting.splice(largeWaiting.indexOf(entry), 1);
      resolve(false);
    }, Math.max(0, deadline - Date.now()));
    largeWaiting.push(entry);
  });
}

function largeDone(): void {
  largeChecking--;
  largeWaiting.shift()?.go();
}

/**
 * mailauth's authenticate, run in a checks' thread (see inbound-checks-worker.ts; the large
 * messages' for one over LARGE_CHECK), its DNS questions answered by `resolver` here; 'busy' when
 * the threads have their fill, or this client its share; 'timeout' when `deadline` (the
 * caller's) comes before a large message's turn. `message` is handed over to the thread when it
 * is a buffer of its own (made for the checks), else copied.
 */
async function authenticateApart(message: Buffer, clientIp: string, options: CheckRequest['options'], resolver: DNSResolver, deadline: number): Promise<Checks | 'busy' | 'timeout'> {
  if (checking >= CHECKS_AT_ONCE || checkingBytes + message.length > CHECK_BYTES_AT_ONCE || checkingFor.of(clientIp) >= CHECKS_PER_CLIENT) return 'busy';
  const token = nextToken++;
  const bytes = message.length;
  const large = bytes > LARGE_CHECK;
  checking++;
  checkingBytes += bytes;
  checkingFor.add(clientIp);
  let turn = false;
  try {
    // Past the deadline the caller has stopped waiting (temperror): not checked at all.
    turn = !large || await largeTurn(deadline);
    if (!turn) return 'timeout';
    resolvers.set(token, resolver);
    const own = message.byteOffset === 0 && message.byteLength === message.buffer.byteLength && message.buffer instanceof ArrayBuffer;
    return (await (large ? largeChecksThread : checksThread).request({ token, message, options }, own ? [message.buffer as ArrayBuffer] : [])).result;
  } finally {
    resolvers.delete(token);
    checking--;
    checkingBytes -= bytes;
    checkingFor.remove(clientIp);
    if (large && turn) largeDone();
  }
}

/** Ends the checks' threads (for the server's stop): what they still work on is dropped. */
export function stopInboundChecks(): void {
  checksThread.close();
  largeChecksThread.close();
}

/**
 * DNS queries under way at once, at most; past them a lookup fails at once, as a temporary error.
 * A message can ask for many (its authors' domains, its signatures' keys), and Node's resolver
 * loops for ever looking for a free query id once 65,536 are under way: one message naming 66,000
 * author domains whose DNS did not answer hung the server.
 */
const MAX_QUERIES = 256;
const QUERIES_PER_CLIENT = 64;

/** From fields longer than this, in all, are not read for their authors: with reject_dmarc such
 *  a message is refused (a 5 MB From held the event loop 0.6 s to be parsed). */
const MAX_FROM_BYTES = 16 * 1024;

/** Author domains (RFC 7489 §6.6.1: each is held to its own policy) of one message, at most;
 *  with `reject_dmarc` a message naming more is refused. Real mail names one. */
const MAX_AUTHOR_DOMAINS = 10;

const POSITIVE_TTL = 5 * 60_000;
const NEGATIVE_TTL = 60_000;
const CACHE_MAX = 10_000;

/** Answers and "no such record" answers are cached; failures (timeouts) are not. */
export class DnsCache {
  private readonly entries = new Map<string, { expires: number; value?: unknown; error?: unknown }>();
  private readonly inner: DNSResolver;
  /** Queries sent and not yet ended (see MAX_QUERIES). */
  private inFlight = 0;
  /** Lookups under way for each client (see resolverFor). */
  private readonly byClient = new ClientCounts();
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(inner: DNSResolver, timeoutMs: number, now: () => number = Date.now) {
    this.inner = inner;
    this.timeoutMs = timeoutMs;
    this.now = now;
  }

  /** `resolve` for the checks of one client (an IPv6 one by its /64), which has at most
   *  QUERIES_PER_CLIENT of the places at once: one sender's messages naming domains whose DNS does
   *  not answer cannot take them all. */
  resolverFor(client: string): DNSResolver {
    return async (name, rrtype) => {
      if (this.byClient.of(client) >= QUERIES_PER_CLIENT) throw Object.assign(new Error(`DNS ${rrtype} ${name}: this client's ${QUERIES_PER_CLIENT} queries are under way already`), { code: 'EBUSY' });
      this.byClient.add(client);
      try {
        return await this.resolve(name, rrtype);
      } finally {
        this.byClient.remove(client);
      }
    };
  }

  readonly resolve: DNSResolver = async (name, rrtype) => {
    const key = `${rrtype}\u0000${name.toLowerCase()}`;
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) {
      if (hit.error) throw hit.error;
      return hit.value as string[][] | string[];
    }
    // A query given up here still runs in the resolver until it ends: counted until then.
    if (this.inFlight >= MAX_QUERIES) throw Object.assign(new Error(`DNS ${rrtype} ${name}: ${MAX_QUERIES} queries are under way already`), { code: 'EBUSY' });
    this.inFlight++;
    // A resolver that throws at once (an rrtype it does not know) gives its place back too.
    const query = Promise.resolve().then(() => this.inner(name, rrtype));
    void query.catch(() => {}).finally(() => { this.inFlight--; });
    let timer: NodeJS.Timeout | undefined;
    try {
      const value = await Promise.race([
        query,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error(`DNS ${rrtype} ${name} timed out`), { code: 'ETIMEOUT' })), this.timeoutMs);
        }),
      ]);
      remember(this.entries, key, { expires: this.now() + POSITIVE_TTL, value }, CACHE_MAX);
      return value;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') remember(this.entries, key, { expires: this.now() + NEGATIVE_TTL, error: err }, CACHE_MAX);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  };
}

export class InboundChecker {
  private readonly config: Config;
  private readonly cache: DnsCache;

  constructor(config: Config, opts: InboundOptions = {}) {
    this.config = config;
    const timeout = config.checks.dns_timeout;
    let inner = opts.resolver;
    if (!inner) {
      const resolve = patientResolver(timeout, config.dns_servers);
      inner = (name, rrtype) => resolve(name, rrtype) as Promise<string[][] | string[]>;
    }
    this.cache = new DnsCache(inner, timeout);
  }

  async check(input: InboundInput): Promise<InboundResult> {
    if (!this.config.checks.enabled) return { authResults: '' };
    const host = this.config.hostname;
    // Its own buffer, handed over to the checks' thread at the end: the input's stays the caller's.
    const message = Buffer.concat(Array.isArray(input.message) ? input.message : [input.message]);
    const deadline = Date.now() + this.config.checks.timeout;
    try {
      // With reject_dmarc, the authors' policies are looked up beside the checks, alone, so
      // that they are known even when the checks run out of time.
      const resolve = this.cache.resolverFor(input.clientIp);
      const strict = this.config.checks.reject_dmarc;
      const from = strict ? fromAddresses(message) : [];
      if (from === 'too long') {
        return { authResults: temperror(host, 'the From field is too long to check'), reject: `message refused: its From fields are over ${MAX_FROM_BYTES} octets, too long for their authors' DMARC policies to be checked` };
      }
      const authors = authorDomains(from);
      // No author's domain (no From, or one of a name alone, as a spoof shows "PayPal"): no
      // policy can be applied, and a receiver may refuse it (RFC 7489 §6.6.1), as one that asks
      // for rejection of spoofs does.
      if (strict && authors.length === 0) {
        return { authResults: temperror(host, 'no author domain to check'), reject: 'message refused: its From field names no address with a domain, so its author\'s DMARC policy cannot be checked (RFC 7489 section 6.6.1)' };
      }
      if (authors.length > MAX_AUTHOR_DOMAINS) {
        return { authResults: temperror(host, 'too many author domains to check'), reject: `message refused: its From field names ${authors.length} domains, more than the ${MAX_AUTHOR_DOMAINS} whose DMARC policies are checked (RFC 7489 section 6.6.1)` };
      }
      const policies = strict ? this.rejecting(authors, [], [], resolve) : undefined;
      policies?.catch(() => undefined);
      const result = await this.until(deadline, authenticateApart(withCheckableSignatures(message), input.clientIp, {
        ip: input.clientIp,
        ...(input.helo ? { helo: input.helo } : {}),
        sender: input.sender,
        mta: host,
        rejectRsaSha1: true,
        disableArc: false,
        disableBimi: true,
      }, resolve, deadline));
      if (result === 'timeout' || result === 'busy') {
        const authResults = temperror(host, result === 'busy' ? 'the server was checking too many messages at once' : 'the checks took too long');
        if (!policies) return { authResults };
        // Nothing passed in time, so a p=reject author fails; one whose policy is not known
        // yet may be one.
        const failing = await Promise.race([policies, Promise.resolve('timeout' as const)]).catch(() => 'timeout' as const);
        if (failing === 'timeout' || failing === 'unknown') return { authResults, defer: 'the checks of this message did not finish in time, nor did the lookup of its authors\' DMARC policies; try again later' };
        if (failing) return { authResults, defer: `the checks of this message did not finish in time, and ${failing.domain} asks for rejection of mail that fails DMARC; try again later` };
        return { authResults };
      }
      let authResults = result.headers.replace(/\r?\n/g, '\r\n');
      if (!authResults.endsWith('\r\n')) authResults += '\r\n';
      const taken = { authResults, ...(authorizesSender(result, input.sender) ? { senderAuthorized: true as const } : {}) };
      if (!this.config.checks.reject_dmarc) return taken;
      const dmarc = result.dmarc;
      // A check that could not be made for now (a DNS failure) might pass on a later try and
      // align: the message is deferred, not refused for good (RFC 7208 §2.6.6, RFC 6376 §6.1.2).
      const later = unsettled(result) ? '; a DNS lookup of its SPF or DKIM check failed for now, try again later' : undefined;
      if (dmarc && isRejecting(dmarc)) {
        if (later) return { authResults, defer: `it fails DMARC and ${dmarc.domain} asks for rejection (p=reject)${later}` };
        return { authResults, reject: `message refused: it fails DMARC and ${dmarc.domain} asks for rejection (p=reject)` };
      }
      // The author's policy could not be looked up for now (a DNS failure, or no place left for
      // the query): it may be p=reject, so the message waits (RFC 7489 §6.6.2) rather than pass;
      // unless SPF or DKIM passed for the From domain itself, aligned under any mode the policy
      // might give, which passes DMARC whatever the policy says (§6.6.2, step 5).
      if (dmarc && dmarc.status.result === 'temperror' && !passesForItself(result, dmarc.domain)) {
        return { authResults, defer: `the DMARC policy of ${dmarc.domain} could not be looked up for now; try again later` };
      }
      // Each author domain that mailauth did not evaluate is evaluated alone, with the
      // identifiers that passed: several authors, an address it could not make one domain of, or
      // one it read otherwise than readers do (`ceo@victim .example`, obsolete syntax with white
      // space or a comment around a dot, is victim.example to them, RFC 5322 §4.4, and "victim"
      // to mailauth, a domain with no policy). The From fields as fromAddresses read them (as
      // addressparser reads them: no more than MAX_AUTHOR_DOMAINS domains, or the message was
      // refused before its checks), and as mailauth did.
      const evaluated = dmarc ? domainKey(dmarc.domain) : undefined;
      const domains = [...new Set([...authors, ...authorDomains(result.dkim.headerFrom ?? [])])].filter((d) => d !== evaluated);
      if (domains.length > 0) {
        const failing = await this.until(deadline, this.rejecting(domains, passingSpf(result), passingDkim(result), resolve));
        if (failing === 'timeout' || failing === 'unknown') return { authResults, defer: 'the DMARC checks of this message\'s authors did not finish, or could not be made for now; try again later' };
        if (failing && later) return { authResults, defer: `its From field names ${failing.domain}, for which it fails DMARC, and that domain asks for rejection (p=reject)${later}` };
        if (failing) return { authResults, reject: `message refused: its From field names ${failing.domain}, for which it fails DMARC, and that domain asks for rejection (p=reject)` };
      }
      return taken;
    } catch (err) {
      return { authResults: temperror(host, (err as Error).message ?? String(err)) };
    }
  }

  /** The promise's value, or 'timeout' once `deadline` (a time) has passed. */
  private async until<T>(deadline: number, work: Promise<T>): Promise<T | 'timeout'> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([work, new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now())); })]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The DMARC result of an author domain that fails under p=reject, each evaluated alone (and
   *  all at once) with the identifiers that passed; 'unknown' when none does but a policy could
   *  not be looked up; undefined when none does. */
  private async rejecting(domains: string[], spfDomains: string[], dkimDomains: DkimDomain[], resolver: DNSResolver): Promise<DMARCResult | 'unknown' | undefined> {
    // Loaded on first use: mailauth is large, and an idle server should stay small.
    const { dmarc } = await import('mailauth');
    const verdicts = await Promise.all(domains.map((d) => dmarc({ headerFrom: d, spfDomains, dkimDomains, resolver })));
    const failing = verdicts.find((v): v is DMARCResult => v !== false && isRejecting(v));
    if (failing) return failing;
    return verdicts.some((v) => v !== false && v.status.result === 'temperror') ? 'unknown' : undefined;
  }
}

type DkimDomain = { id?: string; domain: string; aligned?: string | false; underSized?: number };

function isRejecting(d: DMARCResult): boolean {
  return (d.status.result === 'fail' || passesOnPart(d)) && d.policy === 'reject' && !d.testMode && !partial(d.rr);
}

/**
 * A pass that rests on a DKIM signature with an l= tag alone, under which text was added after
 * the part it signs: what anyone may append to a message signed so is not the author's (RFC 6376
 * §8.2), so it does not get such a message past p=reject.
 */
function passesOnPart(d: DMARCResult): boolean {
  return d.status.result === 'pass' && !d.alignment.spf.result && (d.alignment.dkim.underSized ?? 0) > 0;
}

/**
 * A record that asks for its policy on fewer than all messages with RFC 7489 §6.3's pct (a
 * domain trying p=reject out with pct=0). RFC 9989 has made pct historic, in favour of t=y, and
 * mailauth reads it no more; such a record is taken as t=y is, and its mail is not refused.
 */
function partial(rr: string | undefined): boolean {
  const pct = /(?:^|;)[ \t]*pct[ \t]*=[ \t]*(\d+)[ \t]*(?:;|$)/i.exec(rr ?? '');
  return pct !== null && Number(pct[1]) < 100;
}

/** True when SPF, or a DKIM signature's key lookup, ended in a temporary error. */
function unsettled(r: Checks): boolean {
  return r.spf !== false && r.spf?.status.result === 'temperror' || (r.dkim.results ?? []).some((s) => s.status.result === 'temperror');
}

/** SPF or a DKIM signature (one without text added past its l=) passed for `domain` itself. */
function passesForItself(r: Checks, domain: string): boolean {
  const d = domainKey(domain);
  return passingSpf(r).some((s) => domainKey(s) === d) || passingDkim(r).some((s) => !s.underSized && domainKey(s.domain) === d);
}

/** SPF passed for the envelope sender's own domain (not the HELO name a null sender's check
 *  falls back on, RFC 7208 §2.4). */
function authorizesSender(r: Checks, sender: string): boolean {
  const at = sender.lastIndexOf('@');
  return at > 0 && passingSpf(r).some((d) => domainKey(d) === domainKey(sender.slice(at + 1)));
}

function passingSpf(r: Checks): string[] {
  return r.spf && r.spf.status.result === 'pass' && r.spf.domain ? [r.spf.domain] : [];
}

function passingDkim(r: Checks): DkimDomain[] {
  return (r.dkim.results ?? []).filter((s) => s.status.result === 'pass' && s.signingDomain)
    .map((s) => ({ ...(s.id ? { id: s.id } : {}), domain: s.signingDomain!, aligned: s.status.aligned ?? false, ...(s.status.underSized ? { underSized: s.status.underSized } : {}) }));
}

/** Every domain an author address names, once each: after each "@" of an address, as a reader
 *  may take any of them for the domain (mailauth counts "a@victim.example@other.example" as two). */
function authorDomains(addresses: string[]): string[] {
  const out = new Set<string>();
  for (const address of addresses) {
    for (const part of address.split('@').slice(1)) {
      const d = domainKey(part.trim().replace(/\.$/, ''));
      if (/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(d)) out.add(d);
    }
  }
  return [...out];
}

/** The addresses of the message's From fields (all of them), or 'too long' past MAX_FROM_BYTES. */
function fromAddresses(message: Buffer): string[] | 'too long' {
  const header = message.subarray(0, headerEnd([message]).end).toString('latin1');
  const fields = fieldTexts(header).filter((f) => /^from[ \t]*:/i.test(f));
  if (fields.reduce((n, f) => n + f.length, 0) > MAX_FROM_BYTES) return 'too long';
  return fields.flatMap((f) => addressparser(unfoldedValue(f), { flatten: true }).map((a) => a.address));
}

function temperror(host: string, why: string): string {
  const comment = why.replace(/[\r\n()\\]/g, ' ').slice(0, 120);
  return `Authentication-Results: ${host};\r\n spf=temperror (${comment});\r\n dkim=temperror;\r\n dmarc=temperror\r\n`;
}

const checkers = new WeakMap<Config, InboundChecker>();

/**
 * Checks one inbound message with the system DNS (one checker, and so one DNS cache, per
 * config), or with `opts.resolver` when given.
 */
export function checkInbound(config: Config, input: InboundInput, opts: InboundOptions = {}): Promise<InboundResult> {
  if (opts.resolver) return new InboundChecker(config, opts).check(input);
  let c = checkers.get(config);
  if (!c) {
    c = new InboundChecker(config);
    checkers.set(config, c);
  }
  return c.check(input);
}
