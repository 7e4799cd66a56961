/**
 * The SMTP server session (RFC 5321), sans-I/O: bytes in, replies and effects out.
 *
 * One instance per connection. The listener role decides the policy: `smtp` (the MX) takes
 * mail for local recipients from anyone; `submission` and `submissions` require AUTH before
 * MAIL and then take any recipient; `local` is `sendmail -bs`, SMTP on the standard input of
 * someone who may write to data_dir, trusted as the sendmail command trusts them: no AUTH, any
 * sender, any recipient. Extensions: PIPELINING (RFC 2920), SIZE (RFC 1870),
 * 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES (RFC 2034), CHUNKING
 * (RFC 3030), STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954), DSN (RFC 3461).
 */
import { isUtf8 } from 'node:buffer';
import { asciiAddress, asciiUpper, trimEndBlanks } from '../ascii.ts';
import { headerShape } from '../mime/header-section.ts';
import { EMPTY } from '../net/empty.ts';
import { describeTls, OUTPUT_PER_TURN, type Output, type Session, type SessionSummary, type TlsInfo } from '../net/session.ts';
import { LineReader } from '../net/line-reader.ts';
import { decodeBase64, isMechanism, SaslExchange, type SaslStep } from '../sasl/sasl.ts';
import { outboundOf, UNKNOWN_WHY, type Resolution, type UnknownWhy } from '../delivery/recipients.ts';
import type { ResolvedRecipient } from '../delivery/accept.ts';
import type { Screening } from '../delivery/blocklists.ts';
import { clientAddress } from '../net/client-key.ts';
import type { AliasRecord, DsnEnvelope } from '../store/store.ts';
import { formatMailbox, lookupAddress } from './address.ts';
import { parseCommandLine } from './command.ts';
import { DataReader } from './data-reader.ts';
import { parseMailFrom, parseRcptTo, type MailFrom, type RcptTo } from './envelope.ts';
import type { BodyBudget } from './body-budget.ts';
import { MessageSink } from './message-sink.ts';
import { renderReply, reply, type Reply } from './reply.ts';

export type SmtpRole = 'smtp' | 'submission' | 'submissions' | 'local';

export interface AuthenticatedUser {
  id: number;
  address: string;
}

/** What the session asks of the world. */
export type SmtpEffect =
  | { kind: 'auth'; client: string; username: string; password: string }
  | { kind: 'sender'; user: AuthenticatedUser; address: string }
  /** `sentBy`: the user whose mail to other domains is counted (see maxOutgoingPerDay).
   *  `client`: a session not logged in gives its client's address, to be screened by. */
  | { kind: 'rcpt'; address: string; sentBy?: number; client?: string }
  | { kind: 'verify'; address: string }
  | { kind: 'deliver'; delivery: Delivery };

export type SmtpResult =
  | { kind: 'auth'; user?: AuthenticatedUser; disconnect?: boolean }
  /** `gone`: the account logged in as was removed since (or removed and made again). */
  | { kind: 'sender'; allowed: boolean; gone?: boolean }
  /** `sent`: for a recipient at another domain with `sentBy`, the recipients at other domains
   *  that user's accepted mail had in the last 24 hours. `screening`: the client is in a DNS
   *  blocklist, which refuses its mail to this recipient, or the lists could not be asked now. */
  | { kind: 'rcpt'; resolution: Resolution; sent?: number; screening?: Exclude<Screening, 'clear'> }
  | { kind: 'verify'; resolution: Resolution; alias?: AliasRecord }
  | { kind: 'deliver'; id: string }
  /** Not stored: refused by policy (with the reply's text), a store failure, or no room on
   *  disk; `reason` is the refusal's for the count (see Output 'refused'). */
  | { kind: 'deliver'; id?: undefined; failure: 'refused' | 'deferred' | 'unfit' | 'too-big'; message: string; reason: string }
  | { kind: 'deliver'; id?: undefined; failure: 'store-error' | 'storage-full' | 'account-gone'; reason: string };

/** Everything needed to commit an accepted message. */
export interface Delivery {
  sender: string;
  dsn: DsnEnvelope;
  recipients: ResolvedRecipient[];
  body: Buffer[];
  helo: string;
  clientIp: string;
  /** The WITH keyword: ESMTP, ESMTPS, ESMTPA, ESMTPSA (RFC 3848), UTF8SMTP… under SMTPUTF8
   *  (RFC 6531 §3.7.3), or SMTP after HELO. */
  protocol: string;
  tls?: string;
  /** The account the session logged in as. */
  user?: AuthenticatedUser;
}

/** What ends a VRFY or EXPN argument of a client that may be answered in UTF-8 (RFC 6531
 *  §3.7.4.2), after at least one space. */
const SMTPUTF8_ARG = ' SMTPUTF8';

/** The listener's policy, one object shared by all of its sessions. */
export interface SmtpSessionOptions {
  role: SmtpRole;
  hostname: string;
  /** The local domain of a bare `RCPT TO:<Postmaster>` (RFC 5321 §4.1.1.3). */
  postmasterDomain: string;
  /** A certificate is available, so STARTTLS can be offered. */
  starttls: boolean;
  allowInsecureAuth: boolean;
  maxMessageSize: number;
  maxRecipients: number;
  /** Recipients at other domains a user may send to in any 24 hours (0 or absent: no limit). */
  maxOutgoingPerDay?: number;
  maxLineLength: number;
  /** Errors (5xx replies) tolerated before the session is ended (like Postfix's hard error limit). */
  maxErrors?: number;
  /**
   * Hang up on a client that sends commands before the reply it must wait for (see
   * unsynchronized): on the network listeners, not for `sendmail -bs`, whose scripts write
   * their whole dialogue at once.
   */
  strictPipelining?: boolean;
  /** Bounds the octets of messages held in memory until they are stored (see BodyBudget), for
   *  mail from anyone and for authenticated users' apart; absent, none. */
  bodyBudget?: { strangers: BodyBudget; users: BodyBudget };
  /** Whether the store has room for a message of this declared size (0 when none was
   *  declared), as last read (no I/O); absent, no check is made. */
  roomFor?: (declaredSize: number) => boolean;
}

