/**
 * The SMTP listeners' glue: creates a session per connection with the role's policy and
 * performs the session's effects against the store (through the shared delivery path).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from '../context.ts';
import type { AuthThrottle } from '../auth/throttle.ts';
import { verifyPassword } from '../auth/password.ts';
import { acceptMessage, copiesOf } from '../delivery/accept.ts';
import { outboundOf } from '../delivery/recipients.ts';
import { blocklistsOf, type Blocklists } from '../delivery/blocklists.ts';
import { withoutForgedResults } from '../delivery/auth-results.ts';
import { checkInbound } from '../delivery/inbound-checks.ts';
import { unvouchedDsn } from '../delivery/dsn-trust.ts';
import { reportLocalDelivery } from '../delivery/report.ts';
import { FitAbandoned, fitSubmittedOffLoop } from '../mime/fit-thread.ts';
import { fitLocalMessage, RE_ENCODING, UnfitLineError } from '../mime/line-length.ts';
import { completeSubmission, MAX_ORIGINATOR_BYTES, type Completed } from '../mime/submission.ts';
import { withLocalHeader } from '../mime/submitted.ts';
import { withHeaderEnd } from '../mime/header-section.ts';
import { totalLength } from '../chunks.ts';
import type { ProtocolHandler } from '../net/listener.ts';
import type { FreeSpace } from '../store/free-space.ts';
import { isStorageFull, type UserRecord } from '../store/store.ts';
import { lookupAddress, parseMailbox } from './address.ts';
import { renderReply, reply } from './reply.ts';
import type { BodyBudget } from './body-budget.ts';
import { SmtpSession, type AuthenticatedUser, type SmtpEffect, type SmtpResult, type SmtpRole, type SmtpSessionOptions, type Delivery } from './session.ts';

export type { SmtpRole };

export interface SmtpHandler extends ProtocolHandler<SmtpEffect, SmtpResult> {
  /** Resolves once the delivery reports begun so far are queued (they follow the 250). */
  settled(): Promise<void>;
}

/** What the `local` role (`sendmail -bs`) knows of who runs it. */
export interface LocalCaller {
  /** The login name: the From of a message from the null sender that has none, and noted in
   *  Received, as the sendmail command notes it. */
  login: string;
}

/** `freeSpace` is the gauge of data_dir's filesystem, and `bodies` what messages arriving may
 *  hold in memory, both shared by the SMTP listeners (sendmail -bs runs one session alone, and
 *  gives its `caller`). */
export function smtpHandler(ctx: Context, role: SmtpRole, throttle: AuthThrottle, freeSpace: FreeSpace, opts: { caller?: LocalCaller; bodies?: { strangers: BodyBudget; users: BodyBudget } } = {}): SmtpHandler {
  const { caller, bodies } = opts;
  const { config } = ctx;
  const reports = new Set<Promise<void>>();
  const policy: SmtpSessionOptions = {
    role,
    hostname: config.hostname,
    postmasterDomain: config.domains[0]!,
    starttls: role === 'smtp' || role === 'submission',
    allowInsecureAuth: config.auth.allow_insecure,
    maxMessageSize: config.limits.max_message_size,
    maxRecipients: config.limits.max_recipients,
    maxOutgoingPerDay: config.limits.max_outgoing_per_day,
    maxLineLength: config.limits.max_line_length,
    roomFor: (declaredSize) => freeSpace.roomFor(declaredSize),
    strictPipelining: role !== 'local',
    ...(bodies ? { bodyBudget: bodies } : {}),
  };
  // Sessions whose connection has closed: a login that waited its turn is not checked for them.
  const closed = new WeakSet<object>();
  // Strangers on the MX only; looked up as they connect (see blocklists.ts).
  const blocklists = role === 'smtp' ? blocklistsOf(config, ctx.log) : undefined;
  return {
    name: role,
    pool: role === 'smtp' ? 'strangers' : 'users',
    implicitTls: role === 'submissions',
    idleTimeoutMs: config.limits.idle_timeout,
    createSession: (client) => {
      void blocklists?.screen(client.remoteAddress);
      return new SmtpSession(policy, client.remoteAddress, client.tls);
    },
    perform: (effect, session) => perform({ ctx, role, throttle, reports, caller, freeSpace, blocklists }, effect, () => session !== undefined && closed.has(session)),
    settled: async () => { await Promise.allSettled([...reports]); },
    ended: (session) => { closed.add(session); },
    refused: (reason) => ctx.metrics.rejected.inc({ listener: role, reason }),
    refusal: (reason) => renderReply(reply(421, '4.7.0', `${config.hostname} ${reason}, try again later`), true),
  };
}

