/**
 * The queue runner: takes due recipients from the store (another process may have queued them:
 * the store is polled), groups them by message and destination, and delivers them over a
 * bounded number of SMTP connections, then records each recipient's fate durably.
 *
 * - Destinations (a domain's MX hosts, a route, the smarthost) each have a queue of jobs and a
 *   connection limit that starts small and grows while deliveries succeed, as Postfix does.
 * - Fresh mail and retries are taken in turn, so a deferred backlog never starves new mail.
 * - A destination that cannot be reached defers all of its waiting jobs at once instead of
 *   timing out once per message.
 * - 5xx is permanent, 4xx and connection failures retry on the schedule until max_age; failures
 *   and expiries bounce (RFC 3464) to the sender, unless NOTIFY says otherwise or the sender is <>.
 * - The reports a message's recipients call for are kept with their outcomes, and go to the
 *   sender as one once none of its recipients is in flight (see sendReports).
 */
import { promises as dnsPromises } from 'node:dns';
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { hasEightBit, piecesAtLineEnds, readUntil } from '../chunks.ts';
import { hasLongLine } from '../mime/line-length.ts';
import { readCertificates } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { Context } from '../context.ts';
import { encodeUtf8Address } from '../smtp/xtext.ts';
import { domainKey, isStorageFull, type StsPolicy, type DueRecipient, type QueueEntry, type QueueRecipient, type RecipientUpdate, type ReportOn } from '../store/store.ts';
import { BUSY_PAUSE_MS, DestinationConcurrency } from './concurrency.ts';
import { DkimSigner } from './dkim.ts';
import { HEADER_MAX, headerSection, reportFromText, reportText, type DsnAction, type DsnRecipientReport } from './dsn.ts';
import { DnsError, PermanentDnsError, resolveMxHosts, selfRecognizer, systemResolver, TemporaryDnsError, type DnsResolver, type MxHost } from './mx.ts';
import { MtaSts, mxMatches } from './mta-sts.ts';
import { policyFetcher } from './mta-sts-fetch.ts';
import { sendReport } from './report.ts';
import { afterTemporaryFailure } from './retry.ts';
import { Router, type NextHop } from './route.ts';
import { ConnectError, oneLine, SmtpClient, type ClientOptions, type ClientTarget, type RecipientResult, type TlsMode } from './smtp-client.ts';

type EntryInfo = Omit<QueueEntry, 'recipients'>;

interface Job {
  entry: EntryInfo;
  recipients: QueueRecipient[];
  fresh: boolean;
}

interface Destination {
  hop: NextHop;
  /** The users' mail: new, and tried before. */
  fresh: Job[];
  retry: Job[];
  /** Mail from the null sender, in a line of its own (see reportConnectionsMax). */
  reports: Job[];
  /** Connections open (or opening) now. */
  active: number;
  /** Of them, those begun for the users' mail (see kindFor). */
  forUsers: number;
  /** Connections made (past the greeting and EHLO) and not yet closed. */
  open: number;
  /** How many connections may be open at once. */
  concurrency: DestinationConcurrency;
  /** Take fresh next (true) or a retry (false), alternating when both wait. */
  freshTurn: boolean;
}

export interface QueueRunnerOptions {
  /** The DNS for MX lookups (tests pass a stub). */
  resolver?: DnsResolver;
  /** Clock, for tests. */
  now?: () => number;
}

/** Messages of up to this size are read once into memory for signing and sending. */
const IN_MEMORY = 256 * 1024;

/** While queue scans keep failing, how often that is logged. */
const SCAN_FAILURE_LOG_MS = 60_000;
/** Addresses tried for one destination before the attempt counts as failed (Postfix: 5). */
const MAX_ADDRESSES = 5;
/** Jobs held in memory at most; more stay in the store until there is room. */
const MAX_PENDING = 4000;

/** What a connection is begun for: the users' mail, or mail from the null sender. */
type WorkerKind = 'users' | 'reports';

/** Of queue.max_connections, the most that mail from the null sender may hold at once (half,
 *  one at least). Such mail is reports, and bounces an alias sends on: strangers set it off, to
 *  servers of their choosing (a "delivered" report their SPF vouches for, to a domain whose MX
 *  answers as slowly as the client's deadlines allow), and without a share of its own it could
 *  hold every connection for as long and stall the users' mail. */
function reportConnectionsMax(max: number): number {
  return Math.max(1, Math.floor(max / 2));
}

/** What one job's attempt came to, to be recorded: the recipients' new state, with the reports
 *  it calls for. */
interface Outcome {
  entry: EntryInfo;
  updates: RecipientUpdate[];
  /** Its recipients, claimed until it is recorded. */
  ids: number[];
}