/** RFC 5321 §6.3: a message with this many Received fields is in a loop ("normally at least 100"). */
const MAX_HOPS = 100;

/**
 * A header section of more lines than this, or with a field of more than MAX_FIELD_LINES, is
 * refused. Parsers that join a field's continuation lines one at a time (the DKIM verifier's
 * among them) take time that grows with the square of their number: 200,000 continuation lines,
 * 800 KB, held the event loop for minutes (the checks run in a thread of their own since, where
 * such a field of 5,000 lines costs about 0.1 s). Mail has a few dozen header lines; a To of
 * 1,200 recipients written one a line was seen passing through Postfix, which cuts a field at
 * 100 KiB (header_size_limit) rather than refusing the message.
 */
const MAX_HEADER_LINES = 10_000;
const MAX_FIELD_LINES = 5_000;

/** HELO, EHLO, NOOP, RSET, VRFY, EXPN and HELP a session may send since its last message before
 *  each counts as an error (Postfix's smtpd_junk_command_limit, which leaves out HELO and EHLO):
 *  with any of them a client would otherwise hold its connection, one of max_connections, for
 *  ever without moving any mail. */
const JUNK_LIMIT = 100;

/** Recipients past limits.max_recipients (each answered 452) a session may send since its last
 *  message before each counts as an error (Postfix's smtpd_recipient_overshoot_limit): a list
 *  sender that sends its recipients all at once is let through, one that does so without end
 *  is not. */
const OVERSHOOT_LIMIT = 1000;

/** RFC 5321 §4.2.3 452 and RFC 3463 X.3.1 (mail system full): the client tries again later. */
const INSUFFICIENT_STORAGE = reply(452, '4.3.1', 'Insufficient system storage, try again later');

type Phase = 'command' | 'auth' | 'data' | 'bdat' | 'tls' | 'closed';

/** Where a transaction was left: in its DATA or a BDAT chunk, or between commands. */
const unfinishedIn = (phase: Phase) => (phase === 'data' || phase === 'bdat' ? phase.toUpperCase() : 'MAIL');

interface Transaction {
  from: MailFrom;
  recipients: ResolvedRecipient[];
  /** Set once BDAT has been used: DATA is then out of sequence (RFC 3030 §3). */
  chunking: boolean;
  sink?: MessageSink;
}

const HELP = [
  'mailnest SMTP; commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP STARTTLS AUTH',
  'See RFC 5321 and https://www.rfc-editor.org/rfc/rfc5321 for their syntax',
];

/** RFC 2920 §3.1: commands that may only end a group of pipelined commands, since their reply
 *  changes what the client may send next (QUIT is left out: nothing after it matters; HELO
 *  is there as EHLO is). */
const ENDS_GROUP = new Set(['EHLO', 'HELO', 'DATA', 'VRFY', 'EXPN', 'NOOP']);

/** Verbs of RFC 821/5321 that mailnest knows but does not offer (502, not 500). */
const NOT_IMPLEMENTED = new Set(['TURN', 'ETRN', 'ATRN', 'SEND', 'SOML', 'SAML', 'VERB']);

export class SmtpSession implements Session<SmtpEffect, SmtpResult> {
  private readonly o: SmtpSessionOptions;
  private readonly clientIp: string;
  private readonly lines: LineReader;
  private input: Buffer = EMPTY;
  private out: Output<SmtpEffect>[] = [];
  /** Octets of replies in `out`. */
  private written = 0;
  private phase: Phase = 'command';
  private waiting: SmtpEffect | undefined;

  private helo: string | undefined;
  private esmtp = false;
  private tls: TlsInfo | undefined;
  private user: AuthenticatedUser | undefined;
  private tx: Transaction | undefined;
  private sasl: SaslExchange | undefined;
  private pendingRcpt: RcptTo | undefined;
  private verifyVerb: 'VRFY' | 'EXPN' = 'VRFY';
  /** The VRFY/EXPN being answered came with SMTPUTF8. */
  private verifyUtf8 = false;
  private data: DataReader | undefined;
  private bdatLeft = 0;
  private bdatLast = false;
  /** The chunk under way is empty: a BDAT that moves no mail. */
  private bdatEmpty = false;
  /** A BDAT after HELO: its chunk is read, and refused. */
  private bdatWithoutEhlo = false;
  private errors = 0;
  /** Commands that move no mail (see JUNK_LIMIT), and recipients past the limit (OVERSHOOT_LIMIT). */
  private junk = 0;
  private overshoot = 0;
  private stopping = false;

  // For the session log line.
  private accepted: string[] = [];
  private readonly refusals: Record<string, number> = {};
  private outcome = 'disconnected';
  private commands = 0;
  /** The phase the session was in when it closed. */
  private closedIn: Phase = 'command';

  /** `tls` is present when the connection is TLS from the start (submissions). */
  constructor(o: SmtpSessionOptions, clientIp: string, tls?: TlsInfo) {
    this.o = o;
    this.clientIp = clientIp;
    this.tls = tls;
    this.lines = new LineReader(o.maxLineLength);
  }

  private get busy(): boolean {
    return this.tx !== undefined || this.waiting !== undefined;
  }

  private get authRequired(): boolean {
    return this.o.role === 'submission' || this.o.role === 'submissions';
  }

  private get authAllowed(): boolean {
    return this.o.role !== 'local' && (this.tls !== undefined || this.o.allowInsecureAuth);
  }