/** What the effects of a listener's sessions are performed with. */
interface Performer {
  ctx: Context;
  role: SmtpRole;
  throttle: AuthThrottle;
  /** Delivery reports under way. */
  reports: Set<Promise<void>>;
  caller: LocalCaller | undefined;
  freeSpace: FreeSpace;
  blocklists: Blocklists | undefined;
}

/** `gone`: whether the session's connection has closed meanwhile. */
async function perform(p: Performer, effect: SmtpEffect, gone: () => boolean): Promise<SmtpResult> {
  const { ctx, role, throttle } = p;
  switch (effect.kind) {
    case 'auth': return authenticate(ctx, role, throttle, effect.client, effect.username, effect.password, gone);
    case 'sender': {
      const account = await sameAccount(ctx, effect.user);
      if (!account) return { kind: 'sender', allowed: false, gone: true };
      return { kind: 'sender', allowed: await ctx.recipients.mayUseSender(account, effect.address) };
    }
    case 'rcpt': {
      const resolution = await ctx.recipients.resolve(effect.address);
      const screening = p.blocklists && effect.client !== undefined && !ctx.recipients.isPostmaster(effect.address) ? await p.blocklists.screen(effect.client) : 'clear';
      if (screening !== 'clear') return { kind: 'rcpt', resolution, screening };
      if (outboundOf(resolution) === 0 || effect.sentBy === undefined) return { kind: 'rcpt', resolution };
      return { kind: 'rcpt', resolution, sent: await ctx.store.sentInLastDay(effect.sentBy, Date.now()) };
    }
    case 'verify': {
      const resolution = await ctx.recipients.resolve(effect.address);
      const alias = resolution.kind === 'local' ? await ctx.store.findAlias(effect.address) : undefined;
      return { kind: 'verify', resolution, ...(alias ? { alias } : {}) };
    }
    case 'deliver': return deliver(p, effect.delivery);
  }
}

/** Checks a login; failures are delayed and counted per client (shared with POP3). A session
 *  that closed while its login waited for its turn gets no check: nobody would hear the answer,
 *  and a guess nobody hears is not counted either. */
async function authenticate(ctx: Context, role: SmtpRole, throttle: AuthThrottle, client: string, username: string, password: string, gone: () => boolean): Promise<SmtpResult> {
  if (!(await throttle.begin(client, Date.now()))) return { kind: 'auth', disconnect: true };
  if (gone()) {
    throttle.abandon(client);
    return { kind: 'auth', disconnect: true };
  }
  let good: boolean;
  let user: Awaited<ReturnType<Context['store']['findUser']>>;
  try {
    user = await ctx.store.findUser(username);
    good = await verifyPassword(password, user?.passwordHash, client);
  } catch (err) {
    throttle.abandon(client);
    throw err;
  }
  if (good && user) {
    throttle.succeed(client, username);
    return { kind: 'auth', user: { id: user.id, address: user.address } };
  }
  const verdict = throttle.fail(client, username, Date.now());
  // The one line besides the session's, for fail2ban and its kind; POP3 writes the same.
  ctx.log.warn({ listener: role, client, user: username.slice(0, 256) }, 'authentication failed');
  if (verdict.delayMs > 0) await sleep(verdict.delayMs);
  return { kind: 'auth', disconnect: verdict.disconnect };
}