export class QueueRunner {
  readonly name = 'queue';
  private readonly ctx: Context;
  private readonly cfg: Config;
  private readonly router: Router;
  private readonly signer: DkimSigner | undefined;
  private readonly resolver: DnsResolver;
  /** Whether an MX host is this server (see resolveMxHosts). */
  private readonly isSelf: (host: MxHost) => boolean;
  private readonly now: () => number;
  private readonly clientOptions: ClientOptions;
  /** The certificates trusted when relay.ca_file is set: Node's (with NODE_EXTRA_CA_CERTS and the
   *  system's when Node is told to use them) and the file's; Node's alone otherwise. */
  private readonly trust: tls.SecureContext | undefined;
  private readonly sts: MtaSts | undefined;
  private readonly dests = new Map<string, Destination>();
  /** Recipient ids taken from the store and not yet settled. */
  private readonly claimed = new Set<number>();
  /** How many of each entry's recipients are claimed: its reports wait while any is. */
  private readonly claimedOf = new Map<string, number>();
  /** Entries whose outcomes recorded since the start owe reports not sent yet (the scans find
   *  those a crash left). */
  private readonly owed = new Set<string>();
  /** Entries whose reports are being sent now. */
  private readonly reporting = new Set<string>();
  /** Outcomes the store could not take (a full disk): their recipients stay claimed, so that
   *  they are not sent again, and each scan tries to record them first. */
  private held: Outcome[] = [];
  private pendingJobs = 0;
  private connections = 0;
  /** Of them, those begun for mail from the null sender (see reportConnectionsMax). */
  private reportConnections = 0;
  private rr: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  /** The scan under way, which stop waits for. */
  private scanning: Promise<void> | undefined;
  private repoll = false;
  /** Since when scans fail, and when that was last logged (a broken store fails every poll). */
  private failingSince: number | undefined;
  private failureLogged = 0;
  private stopping = false;
  private readonly workers = new Set<Promise<void>>();
  private readonly clients = new Set<SmtpClient>();
  /** Ends the connections still being made when the runner stops. */
  private readonly stopped = new AbortController();

  constructor(ctx: Context, opts: QueueRunnerOptions = {}) {
    this.ctx = ctx;
    this.cfg = ctx.config;
    this.router = new Router(ctx.config.relay);
    this.signer = ctx.config.dkim.enabled
      ? new DkimSigner({ dataDir: ctx.config.data_dir, selector: ctx.config.dkim.selector, algorithm: ctx.config.dkim.algorithm }, ctx.config.domains)
      : undefined;
    this.resolver = opts.resolver ?? systemResolver(ctx.config.relay.dns_timeout, ctx.config.dns_servers);
    this.isSelf = selfRecognizer(ctx.config.hostname, ctx.config.listen.smtp);
    this.now = opts.now ?? Date.now;
    this.clientOptions = {
      name: ctx.config.hostname,
      connectTimeout: ctx.config.relay.connect_timeout,
      greetingTimeout: ctx.config.relay.greeting_timeout,
      commandTimeout: ctx.config.relay.command_timeout,
      signal: this.stopped.signal,
    };
    // Node trusts the certificates it is given in place of its own: the file's are added to them.
    this.trust = ctx.config.relay.ca_file
      ? tls.createSecureContext({ ca: [...tls.getCACertificates('default'), readCertificates('relay.ca_file', ctx.config.relay.ca_file)], minVersion: 'TLSv1.2' })
      : undefined;
    this.sts = ctx.config.relay.mta_sts
      ? new MtaSts({
        txt: (name) => this.resolver.resolveTxt(name),
        fetch: policyFetcher({ resolver: this.resolver, timeoutMs: ctx.config.relay.connect_timeout, signal: this.stopped.signal, ...(this.trust ? { secureContext: this.trust } : {}) }),
        load: (domain) => ctx.store.stsPolicy(domain),
        save: (policy) => ctx.store.saveStsPolicy(policy),
        log: (fields, msg) => ctx.log.info(fields, msg),
        now: this.now,
      })
      : undefined;
  }

  async start(): Promise<string[]> {
    this.timer = setInterval(() => this.poll(), this.cfg.queue.poll_interval);
    this.poll();
    return [];
  }