  /** Mail may go to other domains: never an open relay (RFC 5321 §3.6.2), only from the
   *  authenticated and from the local command. */
  private get mayRelay(): boolean {
    return this.user !== undefined || this.o.role === 'local';
  }

  // ------------------------------------------------------------------ Session interface

  start(): Output<SmtpEffect>[] {
    this.send(reply(220, undefined, `${this.o.hostname} ESMTP mailnest`));
    return this.flush();
  }

  receive(data: Buffer): Output<SmtpEffect>[] {
    // RFC 3207 §4.2: nothing the client sends between STARTTLS and the handshake is kept.
    if (this.phase === 'closed' || this.phase === 'tls') return [];
    this.input = this.input.length === 0 ? data : Buffer.concat([this.input, data]);
    this.run();
    return this.flush();
  }

  resolve(result: SmtpResult): Output<SmtpEffect>[] {
    const effect = this.waiting;
    this.waiting = undefined;
    if (!effect || effect.kind !== result.kind) throw new Error(`unexpected ${result.kind} result`);
    switch (result.kind) {
      case 'auth': this.authDone(result); break;
      case 'sender': this.senderDone(result.allowed, result.gone === true); break;
      case 'rcpt': this.rcptDone(result); break;
      case 'verify': this.verifyDone(result.resolution, result.alias); break;
      case 'deliver': this.deliverDone(result); break;
    }
    this.run();
    return this.flush();
  }

  tlsStarted(info: TlsInfo): Output<SmtpEffect>[] {
    // RFC 3207 §4.2: discard all knowledge obtained from the client before TLS.
    this.tls = info;
    this.helo = undefined;
    this.esmtp = false;
    this.user = undefined;
    this.endTransaction();
    this.input = EMPTY;
    this.lines.reset();
    this.phase = 'command';
    return [];
  }

  timeout(): Output<SmtpEffect>[] {
    this.outcome = 'timeout';
    this.close(reply(421, '4.4.2', `${this.o.hostname} Error: timeout exceeded`));
    return this.flush();
  }

  shutdown(): Output<SmtpEffect>[] {
    this.stopping = true;
    this.closeIfStopping();
    return this.flush();
  }

  /** True when it closed the session. */
  private closeIfStopping(): boolean {
    if (!this.stopping || this.busy || (this.phase !== 'command' && this.phase !== 'auth')) return false;
    this.outcome = 'shutdown';
    this.close(reply(421, '4.3.2', `${this.o.hostname} Service shutting down, try again later`));
    return true;
  }

  failure(): Output<SmtpEffect>[] {
    this.outcome = 'error';
    this.phase = 'closed';
    return [{ type: 'write', data: renderReply(reply(421, '4.3.0', `${this.o.hostname} Internal error, closing connection`), this.esmtp) }];
  }

  closed(): void {
    this.tx?.sink?.release();
  }

  summary(): SessionSummary {
    return {
      ...(this.user ? { user: this.user.address } : {}),
      outcome: this.outcome,
      role: this.o.role,
      ...(this.helo ? { helo: this.helo } : {}),
      ...(this.tls ? { tls: describeTls(this.tls) } : {}),
      commands: this.commands,
      queued: this.accepted,
      // What was refused, by reason (the metric's) and how often: the reply said it, and the
      // log says it too.
      ...(Object.keys(this.refusals).length > 0 ? { refused: this.refusals } : {}),
      // A transaction the client left unfinished, and where (Postfix logs "lost connection
      // after DATA"): its message was not taken.
      ...(this.tx ? { unfinished: unfinishedIn(this.phase === 'closed' ? this.closedIn : this.phase) } : {}),
    };
  }

  // ------------------------------------------------------------------ plumbing

  private flush(): Output<SmtpEffect>[] {
    const out = this.out;
    this.out = [];
    this.written = 0;
    return out;
  }

  /** `utf8`: the reply may hold UTF-8 (RFC 6531 §3.7.4), as replies in a transaction that the
   *  client began with SMTPUTF8 may. */
  private send(r: Reply, utf8 = this.tx?.from.utf8): void {
    const data = renderReply(r, this.esmtp, utf8);
    this.written += data.length;
    this.out.push({ type: 'write', data });
    if (r.code >= 500) this.countError();
  }

  private countError(): void {
    if (++this.errors >= (this.o.maxErrors ?? 20) && this.phase !== 'closed') {
      this.outcome = 'too many errors';
      this.close(reply(421, '4.7.0', `${this.o.hostname} Too many errors, closing connection`));
    }
  }

  /** A command that moves no mail: past JUNK_LIMIT of them since the last message, each counts
   *  as an error too. */
  private junkCommand(): void {
    if (++this.junk > JUNK_LIMIT) this.countError();
  }

  private close(r: Reply): void {
    if (this.phase === 'closed') return;
    // The transaction stays, for the session's log line; its message goes.
    this.tx?.sink?.release();
    this.out.push({ type: 'write', data: renderReply(r, this.esmtp) }, { type: 'close' });
    this.closedIn = this.phase;
    this.phase = 'closed';
    this.input = EMPTY;
  }

  /** RFC 1870 §6.3 (and RFC 3030 §2 for a chunk): the message is over the limit. */
  private tooBig(): void {
    this.refused('too_big');
    this.send(reply(552, '5.3.4', `Message size exceeds the limit of ${this.o.maxMessageSize} octets`));
  }

  /** The messages arriving at the server, or from this client, hold all the memory they may
   *  (BodyBudget): this one is refused for now, and the client tries again later. */
  private noRoomInMemory(): void {
    this.refused('memory_full');
    this.send(INSUFFICIENT_STORAGE);
  }