/** The account a session logged in as, while it still is that account: one removed since, or
 *  removed and made again under the same address (another id, another password), is not. */
async function sameAccount(ctx: Context, user: AuthenticatedUser): Promise<UserRecord | undefined> {
  const record = await ctx.store.findUser(user.address);
  return record?.id === user.id ? record : undefined;
}

/** The first of `originators` that `account` may not send as (the rule of MAIL FROM); an
 *  address '' names none. */
async function foreignOriginator(ctx: Context, account: UserRecord, originators: Completed['originators']): Promise<Completed['originators'][number] | undefined> {
  for (const o of originators) {
    // Read as MAIL FROM is: `"me"@example.com` is me@example.com's (RFC 5321 §4.1.2).
    const m = parseMailbox(o.address);
    if (typeof m === 'string' || !(await ctx.recipients.mayUseSender(account, lookupAddress(m)))) return o;
  }
  return undefined;
}

async function deliver({ ctx, role, reports, caller, freeSpace }: Performer, d: Delivery): Promise<SmtpResult> {
  // The header section as it is stored: a line that is no header field begins the body there.
  // The checks judge that header, so that the From a DMARC policy is applied to is the one the
  // recipient sees (RFC 7489 §6.6.1), whatever another parser makes of the line.
  const received = withHeaderEnd(d.body);
  // Mail from the internet (the MX, unauthenticated) gets SPF, DKIM and DMARC evaluated.
  let checks = '';
  let dsnDropped: string[] = [];
  if (role === 'smtp' && !d.user) {
    const verdict = await checkInbound(ctx.config, { clientIp: d.clientIp, helo: d.helo, sender: d.sender, message: received });
    if (verdict.reject) {
      return { kind: 'deliver', failure: 'refused', message: verdict.reject, reason: 'dmarc' };
    }
    if (verdict.defer) {
      return { kind: 'deliver', failure: 'deferred', message: verdict.defer, reason: 'dmarc_unknown' };
    }
    checks = verdict.authResults;
    // A stranger's requests for reports, unless SPF vouches for its sender (see dsn-trust.ts).
    if (!verdict.senderAuthorized) {
      const limited = unvouchedDsn(d.dsn, d.recipients);
      d = { ...d, dsn: limited.dsn, recipients: limited.recipients };
      dsnDropped = limited.dropped;
    }
  }
  // Results that claim our host name come from no one we trust (RFC 8601 §5).
  let body = withoutForgedResults(received, ctx.config.hostname);
  // Written here: by a user, or by a local program through `sendmail -bs`.
  const writtenHere = d.user !== undefined || role === 'local';
  if (writtenHere) {
    // What a user hands in is completed as a submission agent does (RFC 6409 §8), and its From
    // may name only the user's own addresses, as MAIL FROM may.
    // From the null sender through `sendmail -bs`, the From it lacks is the caller's, as the
    // sendmail command writes it.
    const from = d.sender || (caller ? `${caller.login}@${ctx.config.domains[0]}` : '');
    // A local program's header is edited as the sendmail command edits it: `From: www-data`
    // gets the domain, which a mail server over the network would not add to a client's.
    if (role === 'local') body = withLocalHeader(body, ctx.config.domains[0]!);
    const done = completeSubmission(body, { from, hostname: ctx.config.hostname, now: new Date() });
    const account = d.user === undefined ? undefined : await sameAccount(ctx, d.user);
    if (d.user !== undefined && !account) return { kind: 'deliver', failure: 'account-gone', reason: 'account_gone' };
    const foreign = account === undefined ? undefined : await foreignOriginator(ctx, account, done.originators);
    if (foreign !== undefined) {
      const message = foreign.tooLong ? `${foreign.field}: over ${MAX_ORIGINATOR_BYTES} octets, too long to be checked; it must name one of your addresses`
        : foreign.address === '' ? `${foreign.field}: names no address that reads one way only; it must name one of yours` : `${foreign.field}: <${foreign.address}> is not one of your addresses`;
      return { kind: 'deliver', failure: 'refused', message, reason: 'foreign_from' };
    }
    // Its lines are made to fit 998 octets now, before it is signed, rather than folded by a
    // relay on its way, which would break the signature; a local program's text is labelled as
    // the sendmail command labels what it reads.
    try {
      body = role === 'local' ? fitLocalMessage(done.message) : await fitSubmittedOffLoop(done.message, d.user!.address);
    } catch (err) {
      // The server stops before the lines were fitted: not taken, and not refused either.
      if (err instanceof FitAbandoned) return { kind: 'deliver', failure: 'store-error', reason: 'store_error' };
      if (!(err instanceof UnfitLineError)) throw err;
      return { kind: 'deliver', failure: 'unfit', message: err.message, reason: 'long_line' };
    }
    // Quoted-printable can make 8-bit text up to three times as long: still held to the limit.
    // The fields completed above are the server's own, as its trace fields are, and not counted:
    // a message of the largest size that lacked a Date is taken.
    const { max_message_size: max } = ctx.config.limits;
    const size = totalLength(d.body) + totalLength(body) - totalLength(done.message);
    if (size > max) return { kind: 'deliver', failure: 'too-big', message: `the message is ${size} bytes once re-encoded (${RE_ENCODING}); at most ${max} are allowed`, reason: 'too_big' };
  }
  // Held to the rule of MAIL again, now that its size is known, against a reading that counts
  // off what was stored since it was made: sessions that all passed MAIL within a second would
  // otherwise fill the disk past the reserve that deletions need.
  if (!freeSpace.take(totalLength(body), copiesOf(d.recipients))) {
    ctx.log.warn({ listener: role, size: totalLength(body) }, 'message refused for now: the disk holding data_dir is nearly full');
    return { kind: 'deliver', failure: 'storage-full', reason: 'storage_full' };
  }
  try {
    const { id, localTrace } = await acceptMessage(ctx.store, {
      checks,
      writtenHere,
      sender: d.sender,
      dsn: d.dsn,
      recipients: d.recipients,
      body,
      received: {
        helo: d.helo,
        clientIp: d.clientIp,
        by: ctx.config.hostname,
        with: d.protocol,
        ...(d.tls ? { tls: d.tls } : {}),
        ...(d.user ? { auth: d.user.address } : caller ? { auth: caller.login } : {}),
      },
      ...(d.user ? { sentBy: d.user.id } : {}),
    });
    ctx.metrics.accepted.inc({ listener: role });
    // One line per message taken (Postfix's qmgr "from=<...>, size=..." and its "to=" lines).
    ctx.log.info({ listener: role, client: d.clientIp, id, from: d.sender, to: d.recipients.map((r) => r.address), size: totalLength(d.body), ...(d.user ? { user: d.user.address } : {}), ...(dsnDropped.length > 0 ? { dsn_not_honoured: dsnDropped } : {}) }, 'message accepted');
    // Not awaited: the 250 does not wait for a "delivered" report, nor fails with it.
    const report = { sender: d.sender, queueId: id, ...(d.dsn.envid ? { envid: d.dsn.envid } : {}), recipients: d.recipients, body, trace: localTrace, now: new Date() };
    const reporting = reportLocalDelivery(ctx, report).catch((err: unknown) => ctx.log.error({ err, id }, 'could not queue a delivery status notification'));
    reports.add(reporting);
    void reporting.finally(() => reports.delete(reporting));
    return { kind: 'deliver', id };
  } catch (err) {
    const full = isStorageFull(err);
    ctx.log.error({ err }, full ? 'cannot store message: the disk holding data_dir is full' : 'cannot store message');
    return full ? { kind: 'deliver', failure: 'storage-full', reason: 'storage_full' } : { kind: 'deliver', failure: 'store-error', reason: 'store_error' };
  }
}