  /** Stops taking work, lets running transactions finish (bounded), and leaves the rest queued. */
  async stop(graceMs = 15_000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    // A connection still being made carries nothing yet: it ends now, not at its timeout.
    this.stopped.abort();
    const all = Promise.allSettled([...this.workers]);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), graceMs); });
    if (await Promise.race([all, timeout]) === 'timeout') {
      for (const c of this.clients) void c.close();
      await all;
    }
    clearTimeout(timer);
    await this.scanning;
    this.signer?.close();
    await this.recordHeld();
    if (this.held.length > 0) {
      const ids = [...new Set(this.held.map((o) => o.entry.id))];
      this.ctx.log.warn({ ids }, 'stopping with delivery outcomes not recorded: their recipients will be tried again');
    }
  }

  /** Asks for a scan now (after a local acceptance, or `queue retry`). */
  poll(): void {
    if (this.stopping) return;
    if (this.polling) {
      this.repoll = true;
      return;
    }
    this.polling = true;
    this.scanning = this.scan().then(() => {
      if (this.failingSince === undefined) return;
      this.ctx.log.info({ failedFor: this.now() - this.failingSince }, 'queue scans work again');
      this.failingSince = undefined;
    }, (err: unknown) => {
      const now = this.now();
      this.failingSince ??= now;
      // Once a minute while it lasts, not at every poll.
      if (now - this.failureLogged < SCAN_FAILURE_LOG_MS) return;
      this.failureLogged = now;
      this.ctx.log.error({ err, failingFor: now - this.failingSince }, 'queue scan failed');
    }).finally(() => {
      this.polling = false;
      this.scanning = undefined;
      if (this.repoll) {
        this.repoll = false;
        this.poll();
      }
    });
  }

  private async scan(): Promise<void> {
    await this.recordHeld();
    const room = MAX_PENDING - this.pendingJobs;
    if (room > 0) {
      const now = this.now();
      const exclude = [...this.claimed];
      // Half the room for each kind, so neither new mail nor retries wait behind the other.
      const fresh = await this.ctx.store.dueRecipients(now, Math.ceil(room / 2), true, exclude);
      const retry = await this.ctx.store.dueRecipients(now, Math.ceil(room / 2), false, exclude);
      this.enqueue(fresh, true);
      this.enqueue(retry, false);
    }
    // Reports a crash or a full disk kept from going out: those of a message with recipients
    // just taken wait for their outcomes, to go with theirs.
    for (const id of await this.ctx.store.entriesWithReports()) await this.sendReports(id);
    this.ctx.metrics.queueDepth.set(await this.ctx.store.queueDepth());
    this.dispatch();
  }

  private enqueue(rows: DueRecipient[], fresh: boolean): void {
    const jobs = new Map<string, { dest: Destination; job: Job }>();
    for (const { entry, recipient } of rows) {
      if (this.claimed.has(recipient.id)) continue;
      this.claimed.add(recipient.id);
      this.claimedOf.set(entry.id, (this.claimedOf.get(entry.id) ?? 0) + 1);
      const hop = this.router.route(recipient.address);
      const k = `${entry.id}\u0000${hop.key}`;
      let j = jobs.get(k);
      if (!j) {
        j = { dest: this.destination(hop), job: { entry, recipients: [], fresh } };
        jobs.set(k, j);
      }
      j.job.recipients.push(recipient);
    }
    for (const { dest, job } of jobs.values()) {
      this.lineOf(dest, job).push(job);
      this.pendingJobs++;
    }
  }

  private destination(hop: NextHop): Destination {
    let d = this.dests.get(hop.key);
    if (!d) {
      const max = this.cfg.queue.max_connections_per_destination;
      d = { hop, fresh: [], retry: [], reports: [], active: 0, forUsers: 0, open: 0, concurrency: new DestinationConcurrency(max), freshTurn: true };
      this.dests.set(hop.key, d);
      this.rr.push(hop.key);
    }
    return d;
  }

  private waiting(d: Destination): number {
    return d.fresh.length + d.retry.length + d.reports.length;
  }

  /** The line a job waits in at its destination. */
  private lineOf(d: Destination, job: Job): Job[] {
    return job.entry.sender === '' ? d.reports : job.fresh ? d.fresh : d.retry;
  }

  /** The next job for a connection begun for `kind` of mail: that kind first (new mail and
   *  retries of the users' in turn), then the other, which goes over the connection once it is
   *  open. */
  private takeJob(d: Destination, kind: WorkerKind): Job | undefined {
    const order = d.freshTurn ? [d.fresh, d.retry] : [d.retry, d.fresh];
    d.freshTurn = !d.freshTurn;
    const lines = kind === 'users' ? [...order, d.reports] : [d.reports, ...order];
    const job = lines[0]!.shift() ?? lines[1]!.shift() ?? lines[2]!.shift();
    if (job) this.pendingJobs--;
    return job;
  }

  /** A job taken and not tried, first in its line again. */
  private putBack(d: Destination, job: Job): void {
    this.lineOf(d, job).unshift(job);
    this.pendingJobs++;
  }

  /** Opens connections while there is work and room, destinations in turn. */
  private dispatch(): void {
    if (this.stopping) return;
    let progressed = true;
    while (progressed && this.connections < this.cfg.queue.max_connections) {
      progressed = false;
      for (let i = 0; i < this.rr.length && this.connections < this.cfg.queue.max_connections; i++) {
        const key = this.rr.shift()!;
        this.rr.push(key);
        const d = this.dests.get(key)!;
        // One connection per few waiting jobs: more would only open and close empty.
        if (d.active < d.concurrency.limit && this.waiting(d) > d.active && d.concurrency.mayOpen(this.now()) && this.hasRoomFor(d)) {
          this.startWorker(d);
          progressed = true;
        }
      }
    }
    // Forget idle destinations so the map does not grow without bound, but not one a delivery
    // went well to just now: the next message for it may meet the connection it replaces.
    const now = this.now();
    for (const [key, d] of this.dests) {
      if (d.active === 0 && this.waiting(d) === 0 && !d.concurrency.justWentWell(now)) {
        this.dests.delete(key);
        this.rr = this.rr.filter((k) => k !== key);
      }
    }
  }

  /** What a connection to the destination would begin for: the users' mail while more of it
   *  waits than the connections begun for it can take at once, reports otherwise (counted in
   *  their share, however many users' connections the destination may have). */
  private kindFor(d: Destination): WorkerKind {
    return d.fresh.length + d.retry.length > d.forUsers ? 'users' : 'reports';
  }

  /** Whether a connection may begin: for mail from the null sender only while its share of the
   *  connections is not all taken. */
  private hasRoomFor(d: Destination): boolean {
    return this.kindFor(d) === 'users' || this.reportConnections < reportConnectionsMax(this.cfg.queue.max_connections);
  }

  private startWorker(d: Destination): void {
    const kind = this.kindFor(d);
    const report = kind === 'reports';
    d.active++;
    this.connections++;
    if (report) this.reportConnections++;
    else d.forUsers++;
    const w = this.work(d, kind)
      .catch((err) => this.ctx.log.error({ err, destination: d.hop.key }, 'delivery worker failed'))
      .finally(() => {
        d.active--;
        this.connections--;
        if (report) this.reportConnections--;
        else d.forUsers--;
        this.workers.delete(w);
        this.dispatch();
      });
    this.workers.add(w);
  }

  /** One connection's life: connect, then send waiting jobs of the destination over it. */
  private async work(d: Destination, kind: WorkerKind): Promise<void> {
    let client: SmtpClient;
    try {
      client = await this.connect(d.hop);
    } catch (err) {
      // Stopped while connecting: the jobs stay queued as they were, uncharged.
      if (this.stopping) return;
      // Other connections to the destination are made or still being made: this failure is
      // one more than the next hop takes at once (a server with a limit per client address
      // answers 421 at the greeting), not the destination's. They carry the waiting mail, and
      // no more are opened than the others, as Postfix lowers its concurrency. So is a 4xx at
      // the greeting just after a delivery went well, when the connection it replaces may still
      // count there: the mail waits a moment for the next one.
      const busy = err instanceof ConnectError && err.remoteMta !== undefined && !err.loginRefused && err.reply.startsWith('4') && d.concurrency.justWentWell(this.now());
      if (d.active > 1 || busy) {
        d.concurrency.tooMany(d.active - 1, this.now());
        if (d.active === 1) {
          d.concurrency.pause(this.now());
          setTimeout(() => this.dispatch(), BUSY_PAUSE_MS).unref();
        }
        this.ctx.log.info({ destination: d.hop.key, open: d.open, others: d.active - 1, reply: err instanceof DnsError || err instanceof ConnectError ? err.reply : localError(err) }, 'a connection failed while others to the destination are open or just closed; fewer are opened');
        return;
      }
      // Deferred as any refusal before a transaction is (as Postfix's smtp_sasl_auth_soft_bounce),
      // but the operator is told: every message for the smarthost waits on it.
      if (err instanceof ConnectError && err.loginRefused) {
        this.ctx.log.warn({ destination: d.hop.key, reply: err.reply }, 'the next hop refused our login; mail for it waits: check [relay] username and password');
      }
      const permanent = err instanceof PermanentDnsError || (err instanceof ConnectError && err.permanent);
      const reply = err instanceof DnsError || err instanceof ConnectError ? err.reply : localError(err);
      d.concurrency.unreachable();
      // The destination is unreachable now (no other connection is made or being made): every
      // job waiting for it shares this outcome.
      const jobs: Job[] = [];
      for (let job = this.takeJob(d, kind); job; job = this.takeJob(d, kind)) jobs.push(job);
      // A server's refusal names that server; anything else (DNS, a connection refused or lost,
      // our own failure) is mailnest's own report (RFC 3464 §2.3.6).
      const remoteMta = err instanceof ConnectError ? err.remoteMta : undefined;
      const ownReply = remoteMta === undefined;
      await Promise.all(jobs.map((job) => this.settle(job, job.recipients.map((r) => ({ address: r.address, ok: false, permanent, reply, ownReply })), remoteMta)));
      return;
    }
    this.clients.add(client);
    d.open++;
    try {
      while (!this.stopping && client.usable && client.sent < this.cfg.queue.messages_per_connection) {
        let job = this.takeJob(d, kind);
        if (!job) break;
        // A next hop that offers DSN gets each recipient's NOTIFY and ORCPT, and the client puts
        // one of each on every recipient of a transaction: recipients that differ go in
        // transactions of their own, one job each, so that a job is one transaction always.
        if (client.offersDsn) {
          const [first, ...others] = byDsnRequests(job.recipients);
          for (const group of others.reverse()) this.putBack(d, { ...job, recipients: group });
          job = { ...job, recipients: first! };
        }
        let results: RecipientResult[];
        try {
          results = await this.deliver(client, job);
        } catch (err) {
          // Removed from the queue (`mailnest queue remove`) since it was taken: nothing to send,
          // and its recipients are claimed no more.
          if (await this.removedMeanwhile(job)) {
            this.release(job.entry.id, job.recipients.map((r) => r.id));
            this.ctx.log.info({ id: job.entry.id }, 'removed from the queue before it was sent');
            continue;
          }
          // Our side failed (store, signing): leave the recipients for a later attempt.
          this.ctx.log.error({ err, id: job.entry.id }, 'delivery failed');
          results = job.recipients.map((r) => ({ address: r.address, ok: false, permanent: false, reply: localError(err), ownReply: true }));
        }
        // A transfer that failed on our side because the message went meanwhile (its body, read
        // as it was sent, gone with it): the removal, not a failure to retry. (A next hop's
        // refusal of it is settled as usual, and reported to no one: see sendReports.)
        if (results.every((r) => !r.ok && r.ownReply === true) && await this.removedMeanwhile(job)) {
          this.release(job.entry.id, job.recipients.map((r) => r.id));
          this.ctx.log.info({ id: job.entry.id }, 'removed from the queue while it was being sent; the transfer was cut off');
          continue;
        }
        // A connection closed after the mail it carried (a server's limit per connection): the job
        // waits for a fresh one, uncharged; closed on a fresh one, it is a 4xx like any other.
        if (results.length > 0 && results.every((r) => r.again === 'connection')) {
          this.ctx.log.info({ id: job.entry.id, relay: client.target.servername ?? client.target.host, reply: results[0]!.reply }, 'connection closed by the next hop; the message goes on a fresh one');
          this.putBack(d, job);
          break;
        }
        // Recipients over the next hop's limit per transaction: when it took others, they go at
        // once in another transaction, uncharged.
        const over = results.some((r) => r.ok) ? new Set(results.filter((r) => r.again === 'transaction').map((r) => r.address)) : new Set<string>();
        if (over.size > 0) {
          const taken = job;
          this.putBack(d, { ...taken, recipients: taken.recipients.filter((r) => over.has(r.address)) });
          job = { ...taken, recipients: taken.recipients.filter((r) => !over.has(r.address)) };
          results = results.filter((r) => !over.has(r.address));
        }
        await this.settle(job, results, client.target.servername ?? client.target.host);
        if (results.some((r) => r.ok)) d.concurrency.wentWell(this.now());
      }
    } finally {
      d.open--;
      this.clients.delete(client);
      await client.close();
    }
  }

  /** Whether the job's message is no longer queued; false when the store cannot tell. */
  private async removedMeanwhile(job: Job): Promise<boolean> {
    try {
      return (await this.ctx.store.getQueueEntry(job.entry.id)) === undefined;
    } catch {
      return false;
    }
  }

  /** The MTA-STS policy of a domain's MX delivery (none for an address literal, which names no
   *  domain to ask); one kept that cannot be read defers the delivery. */
  private async mtaStsPolicy(domain: string): Promise<StsPolicy | undefined> {
    if (!this.sts || domain.startsWith('[')) return undefined;
    try {
      return await this.sts.policyFor(domainKey(domain));
    } catch (err) {
      throw new TemporaryDnsError(`451 4.3.0 ${(err as Error).message}`);
    }
  }

  /** The hosts of a hop, in order, and a connection to the first that answers. */
  private async connect(hop: NextHop): Promise<SmtpClient> {
    const relay = this.cfg.relay;
    // Certificates checked, TLS is required of MX hosts too: an attacker who can forge none could
    // otherwise strip the STARTTLS offer, or answer it 454, and read the mail (Postfix's
    // "verify" level). A route is the operator's own next hop (a filter on the same network,
    // say): STARTTLS when it offers it, its certificate unchecked (Postfix's "may"), since a
    // check that a stripped offer escapes protects nothing.
    const mxTls: TlsMode = relay.tls_verify ? 'starttls' : 'opportunistic';
    let targets: ClientTarget[];
    if (hop.kind === 'route' || hop.kind === 'smarthost') {
      // A host named in the configuration: its name is the one its certificate is checked for.
      const how = hop.kind === 'route'
        ? { tls: 'opportunistic' as const, verify: false, verifyKey: 'relay.tls_verify' }
        : { tls: hop.tls, verify: relay.smarthost_tls_verify, verifyKey: 'relay.smarthost_tls_verify', ...(hop.auth ? { auth: hop.auth } : {}) };
      targets = (await addressesOf(hop.host, hop.port)).map((a) => ({
        host: a, port: hop.port, ...(a === hop.host ? {} : { servername: hop.host }), ...how, ...(this.trust ? { secureContext: this.trust } : {}),
      }));
    } else {
      const hosts: MxHost[] = await resolveMxHosts(this.resolver, hop.domain, Math.random, this.isSelf);
      // RFC 8461 §5: a policy in enforce mode names the MX hosts the mail may go to, and each
      // gets it over TLS with a certificate valid for its name, or not at all.
      const policy = await this.mtaStsPolicy(hop.domain);
      const enforced = policy?.mode === 'enforce' ? policy : undefined;
      const allowed = enforced ? hosts.filter((h) => mxMatches(enforced.mx, h.name)) : hosts;
      if (enforced && allowed.length === 0) {
        throw new TemporaryDnsError(`451 4.7.0 no MX host of ${hop.domain} (${hosts.map((h) => h.name).join(', ')}) is one its MTA-STS policy names (${enforced.mx.join(', ')}; RFC 8461 section 4.1)`);
      }
      const how = enforced
        ? { tls: 'starttls' as const, verify: true, verifyKey: 'relay.mta_sts', requiredBy: `by the MTA-STS policy of ${hop.domain}` }
        : { tls: mxTls, verify: relay.tls_verify, verifyKey: 'relay.tls_verify' };
      targets = allowed.flatMap((h) => h.addresses.map((a) => ({ host: a, port: 25, servername: h.name, ...how, ...(this.trust ? { secureContext: this.trust } : {}) }))).slice(0, MAX_ADDRESSES);
    }
    let kept: ConnectError | undefined;
    // RFC 5321 §5.1: on a connection failure or a refusal at greeting, try the next host.
    for (const t of targets) {
      try {
        return await SmtpClient.connect(t, this.clientOptions);
      } catch (err) {
        kept = ConnectError.telling(kept, err instanceof ConnectError ? err : new ConnectError(oneLine(String(err))));
      }
    }
    throw kept ?? new ConnectError('no host to connect to');
  }

  /** Reads the message, signs it when it is from a local domain, and runs one transaction. */
  private async deliver(client: SmtpClient, job: Job): Promise<RecipientResult[]> {
    const { entry } = job;
    const store = this.ctx.store;
    let head: Buffer;
    let eightBit = false;
    let whole: Buffer | undefined;
    /** The header is longer than what was read of it (a large message's first HEADER_MAX). */
    let cut = false;
    if (entry.size <= IN_MEMORY) {
      const parts: Buffer[] = [];
      for await (const c of store.readQueued(entry.id)) parts.push(c);
      whole = Buffer.concat(parts);
      head = headerSection(whole, whole.length);
      eightBit = hasEightBit(whole);
    } else {
      const parts: Buffer[] = [];
      let headLen = 0;
      for await (const c of store.readQueued(entry.id)) {
        if (headLen < HEADER_MAX) {
          parts.push(c);
          headLen += c.length;
        }
        if (!eightBit && hasEightBit(c)) eightBit = true;
      }
      const read = Buffer.concat(parts);
      head = headerSection(read, read.length);
      cut = head.length === read.length;
    }
    let signature = '';
    const domain = entry.sign ? this.signer?.signingDomain(head, entry.sender, cut) : undefined;
    if (this.signer && domain) {
      // In pieces that end lines (see piecesAtLineEnds): a failure report returning a stranger's
      // message whole may hold a line of megabytes.
      signature = await this.signer.sign(domain, whole ?? Readable.from(piecesAtLineEnds(store.readQueued(entry.id))));
    }
    const sig = Buffer.from(signature, 'utf8');
    const content = whole
      ? () => Readable.from([sig, whole])
      : () => Readable.from((async function* () { yield sig; yield* store.readQueued(entry.id); })());
    const message = { sender: entry.sender, recipients: job.recipients.map((r) => r.address), size: entry.size + sig.length, eightBit, content };
    if (!client.offersDsn) return client.send(message);
    // RFC 3461 §5.2.1: a next hop that offers DSN is handed the sender's requests (the job's
    // recipients share theirs: see work), and reports from there on. ENVID goes only when
    // ASCII (SMTP takes no other since, but an entry an earlier version queued may hold it): the
    // client would send other text as UTF-8, not as the octets received.
    const { notify, orcpt } = job.recipients[0]!;
    const envid = asciiOnly(entry.dsn.envid);
    const original = orcpt === undefined ? undefined : relayedOrcpt(orcpt);
    const dsn = { ...(entry.dsn.ret ? { ret: entry.dsn.ret } : {}), ...(envid ? { envid } : {}), ...(notify ? { notify } : {}), ...(original ? { orcpt: original } : {}) };
    const sent = await client.send({ ...message, dsn });
    return sent.map((r) => (r.ok ? { ...r, dsnPassed: true } : r));
  }

  /** Records the outcome of one job durably, with the reports it calls for, and sends the
   *  message's reports when none of its recipients is in flight any more. */
  private async settle(job: Job, results: RecipientResult[], remoteMta: string | undefined): Promise<void> {
    const now = this.now();
    const { entry } = job;
    const byAddress = new Map(results.map((r) => [r.address, r]));
    const updates: RecipientUpdate[] = [];
    const last = new Date(now);
    // A message from the null sender is reported to no one (RFC 3461 §6).
    const withReport = (u: RecipientUpdate, report: DsnRecipientReport | undefined): RecipientUpdate =>
      (report && entry.sender !== '' ? { ...u, report: reportText(report) } : u);
    for (const r of job.recipients) {
      const res = byAddress.get(r.address) ?? { address: r.address, ok: false, permanent: false, reply: 'no result' };
      const attempts = r.attempts + 1;
      const notify = r.notify;
      const remote = res.ownReply ? { ownReply: true } : remoteMta ? { remoteMta } : {};
      const base = { address: r.address, ...(r.orcpt ? { orcpt: r.orcpt } : {}), ...remote, lastAttempt: last };
      if (res.ok) {
        // To a next hop without DSN, NOTIFY=SUCCESS is answered here (RFC 3461 §5.2.2); one that
        // took the request reports the delivery itself.
        const relayed = notify?.includes('SUCCESS') && !res.dsnPassed;
        updates.push(withReport({ recipientId: r.id, status: 'delivered', attempts, nextAttempt: now, lastReply: res.reply },
          relayed ? { ...base, action: 'relayed', reply: res.reply } : undefined));
        this.ctx.metrics.deliveries.inc({ outcome: 'delivered' });
        this.ctx.log.info({ id: entry.id, to: r.address, relay: remoteMta, reply: res.reply }, 'delivered');
        continue;
      }
      const wantsFailure = notify === undefined || notify.includes('FAILURE');
      if (res.permanent) {
        updates.push(withReport({ recipientId: r.id, status: 'failed', attempts, nextAttempt: now, lastReply: res.reply },
          wantsFailure ? { ...base, action: 'failed', reply: res.reply } : undefined));
        this.ctx.metrics.deliveries.inc({ outcome: 'failed' });
        this.ctx.log.info({ id: entry.id, to: r.address, relay: remoteMta, reply: res.reply }, 'delivery failed permanently');
        continue;
      }
      const wantsDelay = notify === undefined || notify.includes('DELAY');
      const warnAt = entry.created + this.cfg.queue.delay_warning;
      const next = afterTemporaryFailure({ retry: this.cfg.queue.retry, maxAge: this.cfg.queue.max_age }, entry.created, attempts, now, !r.warned && wantsDelay ? warnAt : undefined);
      if (next.expired) {
        updates.push(withReport({ recipientId: r.id, status: 'failed', attempts, nextAttempt: now, lastReply: res.reply },
          wantsFailure ? { ...base, action: 'failed', status: '4.4.7', reply: res.reply, note: 'gave up: the message stayed in the queue too long' } : undefined));
        this.ctx.metrics.deliveries.inc({ outcome: 'expired' });
        this.ctx.log.info({ id: entry.id, to: r.address, reply: res.reply }, 'delivery expired');
        continue;
      }
      const warn = !r.warned && wantsDelay && now >= warnAt;
      updates.push(withReport({ recipientId: r.id, status: 'deferred', attempts, nextAttempt: next.next, dueWhenTaken: r.nextAttempt, lastReply: res.reply, ...(warn ? { warned: true } : {}) },
        warn ? { ...base, action: 'delayed', reply: res.reply, willRetryUntil: new Date(entry.created + this.cfg.queue.max_age) } : undefined));
      this.ctx.metrics.deliveries.inc({ outcome: 'deferred' });
      this.ctx.log.info({ id: entry.id, to: r.address, relay: remoteMta, reply: res.reply, next_attempt: new Date(next.next).toISOString() }, 'delivery deferred');
    }
    const outcome = { entry, updates, ids: job.recipients.map((r) => r.id) };
    try {
      await this.record(outcome);
    } catch (err) {
      // Released, the recipients would be taken again at the next scan, and sent again each
      // time: a full disk once made that a copy a second.
      this.held.push(outcome);
      this.ctx.log.error({ err, id: entry.id }, 'could not record the outcome of a delivery; its recipients are held, and not sent again, until it is');
    }
  }

  /** Commits an outcome, lets go of its recipients, and sends the message's reports when that
   *  was the last of its recipients in flight. Throws when the store cannot take the outcome. */
  private async record(o: Outcome): Promise<void> {
    await this.ctx.store.updateRecipients(o.entry.id, o.updates);
    if (o.updates.some((u) => u.report !== undefined)) this.owed.add(o.entry.id);
    this.release(o.entry.id, o.ids);
    if (this.owed.has(o.entry.id)) await this.sendReports(o.entry.id);
  }

  private release(entryId: string, ids: number[]): void {
    let left = this.claimedOf.get(entryId) ?? 0;
    for (const id of ids) if (this.claimed.delete(id)) left--;
    if (left > 0) this.claimedOf.set(entryId, left);
    else this.claimedOf.delete(entryId);
  }

  /** Tries again to record the outcomes the store could not take; those it still cannot, stay. */
  private async recordHeld(): Promise<void> {
    const held = this.held;
    this.held = [];
    for (const o of held) {
      try {
        await this.record(o);
      } catch {
        this.held.push(o);
      }
    }
  }

  /**
   * Sends the reports owed for a message, as one, once none of its recipients is in flight: the
   * sender of a message whose recipients failed at several destinations in one round gets one
   * report naming them all, as a Postfix bounce covers its queue file. The report is queued in
   * the same commit that marks the owed ones sent, so a crash sends it once, never twice or
   * not at all. Never throws: what is still owed goes at a later scan.
   */
  private async sendReports(id: string): Promise<void> {
    if (this.claimedOf.has(id) || this.reporting.has(id)) return;
    this.reporting.add(id);
    try {
      const entry = await this.ctx.store.getQueueEntry(id);
      const owed = entry?.recipients.filter((r) => r.report !== undefined) ?? [];
      let removed = !entry;
      if (entry && owed.length > 0) {
        const on = { queueId: id, recipientIds: owed.map((r) => r.id) };
        let queued = false;
        try {
          queued = await this.notify(entry, owed.map((r) => reportFromText(r.report!)), on);
        } catch (err) {
          // Still owed: a scan tries again, and the full disk is said where mail is refused.
          if (isStorageFull(err)) return;
          removed = !(await this.ctx.store.getQueueEntry(id));
          if (!removed) this.ctx.log.error({ err, id }, 'could not queue a delivery status notification');
        }
        // A report dropped (see sendReport) or that failed is owed no more either.
        if (!queued && !removed) await this.ctx.store.reportsSent(on);
      }
      // `queue remove` during the transfer, or while the report was written, took the message and
      // what it was owed: the operator's word on it, not a fault. (An entry gone before this call
      // that was not owed anything here had its reports sent by an earlier one.)
      if (removed && (entry || this.owed.has(id))) this.ctx.log.info({ id }, 'no delivery status notification: the message was removed from the queue');
      this.owed.delete(id);
    } catch (err) {
      if (!isStorageFull(err)) this.ctx.log.error({ err, id }, 'could not send the delivery status notifications of a message');
    } finally {
      this.reporting.delete(id);
    }
  }

  /** Sends an RFC 3464 report to the message's sender, from the null sender; true when it is
   *  queued, which marks the reports `on` sent in the same commit. */
  private async notify(entry: EntryInfo, reports: DsnRecipientReport[], on: ReportOn): Promise<boolean> {
    const ret = entry.dsn.ret ?? 'HDRS';
    const trouble: DsnAction[] = ['failed', 'delayed'];
    // RFC 3461 §4.3: RET=FULL asks for the whole message in a report of failure; a delay warning
    // (as Postfix's) and a success report carry its header.
    const full = ret === 'FULL' && reports.some((r) => r.action === 'failed');
    let original: Buffer | undefined;
    try {
      original = await this.original(entry.id, full);
    } catch (err) {
      // The sender is still told what became of the message (its body gone from a restored copy
      // of data_dir, say), only without it.
      this.ctx.log.warn({ err, id: entry.id }, 'the message cannot be read: its delivery status notification goes without it');
    }
    // A message with a line over 998 octets (mail from the internet goes on as it came) comes
    // back as its header: the report must not hold a line no server need take (RFC 5321
    // §4.5.3.1.6), nor one a relay would fold.
    const whole = full && original !== undefined && !hasLongLine([original]);
    const where = await sendReport(this.ctx, {
      sender: entry.sender,
      queueId: entry.id,
      ...(entry.dsn.envid ? { envid: entry.dsn.envid } : {}),
      arrival: new Date(entry.created),
      recipients: reports,
      ...(original ? { original } : {}),
      ret: whole ? 'FULL' : 'HDRS',
      now: new Date(this.now()),
      orPostmaster: entry.sign && reports.some((r) => trouble.includes(r.action)),
      reportOn: on,
    });
    if (where === 'remote') this.poll();
    return where !== undefined;
  }

  /** The queued message whole, or (`full` false) as far as the end of its header section. */
  private original(id: string, full: boolean): Promise<Buffer> {
    return readUntil(this.ctx.store.readQueued(id), full ? undefined : '\r\n\r\n', this.cfg.limits.max_message_size);
  }
}