  /** Counts a refusal by its reason (the listener's metrics); in a transaction, with its
   *  envelope for the log: the recipient refused (`to`), or all of them. */
  private refused(reason: string, to?: string, more: { warn?: true; detail?: string } = {}): void {
    const tx = this.tx;
    const envelope = tx && { from: tx.from.sender ? formatMailbox(tx.from.sender) : '', to: to !== undefined ? [to] : tx.recipients.map((r) => r.address) };
    this.out.push({ type: 'refused', reason, ...(envelope ? { envelope } : {}), ...more });
    // And for the session's log line (summary).
    this.refusals[reason] = (this.refusals[reason] ?? 0) + 1;
  }

  private effect(e: SmtpEffect): void {
    this.waiting = e;
    this.out.push({ type: 'effect', effect: e });
  }

  private newSink(): MessageSink {
    const budget = this.user ? this.o.bodyBudget?.users : this.o.bodyBudget?.strangers;
    return new MessageSink(this.o.maxMessageSize, budget?.lease(this.clientIp));
  }

  /** The transaction is over: what its message holds in memory goes. */
  private endTransaction(): void {
    this.tx?.sink?.release();
    this.tx = undefined;
  }

  /** Consumes buffered input until it runs out, an effect is awaited, the replies make a turn's
   *  worth (the rest waits for `more`), or the session ends. */
  private run(): void {
    while (this.input.length > 0 && !this.waiting) {
      switch (this.phase) {
        case 'command':
        case 'auth': {
          // A command pipelined behind a transaction that a shutdown let finish is not begun.
          if (this.closeIfStopping()) return;
          if (this.written >= OUTPUT_PER_TURN) {
            this.out.push({ type: 'more' });
            return;
          }
          const { event, rest } = this.lines.next(this.input);
          this.input = rest;
          if (!event) break;
          if (event.type === 'overlong') {
            if (this.phase === 'auth') this.endAuth(reply(500, '5.5.6', 'Authentication exchange line is too long'));
            else this.send(reply(500, '5.5.2', `Line too long (limit ${this.o.maxLineLength} octets)`));
          } else if (this.phase === 'auth') {
            this.authLine(event.line.toString('latin1'));
          } else {
            this.command(event.line);
          }
          break;
        }
        case 'data': {
          const step = this.data!.feed(this.input);
          this.input = EMPTY;
          for (const c of step.content) this.tx!.sink!.add(c);
          if (step.done) {
            this.input = step.rest;
            this.data = undefined;
            this.phase = 'command';
            this.finishMessage();
          }
          break;
        }
        case 'bdat': {
          const take = Math.min(this.bdatLeft, this.input.length);
          this.tx?.sink?.add(this.input.subarray(0, take));
          this.input = this.input.subarray(take);
          this.bdatLeft -= take;
          if (this.bdatLeft === 0) this.bdatChunkDone();
          break;
        }
        case 'tls':
        case 'closed':
          this.input = EMPTY;
          break;
      }
    }
    if (this.phase === 'bdat' && this.bdatLeft === 0 && !this.waiting) this.bdatChunkDone();
    // A stop was asked for while a transaction was open: close as soon as it is over.
    this.closeIfStopping();
  }

  // ------------------------------------------------------------------ commands

  private command(raw: Buffer): void {
    this.commands++;
    // Commands are ASCII (UTF-8 in addresses under SMTPUTF8); a NUL or bare CR is never valid.
    // Bytes that are not UTF-8 would be read as U+FFFD: an address not the one sent.
    if (!isUtf8(raw)) return this.send(reply(500, '5.5.2', 'Syntax error: the command is not ASCII or UTF-8 (RFC 6531 section 3.3)'));
    const line = raw.toString('utf8');
    if (/[\0\r]/.test(line)) {
      this.send(reply(500, '5.5.2', 'Syntax error: control characters in command'));
      return;
    }
    const { verb, args } = parseCommandLine(line);
    if (this.unsynchronized(verb)) {
      this.outcome = 'unsynchronized pipelining';
      this.refused('pipelining');
      return this.close(reply(554, '5.5.0', `${this.o.hostname} Protocol error: commands sent before the reply they had to wait for (RFC 2920 section 3.1), closing connection`));
    }
    switch (verb) {
      case 'HELO':
        this.heloCommand(args, false);
        return this.junkCommand();
      case 'EHLO':
        this.heloCommand(args, true);
        return this.junkCommand();
      case 'MAIL': return this.mailCommand(args);
      case 'RCPT': return this.rcptCommand(args);
      case 'DATA': return this.dataCommand(args);
      case 'BDAT': return this.bdatCommand(args);
      case 'RSET':
        if (args.trim() !== '') return this.send(reply(501, '5.5.4', 'RSET takes no arguments'));
        this.endTransaction();
        this.send(reply(250, '2.0.0', 'Ok'));
        return this.junkCommand();
      case 'NOOP':
        this.send(reply(250, '2.0.0', 'Ok'));
        return this.junkCommand();
      case 'QUIT':
        this.outcome = 'quit';
        return this.close(reply(221, '2.0.0', `${this.o.hostname} Bye`));
      case 'VRFY':
        this.verifyCommand('VRFY', args);
        return this.junkCommand();
      case 'EXPN':
        this.verifyCommand('EXPN', args);
        return this.junkCommand();
      case 'HELP':
        this.send(reply(214, '2.0.0', ...HELP));
        return this.junkCommand();
      case 'STARTTLS': return this.starttlsCommand(args);
      case 'AUTH': return this.authCommand(args);
      default:
        if (NOT_IMPLEMENTED.has(verb)) return this.send(reply(502, '5.5.1', `${verb} is not implemented`));
        return this.send(reply(500, '5.5.1', `Command unrecognized: ${verb.slice(0, 20).replace(/[^\x21-\x7e]/g, '?')}`));
    }
  }

  /**
   * True when input came after a command that had to be the last before its reply: one of
   * ENDS_GROUP, or any command when the client was not offered PIPELINING (before EHLO, after
   * HELO: RFC 5321 §4.3.1's lock-step). A client that did not wait for that reply is a spam
   * engine's shortcut, or an attempt to have the server read as commands what the client
   * wrote as data; Postfix hangs up on it too (smtpd_forbid_unauth_pipelining, on by default
   * since 3.9). What the client sends after the end of a message, BDAT's chunk, and input
   * after STARTTLS (discarded: RFC 3207 §4.2) do not count.
   */
  private unsynchronized(verb: string): boolean {
    if (!this.o.strictPipelining || this.input.length === 0) return false;
    if (verb === 'BDAT' || verb === 'STARTTLS' || verb === 'QUIT') return false;
    return !this.esmtp || ENDS_GROUP.has(verb);
  }

  /** RFC 5321 §4.1.1.1; EHLO answers with the extensions on offer (§4.1.4 resets the transaction). */
  private heloCommand(args: string, extended: boolean): void {
    const name = args.trim();
    if (name === '' || /\s/.test(name)) {
      return this.send(reply(501, '5.5.4', `Syntax: ${extended ? 'EHLO' : 'HELO'} hostname`));
    }
    this.helo = name;
    this.esmtp = extended;
    this.endTransaction();
    if (!extended) return this.send(reply(250, undefined, `${this.o.hostname}`));
    const ext = [
      `${this.o.hostname} greets ${name}`,
      'PIPELINING',
      `SIZE ${this.o.maxMessageSize}`,
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      // `sendmail -bs` reads what a script writes, bare LFs and CRs made line ends, which changes
      // a chunk's length in octets: it offers no CHUNKING.
      ...(this.o.role === 'local' ? [] : ['CHUNKING']),
      'DSN',
    ];
    if (!this.tls && this.o.starttls) ext.push('STARTTLS');
    if (this.authAllowed && !this.user) ext.push('AUTH PLAIN LOGIN');
    ext.push('HELP');
    this.send(reply(250, undefined, ...ext));
  }

  /** `sendmail -bs` takes a user name alone (`<root>`) as a local address, as `sendmail` does;
   *  over the network that is bad syntax (RFC 5321 §4.1.2). */
  private get bareDomain(): string | undefined {
    return this.o.role === 'local' ? this.o.postmasterDomain : undefined;
  }

  private mailCommand(args: string): void {
    if (!this.helo) return this.send(reply(503, '5.5.1', 'Send HELO/EHLO first'));
    if (this.tx) return this.send(reply(503, '5.5.1', 'Nested MAIL command'));
    if (this.authRequired && !this.user) return this.send(reply(530, '5.7.0', 'Authentication required'));
    const from = parseMailFrom(args, this.o.maxMessageSize, this.esmtp, this.bareDomain);
    if ('code' in from) {
      // A declared SIZE over the limit is a message refused for its size, as one found so later.
      if (from.code === 552) this.refused('too_big');
      return this.send(from);
    }
    // RFC 1870 §6.2, RFC 5321 §4.2.3: no room to store it, said before the message is sent.
    if (this.o.roomFor && !this.o.roomFor(from.declaredSize ?? 0)) {
      this.refused('storage_full');
      return this.send(INSUFFICIENT_STORAGE);
    }
    if (this.user) {
      // An authenticated user sends only as its own addresses (no null sender either).
      if (!from.sender) return this.send(reply(553, '5.7.1', 'The null sender is not allowed for authenticated users'));
      this.tx = { from, recipients: [], chunking: false };
      this.effect({ kind: 'sender', user: this.user, address: lookupAddress(from.sender) });
      return;
    }
    this.tx = { from, recipients: [], chunking: false };
    this.send(reply(250, '2.1.0', 'Ok'));
  }

  private senderDone(allowed: boolean, gone: boolean): void {
    if (gone) {
      this.refused('account_gone');
      return this.accountGone();
    }
    if (!allowed) {
      const sender = formatMailbox(this.tx!.from.sender!);
      this.refused('foreign_sender');
      this.endTransaction();
      return this.send(reply(553, '5.7.1', `Sender address <${sender}> is not owned by ${this.user!.address}`));
    }
    this.send(reply(250, '2.1.0', 'Ok'));
  }

  private rcptCommand(args: string): void {
    if (!this.tx) return this.send(reply(503, '5.5.1', 'Need MAIL before RCPT'));
    if (this.tx.chunking) return this.send(reply(503, '5.5.1', 'RCPT after BDAT'));
    const rcpt = parseRcptTo(args, this.tx.from.utf8, this.o.postmasterDomain, this.esmtp, this.bareDomain);
    if ('code' in rcpt) return this.send(rcpt);
    if (this.tx.recipients.length >= this.o.maxRecipients) {
      // RFC 5321 §4.5.3.1.10: a temporary reply, the client sends the rest in another transaction.
      this.send(reply(452, '4.5.3', `Too many recipients (limit ${this.o.maxRecipients})`));
      if (++this.overshoot > OVERSHOOT_LIMIT) this.countError();
      return;
    }
    this.pendingRcpt = rcpt;
    const counted = this.user !== undefined && (this.o.maxOutgoingPerDay ?? 0) > 0;
    this.effect({ kind: 'rcpt', address: lookupAddress(rcpt.recipient), ...(counted ? { sentBy: this.user!.id } : {}), ...(this.user ? {} : { client: this.clientIp }) });
  }