/** Recipients in groups alike in their DSN requests (NOTIFY and ORCPT), in their order. */
function byDsnRequests(recipients: QueueRecipient[]): QueueRecipient[][] {
  const groups = new Map<string, QueueRecipient[]>();
  for (const r of recipients) {
    const key = `${r.notify?.join(',') ?? ''}\u0000${r.orcpt ?? ''}`;
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()];
}

function asciiOnly(text: string | undefined): string | undefined {
  return text !== undefined && /^[\x20-\x7e]*$/.test(text) ? text : undefined;
}

/**
 * ORCPT as kept (`type;address`, decoded) as the next hop is to read it, or undefined when it
 * cannot go: the `utf-8` type, and an `rfc822` address with other than ASCII, as RFC 6533 §3's
 * utf-8-addr-xtext, whose `\x{HEX}` escapes are ASCII that the client's xtext leaves as they
 * are, valid with or without SMTPUTF8; any other ASCII as it is (the client writes it as xtext).
 */
function relayedOrcpt(orcpt: string): string | undefined {
  const semi = orcpt.indexOf(';');
  const type = orcpt.slice(0, semi).toLowerCase();
  const address = orcpt.slice(semi + 1);
  if (type === 'utf-8' || (type === 'rfc822' && !asciiOnly(address))) {
    const encoded = encodeUtf8Address(address);
    return encoded === undefined ? undefined : `utf-8;${encoded}`;
  }
  return asciiOnly(orcpt);
}

/** The reply recorded when our own side failed (the store, signing): a temporary failure. */
function localError(err: unknown): string {
  return `451 4.3.0 local error: ${oneLine(err instanceof Error ? err.message : String(err))}`;
}

/** Lookups under way, by name: connections opened together share one. */
const lookups = new Map<string, Promise<string[]>>();

/**
 * The addresses of a next hop named in the configuration (a route, the smarthost), found by the
 * system's resolver (/etc/hosts included), each then tried in turn with the whole
 * connect_timeout, as an MX's are (RFC 5321 §5.1). A lookup takes a thread of the pool the
 * store's flushes use until the resolver answers, so one name has one lookup at a time.
 */
function addressesOf(host: string, port: number): Promise<string[]> {
  if (net.isIP(host)) return Promise.resolve([host]);
  let lookup = lookups.get(host);
  if (!lookup) {
    lookup = dnsPromises.lookup(host, { all: true })
      .then((found) => found.map((a) => a.address).slice(0, MAX_ADDRESSES))
      .finally(() => lookups.delete(host));
    lookups.set(host, lookup);
  }
  return lookup.catch((err: unknown) => {
    throw new ConnectError(`${host}:${port}: its address cannot be found (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  });
}