  private rcptDone({ resolution, sent, screening }: Extract<SmtpResult, { kind: 'rcpt' }>): void {
    const rcpt = this.pendingRcpt!;
    this.pendingRcpt = undefined;
    const address = formatMailbox(rcpt.recipient);
    // Commands wait for the lookup, so the transaction is still there; were it not, the session
    // ends with a 421 rather than leave the client without its reply.
    if (!this.tx) throw new Error('a recipient was looked up outside a transaction');
    if (screening === 'busy') {
      this.refused('dnsbl_busy', address);
      return this.send(reply(451, '4.3.0', `<${address}>: Temporary lookup failure: too many clients are being looked up in the DNS blocklists; try again later`));
    }
    if (screening) {
      // Postfix's words for it, which those who run servers know.
      this.refused('dnsbl', address, { detail: screening.zone });
      return this.send(reply(554, '5.7.1', `Service unavailable; Client host [${clientAddress(this.clientIp)}] blocked using ${screening.zone}${screening.reason ? `; ${screening.reason}` : ''}`));
    }
    if (resolution.kind === 'unknown') {
      this.refused('unknown_recipient', address);
      return this.send(unknownRecipient(resolution, address));
    }
    if (resolution.kind === 'remote' && !this.mayRelay) {
      this.refused('relay_denied', address);
      return this.send(reply(550, '5.7.1', `<${address}>: Relay access denied`));
    }
    if (sent !== undefined) {
      // This transaction's recipients at other domains count as sent: they will be.
      const limit = this.o.maxOutgoingPerDay!;
      const taken = this.tx.recipients.reduce((n, r) => n + outboundOf(r.resolution), 0);
      if (sent + taken + outboundOf(resolution) > limit) {
        // A user sending this much may be someone with its password. Each one more is as one past
        // max_recipients: a session that goes on without end is ended.
        this.refused('daily_limit', address, { warn: true });
        this.send(reply(450, '4.7.1', `<${address}>: ${this.user!.address} may send to ${limit} recipients at other domains in 24 hours (limits.max_outgoing_per_day), and this one would pass that; try again later`));
        if (++this.overshoot > OVERSHOOT_LIMIT) this.countError();
        return;
      }
    }
    this.tx.recipients.push({ address, resolution, ...rcpt.dsn });
    this.send(reply(250, '2.1.5', 'Ok'));
  }

  private dataCommand(args: string): void {
    if (args.trim() !== '') return this.send(reply(501, '5.5.4', 'DATA takes no arguments'));
    if (!this.tx) return this.send(reply(503, '5.5.1', 'Need MAIL and RCPT before DATA'));
    if (this.tx.chunking) return this.send(reply(503, '5.5.1', 'DATA after BDAT'));
    if (this.tx.recipients.length === 0) return this.send(reply(554, '5.5.1', 'No valid recipients'));
    this.tx.sink = this.newSink();
    this.data = new DataReader();
    this.phase = 'data';
    this.send(reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'));
  }

  /** RFC 3030 §2: BDAT chunk-size [LAST]; the chunk is read whatever the verdict on it. */
  private bdatCommand(args: string): void {
    const m = /^(\d{1,15})( +LAST)? *$/i.exec(args);
    if (!m) {
      // The chunk's bytes follow all the same, and without its size nothing tells where they
      // end: read as commands, they could be anything. The session ends here.
      this.outcome = 'bad BDAT';
      return this.close(reply(421, '4.5.4', `${this.o.hostname} Syntax: BDAT chunk-size [LAST]; the chunk cannot be read without its size, closing connection`));
    }
    if (this.o.role === 'local') {
      // Not offered (see the EHLO reply), and the chunk could not be read as sent: its line ends
      // are made CRLF before the session sees them, so its size would not fit what arrives.
      this.outcome = 'BDAT not offered';
      return this.close(reply(421, '4.5.1', `${this.o.hostname} BDAT is not offered by sendmail -bs; use DATA, closing connection`));
    }
    this.bdatLeft = Number(m[1]);
    this.bdatLast = m[2] !== undefined;
    this.bdatEmpty = this.bdatLeft === 0;
    this.phase = 'bdat';
    // RFC 3030 §2: BDAT is for a client that was offered CHUNKING, after EHLO. After HELO the
    // chunk is read all the same, and refused (bdatChunkDone), with the transaction.
    if (!this.esmtp) {
      this.bdatWithoutEhlo = true;
      return;
    }
    if (this.tx && this.tx.recipients.length > 0) {
      if (!this.tx.chunking) {
        this.tx.chunking = true;
        this.tx.sink = this.newSink();
      }
    }
  }

  private bdatChunkDone(): void {
    this.phase = 'command';
    if (this.bdatWithoutEhlo) {
      this.bdatWithoutEhlo = false;
      this.endTransaction();
      return this.send(reply(503, '5.5.1', 'BDAT needs EHLO, which offers CHUNKING (RFC 3030); use DATA'));
    }
    const tx = this.tx;
    if (!tx) return this.send(reply(503, '5.5.1', 'Need MAIL and RCPT before BDAT'));
    if (!tx.sink) {
      // RFC 3030 §2: a chunk refused fails the transaction. Kept, it would take recipients
      // again, and a later BDAT LAST would deliver the message without this chunk.
      this.endTransaction();
      return this.send(reply(554, '5.5.1', 'No valid recipients; the transaction is over'));
    }
    if (tx.sink.size > this.o.maxMessageSize) {
      // RFC 3030 §2: after a failed chunk the client sends no more; the transaction is over.
      this.tooBig();
      return this.endTransaction();
    }
    if (tx.sink.overBudget) {
      this.noRoomInMemory();
      return this.endTransaction();
    }
    if (this.bdatLast) return this.finishMessage();
    this.send(reply(250, '2.0.0', `${tx.sink.size} octets received`));
    // "BDAT 0" again and again moves no mail, as NOOP does not.
    if (this.bdatEmpty) this.junkCommand();
  }

  private finishMessage(): void {
    const tx = this.tx!;
    const sink = tx.sink!;
    const verdict = sink.finish();
    if (verdict !== 'ok') {
      // Refused with the envelope in hand (for the log), then the transaction ends.
      if (verdict === 'too-big') this.tooBig();
      else if (verdict === 'no-room') this.noRoomInMemory();
      else {
        const [reason, why] = verdict === 'nul'
          ? ['nul', 'a NUL octet in the message, which mail may not hold (RFC 2045 section 2.8)']
          : ['bare_line_end', 'bare CR or LF in the message; lines must end with CRLF (RFC 5321 section 2.3.8)'];
        this.refused(reason);
        this.send(reply(550, '5.6.0', `Message refused: ${why}`));
      }
      return this.endTransaction();
    }
    const body = sink.take();
    // One pass over the header, no further than its limit: millions of short lines held the
    // event loop, every session's, for seconds when read to the end first.
    const shape = headerShape(body, MAX_HEADER_LINES, /^received[ \t]*:/gim);
    const hops = shape.matching;
    if (hops >= MAX_HOPS) {
      // Two servers whose aliases point at each other would otherwise pass it on for ever.
      this.refused('loop');
      this.endTransaction();
      return this.send(reply(554, '5.4.6', `Too many hops: the message has passed ${hops} servers, a mail loop (RFC 5321 section 6.3)`));
    }
    if (shape.over || shape.fieldLines > MAX_FIELD_LINES) {
      this.refused('big_header');
      this.endTransaction();
      const what = shape.over ? `more than ${MAX_HEADER_LINES} header lines` : `a header field of ${shape.fieldLines} lines, more than ${MAX_FIELD_LINES}`;
      return this.send(reply(552, '5.3.4', `Message header too large: ${what}`));
    }
    const auth = this.user ? 'A' : '';
    const tlsMark = this.tls ? 'S' : '';
    this.effect({
      kind: 'deliver',
      delivery: {
        sender: tx.from.sender ? formatMailbox(tx.from.sender) : '',
        dsn: tx.from.dsn,
        recipients: tx.recipients,
        body,
        helo: this.helo!,
        clientIp: this.clientIp,
        // RFC 3848; RFC 6531 §3.7.3 for a transaction under SMTPUTF8.
        protocol: !this.esmtp ? 'SMTP' : `${tx.from.utf8 ? 'UTF8SMTP' : 'ESMTP'}${tlsMark}${auth}`,
        ...(this.tls ? { tls: `${this.tls.protocol} with cipher ${this.tls.cipher}` } : {}),
        ...(this.user ? { user: this.user } : {}),
      },
    });
  }

  private deliverDone(result: Extract<SmtpResult, { kind: 'deliver' }>): void {
    if (result.id === undefined) this.refused(result.reason);
    this.endTransaction();
    if (result.id !== undefined) {
      this.accepted.push(result.id);
      // The error limit is for sessions that deliver nothing: a client that sends mail on one
      // connection for a list with some recipients gone is no prober.
      this.errors = 0;
      this.junk = 0;
      this.overshoot = 0;
      return this.send(reply(250, '2.0.0', `OK queued as ${result.id}`));
    }
    switch (result.failure) {
      case 'account-gone': return this.accountGone();
      case 'storage-full': return this.send(INSUFFICIENT_STORAGE);
      case 'store-error': return this.send(reply(451, '4.3.0', 'Local error in processing, try again later'));
      case 'refused': return this.send(reply(550, '5.7.1', result.message));
      case 'deferred': return this.send(reply(451, '4.7.0', result.message));
      // RFC 3463 §3.7: the content cannot be sent on as it is.
      case 'unfit': return this.send(reply(554, '5.6.0', result.message));
      case 'too-big': return this.send(reply(552, '5.3.4', result.message));
    }
  }

  /** The account the session logged in as was removed (`user remove`, perhaps followed by a
   *  `user add` of the same address, which is another account): its login no longer holds. */
  private accountGone(): void {
    this.outcome = 'account removed';
    this.close(reply(421, '4.7.0', `${this.o.hostname} The account ${this.user!.address} no longer exists, closing connection`));
  }

  /** VRFY and EXPN (RFC 5321 §3.5): answered only to authenticated users (no enumeration). */
  private verifyCommand(verb: 'VRFY' | 'EXPN', args: string): void {
    // RFC 6531 §3.7.4.2: a client that may be answered with UTF-8 addresses says SMTPUTF8 after
    // the string (curl does whenever it is offered).
    const bare = trimEndBlanks(args);
    const utf8 = this.esmtp && asciiUpper(bare.slice(-SMTPUTF8_ARG.length)) === SMTPUTF8_ARG;
    const arg = (utf8 ? bare.slice(0, -SMTPUTF8_ARG.length) : args).trim();
    if (arg === '') return this.send(reply(501, '5.5.4', `Syntax: ${verb} address [SMTPUTF8]`));
    if (!this.user) return this.send(reply(252, '2.5.0', 'Cannot verify the address, but will accept mail for local recipients'));
    // RFC 5321 §3.5.1: "a string identifying a user"; a user name alone is taken to be at the
    // first local domain, as Postfix takes it at myorigin.
    const qualified = /^[^<@\s]+$/.test(arg) && !/^postmaster$/i.test(arg) ? `${arg}@${this.o.postmasterDomain}` : arg;
    const text = qualified.startsWith('<') ? qualified : `<${qualified}>`;
    const parsed = parseRcptTo(`TO:${text}`, true, this.o.postmasterDomain, true);
    if ('code' in parsed) return this.send(reply(501, '5.1.3', `Bad address syntax in ${verb}`));
    this.verifyVerb = verb;
    this.verifyUtf8 = utf8;
    this.effect({ kind: 'verify', address: lookupAddress(parsed.recipient) });
  }

  private verifyDone(resolution: Resolution, alias: AliasRecord | undefined): void {
    if (resolution.kind === 'unknown') return this.send(unknownRecipient(resolution));
    if (resolution.kind === 'remote') return this.send(reply(252, '2.1.5', 'Not a local address; will attempt delivery'));
    if (this.verifyVerb === 'VRFY' && resolution.users.length > 1) return this.send(reply(553, '5.1.4', 'Ambiguous: the address is a list; use EXPN'));
    // EXPN names an alias's targets; where no alias has the name (a sub-address of one, the
    // postmaster), what it reaches.
    const reached = [...resolution.users.map((u) => u.address), ...resolution.forward];
    const found = this.verifyVerb === 'VRFY' ? reached.slice(0, 1) : alias ? alias.targets : reached;
    // RFC 6531 §3.7.4.2: an address in UTF-8 goes only to a client that asked with SMTPUTF8;
    // to another, in its ASCII form when it has one, else not at all (X.6.8, "UTF-8 string
    // reply is required, but not permitted by the SMTP client").
    const addresses = this.verifyUtf8 ? found : found.map(asciiAddress);
    if (addresses.some((a) => a === undefined)) return this.send(reply(553, '5.6.8', `The answer is an address in UTF-8; ask with "${this.verifyVerb} <address> SMTPUTF8"`));
    const lines = addresses.map((a) => `<${a!}>`);
    const r = resolution.users.length === 0 && this.verifyVerb === 'VRFY' ? reply(251, '2.1.5', `User not local; will forward to ${lines[0]!}`) : reply(250, '2.1.5', ...lines);
    this.send(r, this.verifyUtf8);
  }

  /** RFC 3207 §4. */
  private starttlsCommand(args: string): void {
    if (args.trim() !== '') return this.send(reply(501, '5.5.4', 'STARTTLS takes no arguments'));
    if (this.tls) return this.send(reply(503, '5.5.1', 'TLS already active'));
    if (!this.o.starttls) return this.send(reply(502, '5.5.1', 'STARTTLS not available'));
    this.send(reply(220, '2.0.0', 'Ready to start TLS'));
    this.phase = 'tls';
    this.input = EMPTY;
    this.lines.reset();
    this.out.push({ type: 'starttls' });
  }

  /** RFC 4954 §4. */
  private authCommand(args: string): void {
    if (!this.esmtp) return this.send(reply(503, '5.5.1', 'Send EHLO first'));
    if (this.user) return this.send(reply(503, '5.5.1', 'Already authenticated'));
    if (this.o.role === 'local') return this.send(reply(503, '5.5.1', 'Authentication is not needed: mail from this command is trusted'));
    if (this.tx) return this.send(reply(503, '5.5.1', 'AUTH not allowed during a mail transaction'));
    const [mechName = '', initial, extra] = args.trim().split(/ +/);
    if (mechName === '' || extra !== undefined) return this.send(reply(501, '5.5.4', 'Syntax: AUTH mechanism [initial-response]'));
    const mech = asciiUpper(mechName);
    if (!isMechanism(mech)) return this.send(reply(504, '5.5.4', `Unrecognized authentication mechanism ${mech.slice(0, 20)}`));
    if (!this.authAllowed) return this.send(reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'));
    let initialBytes: Buffer | undefined;
    if (initial !== undefined) {
      initialBytes = decodeBase64(initial);
      if (!initialBytes) return this.send(reply(501, '5.5.2', 'Invalid base64 in initial response'));
    }
    this.sasl = new SaslExchange(mech);
    this.phase = 'auth';
    this.saslStep(this.sasl.start(initialBytes));
  }

  private authLine(line: string): void {
    if (line === '*') return this.endAuth(reply(501, '5.0.0', 'Authentication cancelled'));
    const bytes = decodeBase64(line);
    if (!bytes) return this.endAuth(reply(501, '5.5.2', 'Invalid base64 in authentication response'));
    this.saslStep(this.sasl!.respond(bytes));
  }

  private saslStep(step: SaslStep): void {
    switch (step.type) {
      case 'challenge':
        this.out.push({ type: 'write', data: `334 ${step.challenge}\r\n` });
        return;
      case 'refused':
        // RFC 4954 §6: 535 5.7.8, the authentication failed.
        return this.endAuth(reply(535, '5.7.8', step.message));
      case 'credentials':
        this.phase = 'command';
        this.sasl = undefined;
        this.effect({ kind: 'auth', client: this.clientIp, username: step.username, password: step.password });
        return;
    }
  }

  private endAuth(r: Reply): void {
    this.phase = 'command';
    this.sasl = undefined;
    this.send(r);
  }

  private authDone(result: Extract<SmtpResult, { kind: 'auth' }>): void {
    if (result.user) {
      this.user = result.user;
      return this.send(reply(235, '2.7.0', 'Authentication successful'));
    }
    if (result.disconnect) {
      this.outcome = 'too many authentication failures';
      return this.close(reply(421, '4.7.0', `${this.o.hostname} Too many failed authentication attempts, closing connection`));
    }
    this.send(reply(535, '5.7.8', 'Authentication credentials invalid'));
  }
}

/** A local address that reaches nobody (RFC 3463: X.1.1 bad destination mailbox, X.4.6 routing
 *  loop detected); RCPT names the address. */
function unknownRecipient(r: { why?: UnknownWhy }, address?: string): Reply {
  const subject = address === undefined ? '' : `<${address}>: Recipient address rejected: `;
  if (r.why === 'loop' || r.why === 'deep') return reply(550, '5.4.6', `${subject}${UNKNOWN_WHY[r.why]}`);
  return reply(550, '5.1.1', `${subject}no such user here`);
}

