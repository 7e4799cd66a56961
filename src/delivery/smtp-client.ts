/**
 * The outbound SMTP client, on nodemailer's SMTP connection: EHLO with HELO fallback, STARTTLS
 * when offered (or required, or implicit TLS), AUTH for a smarthost, PIPELINING, SIZE,
 * BODY=8BITMIME and SMTPUTF8 when the message needs them, DSN's parameters when the server offers
 * DSN. A transaction carries one message to the recipients it is given, and reports a result
 * per recipient. Timeouts follow RFC 5321 §4.5.3.2.
 */
import os from 'node:os';
import type { Readable } from 'node:stream';
import { getSystemErrorMessage } from 'node:util';
import { asciiAddress, isAscii, replaceUnprintable } from '../ascii.ts';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';

export type TlsMode =
  /** TLS from the first byte (a smarthost on port 465). */
  | 'implicit'
  /** STARTTLS must succeed or the delivery is deferred. */
  | 'starttls'
  /** STARTTLS when the server offers it; plaintext otherwise or when the upgrade fails. */
  | 'opportunistic'
  | 'none';

export interface ClientTarget {
  /** The address (or name) to connect to. */
  host: string;
  port: number;
  /** The name the certificate is checked against and SNI asks for. */
  servername?: string;
  tls: TlsMode;
  /** Check the server's certificate. */
  verify: boolean;
  /** The setting that asks for the check, named when a certificate is refused. */
  verifyKey?: string;
  /** Who requires TLS, named when it fails: "here" (the configuration) unless said. */
  requiredBy?: string;
  /** The certificates trusted, when not Node's own: a context made once (making one for each
   *  connection, from a few hundred certificates, costs milliseconds of the event loop). It
   *  must carry `minVersion: 'TLSv1.2'` itself: the option beside it is not read then. */
  secureContext?: SecureContext;
  auth?: { user: string; pass: string };
}

export interface ClientOptions {
  /** Our name in EHLO/HELO. */
  name: string;
  connectTimeout: number;
  greetingTimeout: number;
  commandTimeout: number;
  /** Ends a connection still being made (the server stops). */
  signal?: AbortSignal;
}

export interface OutboundMessage {
  /** '' for the null sender. */
  sender: string;
  recipients: string[];
  size: number;
  eightBit: boolean;
  content: () => Readable;
  /** The sender's DSN requests (RFC 3461 §4), the same for every recipient of the transaction;
   *  they go only to a next hop that offers DSN. */
  dsn?: { ret?: string; envid?: string; notify?: string[]; orcpt?: string };
}

export interface RecipientResult {
  address: string;
  ok: boolean;
  /** 5xx: do not try again. */
  permanent: boolean;
  /** The server's reply (or our description of what went wrong), one line. */
  reply: string;
  /** The reply is mailnest's own, in SMTP's form: the next hop was not asked (see unsendable). */
  ownReply?: boolean;
  /** The next hop took the recipient's DSN requests: what happens to it from here on, it reports. */
  dsnPassed?: boolean;
  /** It may be tried again at once: in another transaction (it was one recipient too many for
   *  this one), or on another connection (this one was closed after the mail it carried). */
  again?: 'transaction' | 'connection';
}

/** A failure before any transaction: connection refused or lost, bad greeting, TLS or AUTH trouble. */
export class ConnectError extends Error {
  readonly reply: string;
  readonly permanent: boolean;
  /** It failed in the TLS handshake after STARTTLS. */
  readonly inUpgrade: boolean;
  /** The server whose reply `reply` is (a refused greeting, EHLO or AUTH); none when no server
   *  answered (refused, lost, timed out). */
  readonly remoteMta: string | undefined;
  /** The server refused our login for good (a 5xx to AUTH at a smarthost): the operator's
   *  credentials, most likely; a 4xx is the server's trouble for now. */
  readonly loginRefused: boolean;
  constructor(reply: string, permanent = false, inUpgrade = false, remoteMta?: string, loginRefused = false) {
    super(reply);
    this.reply = reply;
    this.permanent = permanent;
    this.inUpgrade = inUpgrade;
    this.remoteMta = remoteMta;
    this.loginRefused = loginRefused;
  }

  /** Of the failures of the hosts of one destination, the one to say: the last, unless an
   *  earlier one says more, a server's reply or a failed TLS handshake (a certificate refused,
   *  which the operator can act on) over a connection refused or timed out. */
  static telling(kept: ConnectError | undefined, next: ConnectError): ConnectError {
    const says = (e: ConnectError) => e.remoteMta !== undefined || e.inUpgrade;
    return !kept || says(next) || !says(kept) ? next : kept;
  }
}

interface NmError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  recipient?: string;
  /** The command whose reply this is (MAIL FROM, RCPT TO, DATA, ...). */
  command?: string;
  rejectedErrors?: NmError[];
}

/**
 * The recipients the server refused at RCPT, by address, from an error that ended the
 * transaction. After a refused message (command DATA) nodemailer keeps them on the envelope only.
 */
function refusals(e: NmError, conn: SMTPConnection): Map<string, NmError> {
  // After a refused MAIL FROM a pipelining server refuses the RCPTs too: MAIL's reply is for all.
  if (/^MAIL/i.test(e.command ?? '')) return new Map();
  const list = e.rejectedErrors
    ?? (e.command === 'DATA' ? (conn as unknown as { _envelope?: { rejectedErrors?: NmError[] } })._envelope?.rejectedErrors : undefined)
    ?? [];
  return new Map(list.map((r) => [r.recipient ?? '', r]));
}

/** What of a reply is kept (last_reply, Diagnostic-Code). */
const ONE_LINE = 500;

/** A reply as one line for last_reply and DSN Diagnostic-Code, without the control characters
 *  a server may put in its text (an escape sequence for the terminal `queue list` shows it on). */
export function oneLine(s: string): string {
  // Cut before it is cleaned (with room for the white space that goes): a reply of 170,000
  // short lines took 118 ms of the event loop.
  return replaceUnprintable(s.slice(0, 4 * ONE_LINE).replace(/\r?\n/g, ' ').replace(/\s+/g, ' '), () => '?').trim().slice(0, ONE_LINE);
}

/** A failure's reason with what an operator can do about it: a refused certificate (in place of
 *  Node's advice to start it with a flag), or TLS from the first byte to a port that begins in
 *  plain text (OpenSSL's "wrong version number", which says nothing of the kind). */
function withAdvice(reason: string, target: ClientTarget): string {
  if (target.tls === 'implicit' && /wrong version number|packet length too long/i.test(reason)) {
    return `no TLS from the first byte on port ${target.port} (the server answered in plain text): set relay.smarthost_tls = "starttls" for a port that offers STARTTLS, such as 587`;
  }
  const text = reason.replace(/; if the root CA is installed locally.*$/, '');
  if (!target.verify) return text;
  const orOff = target.verifyKey ? `, or set ${target.verifyKey} = false` : '';
  // Node's words for the three ways a certificate fails the check.
  if (/does not match certificate's altnames/i.test(text)) return `${text}; name the host as its certificate does${orOff}`;
  if (/certificate has expired|certificate is not yet valid/i.test(text)) return `${text}; its operator has to renew it${orOff}`;
  if (/self[- ]signed|unable to (get|verify)|issuer/i.test(text)) return `${text}; give the CA that signed it in relay.ca_file${orOff}`;
  return text;
}

/** Where a connection went, as Postfix names it: `name[address]:port` for a host that has a name
 *  (an MX, a route's or the smarthost's), so an operator sees which of its addresses failed. */
export function whereOf(target: Pick<ClientTarget, 'host' | 'port' | 'servername'>): string {
  if (target.servername) return `${target.servername}[${target.host}]:${target.port}`;
  return `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}

/** Why an address with no ASCII form (see asciiAddress) cannot go to a hop without SMTPUTF8. */
function noSmtpUtf8(address: string): string {
  const what = isAscii(address.slice(0, address.lastIndexOf('@'))) ? 'a domain with no ASCII form (A-labels)' : 'a non-ASCII local part';
  return `553 5.6.7 ${what} and the next hop does not offer SMTPUTF8 (RFC 6531)`;
}

/** An address with "<" or ">" in its quoted local part, which RFC 5321 §4.1.2 allows (qtextSMTP)
 *  and SMTP servers take, but which the client library refuses to write into a command. */
const ANGLED = /[<>]/;

const ANGLED_RECIPIENT = '553 5.1.3 mailnest cannot send to an address with "<" or ">" in it';
const ANGLED_SENDER = '553 5.1.7 mailnest cannot send from an address with "<" or ">" in it';

/** The longest reply taken (RFC 5321 §4.5.3.1.5 bounds a reply line at 512 octets, and real
 *  replies have a few lines); past it the connection is given up. */
const MAX_REPLY = 16 * 1024;

/** Octets a second a message is sent at, at least (see transactionBound). */
const MIN_RATE = 500;

/** A transaction's bound: command_timeout for each reply (MAIL, each RCPT, DATA, the message's;
 *  RFC 5321 §4.5.3.2 gives each its own), and the message sent at 500 octets a second at least
 *  (Postfix's smtp_min_data_rate for its own deadlines). */
function transactionBound(commandTimeout: number, recipients: number, size: number): number {
  return (3 + recipients) * commandTimeout + Math.ceil(size / MIN_RATE) * 1000;
}

const TRANSACTION_TOO_LONG = 'the transaction did not end within relay.command_timeout for each of its replies and the time to send the message at 500 octets a second';

const SETUP_TOO_LONG = "the session was not set up (greeting, EHLO, STARTTLS, AUTH) within relay.connect_timeout + greeting_timeout and 4 replies' time (command_timeout, or connect_timeout + greeting_timeout when longer)";

/**
 * RFC 5321 §4.1.1.1: the extensions a server offers are the keywords that begin the lines of
 * its EHLO reply after the first. nodemailer looks for their names anywhere in the reply, the
 * server's name and greeting too: "250-mail-dsn.example.net" was taken for DSN (and a refusal
 * of NOTIFY for a verdict on the recipient), "max SIZE 1000" for a limit. What it found is
 * replaced by what the lines say, before anything is sent that depends on it.
 */
function readExtensions(conn: SMTPConnection): void {
  const c = conn as unknown as { _ehloLines?: string[]; _supportedExtensions: string[]; _maxAllowedSize: number; allowsAuth: boolean };
  if (c._ehloLines === undefined) return; // HELO: nodemailer found none either
  const offered = extensionsOf(c._ehloLines);
  c._supportedExtensions = ['SMTPUTF8', 'DSN', '8BITMIME', 'REQUIRETLS', 'PIPELINING', 'SIZE'].filter((k) => offered.has(k));
  const size = offered.get('SIZE')?.[0];
  c._maxAllowedSize = size !== undefined && /^\d+$/.test(size) ? Number(size) : 0;
  c.allowsAuth = offered.has('AUTH');
}

/** The extensions named by an EHLO reply's lines after the first (their codes taken off), with
 *  their parameters. */
function extensionsOf(lines: string[]): Map<string, string[]> {
  const offered = new Map<string, string[]>();
  for (const line of lines) {
    const [keyword = '', ...params] = line.split(/[\s=]+/);
    offered.set(keyword.toUpperCase(), params);
  }
  return offered;
}

/** Whether the EHLO reply before STARTTLS, which nodemailer keeps until the handshake begins,
 *  offered it; once the handshake has begun, the server has taken the command. */
function offeredStartTls(conn: SMTPConnection): boolean {
  const before = (conn as unknown as { _plaintextEhlo?: string | false })._plaintextEhlo;
  if (typeof before !== 'string') return true;
  const lines = before.split(/\r?\n/).map((l) => l.replace(/^\d{3}[ -]/, '').trim()).filter((l) => l !== '').slice(1);
  return extensionsOf(lines).has('STARTTLS');
}

/** nodemailer's socket idle limit ran out (see socketTimeout in SmtpClient.open). */
function isIdleTimeout(err: NmError): boolean {
  return err.code === 'ETIMEDOUT' && err.message === 'Timeout';
}

/** What went wrong: the next hop's reply, or the connection's trouble in words, as the reports
 *  a sender reads give it ("connection refused"), not as codes (ESOCKET, ECONNREFUSED). */
function describe(err: NmError): string {
  if (err.response) return oneLine(err.response);
  // nodemailer's socket timeout, which is command_timeout once the session is made.
  if (isIdleTimeout(err)) return 'no reply within relay.command_timeout';
  // OpenSSL's own line ("40ED…:error:0A00010B:SSL routines:tls_validate_record_header:wrong
  // version number:../deps/openssl/…/tlsany_meth.c:77:") gives its reason in the fifth field.
  const ssl = /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):/.exec(err.message);
  if (ssl) return `TLS failed: ${ssl[1]}`;
  // A system call's failure, as Node says it: "connect ECONNREFUSED 192.0.2.1:25".
  const name = /^(?:connect|read|write) (E[A-Z]+)\b/.exec(err.message)?.[1];
  const errno = name ? os.constants.errno[name as keyof typeof os.constants.errno] : undefined;
  return errno ? getSystemErrorMessage(-errno) : oneLine(err.message);
}

export class SmtpClient {
  private conn: SMTPConnection;
  private broken = false;
  /** A transaction is under way. */
  private inFlight = false;
  /** Transactions sent on this connection. */
  sent = 0;
  readonly target: ClientTarget;

  private readonly commandTimeout: number;

  private constructor(conn: SMTPConnection, target: ClientTarget, commandTimeout: number) {
    this.conn = conn;
    this.target = target;
    this.commandTimeout = commandTimeout;
    conn.on('error', () => { this.broken = true; });
    conn.on('end', () => { this.broken = true; });
  }

  get usable(): boolean {
    return !this.broken;
  }

  /** The next hop offers DSN (RFC 3461 §3): the sender's requests go on to it. */
  get offersDsn(): boolean {
    return this.offered.extensions.includes('DSN');
  }

  /** What the server offered in its EHLO reply, which nodemailer keeps in fields of its own with
   *  no accessor. */
  private get offered(): { extensions: string[]; maxSize: number } {
    const conn = this.conn as unknown as { _supportedExtensions: string[]; _maxAllowedSize: number };
    return { extensions: conn._supportedExtensions, maxSize: conn._maxAllowedSize };
  }

  /**
   * Connects, greets, secures and authenticates; throws ConnectError. With opportunistic TLS
   * and no certificate check, a STARTTLS handshake that fails is followed by a plaintext
   * connection, as for a server that does not offer STARTTLS (Postfix's "may" level).
   */
  static async connect(target: ClientTarget, opts: ClientOptions): Promise<SmtpClient> {
    try {
      return await SmtpClient.open(target, opts);
    } catch (err) {
      if (!(err instanceof ConnectError && err.inUpgrade && target.tls === 'opportunistic' && !target.verify)) throw err;
      return SmtpClient.open({ ...target, tls: 'none' }, opts);
    }
  }

  private static async open(target: ClientTarget, opts: ClientOptions): Promise<SmtpClient> {
    // Loaded on first delivery: a server that only receives stays small.
    const { default: SMTPConnection } = await import('nodemailer/lib/smtp-connection');
    const tls: ConnectionOptions = {
      rejectUnauthorized: target.verify,
      ...(target.secureContext ? { secureContext: target.secureContext } : {}),
      minVersion: 'TLSv1.2',
    };
    // The socket's idle limit runs from before the connection is made: while the session is set
    // up it is past the setup's own bound (connectionTimeout below), so that neither cuts
    // greeting_timeout short (and a greeting that never came is said to be one), and
    // command_timeout once the session is made.
    const silence = Math.max(opts.commandTimeout, opts.connectTimeout + opts.greetingTimeout + 1_000);
    const conn = new SMTPConnection({
      host: target.host,
      port: target.port,
      name: opts.name,
      secure: target.tls === 'implicit',
      requireTLS: target.tls === 'starttls',
      ignoreTLS: target.tls === 'none',
      opportunisticTLS: target.tls === 'opportunistic',
      ...(target.servername ? { servername: target.servername } : {}),
      tls,
      // nodemailer's connectionTimeout bounds the whole setup, greeting and STARTTLS included,
      // and cuts the greeting's wait short by it: with connect_timeout's 30 s, a server that
      // greets after a minute (RFC 5321 §4.5.3.2.1 allows five) was never reached. The TCP
      // connection alone is bounded below.
      connectionTimeout: opts.connectTimeout + opts.greetingTimeout,
      greetingTimeout: opts.greetingTimeout,
      socketTimeout: silence,
      socketCloseTimeout: 0,
      // Replies are a few lines; nodemailer keeps each recipient's refusal until the transaction
      // ends, and at its own limit of 1 MiB a hop refusing 100 recipients held 120 MB.
      maxResponseSize: MAX_REPLY,
      allowInternalNetworkInterfaces: true,
      logger: false,
    });
    return new Promise((resolve, reject) => {
      let settled = false;
      /** The first of failure and success ends the wait: the timer and the stop go with it. (A
       *  failed connection keeps `fail` on 'error', for what its close may still emit.) */
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(connecting);
        clearTimeout(setUp);
        opts.signal?.removeEventListener('abort', stopped);
        return true;
      };
      const fail = (err: NmError) => {
        if (!settle()) return;
        // nodemailer marks the connection while the STARTTLS handshake runs.
        const handshaking = (conn as unknown as { upgrading?: boolean }).upgrading === true;
        const inUpgrade = err.code === 'ETLS' || handshaking;
        // After a reply (a refused login, EHLO or STARTTLS) the dialogue is intact, and ends as
        // it should; a broken one is closed.
        if (err.response && !handshaking) void quitThenClose(conn);
        else conn.close();
        // TLS that is required and not to be had: said as that, the server's refusal with it.
        // (nodemailer asks for it whether or not the EHLO reply offered it.)
        if (target.tls === 'starttls' && (err.command === 'STARTTLS' || err.code === 'ETLS')) {
          const required = `which is required ${target.requiredBy ?? 'here'}`;
          reject(new ConnectError(`${whereOf(target)}: ${offeredStartTls(conn) ? `STARTTLS, ${required}, failed: ${describe(err)}` : `does not offer STARTTLS, ${required}`}`, false, inUpgrade));
          return;
        }
        // A 5xx greeting or EHLO is not a verdict on the recipients: try elsewhere or later. A
        // server's reply is given as such, with the server; anything else names where it failed.
        // The socket's idle limit while the session is set up is the longer of command_timeout
        // and the setup's own bound (see socketTimeout), and is said so.
        const what = isIdleTimeout(err) ? 'no reply to EHLO, STARTTLS or AUTH within relay.command_timeout, or relay.connect_timeout + relay.greeting_timeout when longer' : withAdvice(describe(err), target);
        reject(err.response
          ? new ConnectError(describe(err), false, inUpgrade, target.servername ?? target.host, err.code === 'EAUTH' && (err.responseCode ?? 0) >= 500)
          : new ConnectError(`${whereOf(target)}: ${what}`, false, inUpgrade));
      };
      const stopped = () => fail(Object.assign(new Error('the server is stopping'), { code: 'ESTOPPED' }));
      // The socket's idle limit sees silence only: a reply that trickles in a byte at a time
      // would hold the setup for ever. The whole of it has the time of its steps: the greeting,
      // then EHLO, STARTTLS, EHLO again and AUTH, each the silence its reply may keep.
      const setUp = setTimeout(() => fail(Object.assign(new Error(SETUP_TOO_LONG), { code: 'ESETUP' })), opts.connectTimeout + opts.greetingTimeout + 4 * silence);
      setUp.unref();
      // The connection itself within connectTimeout; nodemailer keeps its socket to itself.
      const connecting = setTimeout(() => {
        const socket = (conn as unknown as { _socket?: { connecting: boolean } })._socket;
        if (!socket || socket.connecting) fail(Object.assign(new Error('Connection timeout'), { code: 'ETIMEDOUT' }));
      }, opts.connectTimeout);
      const made = () => {
        if (!settle()) return;
        (conn as unknown as { _socket?: { setTimeout(ms: number): unknown } })._socket?.setTimeout(opts.commandTimeout);
        conn.removeListener('error', fail);
        resolve(new SmtpClient(conn, target, opts.commandTimeout));
      };
      if (opts.signal?.aborted) return stopped();
      opts.signal?.addEventListener('abort', stopped, { once: true });
      conn.once('error', fail);
      conn.connect((err) => {
        if (err) return fail(err);
        readExtensions(conn);
        // Credentials go only to a server that offers AUTH (as Postfix's client): one that does
        // not takes the mail without, or says it wants a login in its reply to MAIL.
        if (!target.auth || !conn.allowsAuth) return made();
        conn.login({ user: target.auth.user, pass: target.auth.pass }, (lerr) => {
          if (lerr) return fail(lerr);
          made();
        });
      });
    });
  }

  /**
   * One transaction. Resolves with a result per recipient; a broken connection makes every
   * recipient temporary-failed (and the client unusable). A result says when the recipient may
   * be tried again at once (`again`).
   */
  async send(message: OutboundMessage): Promise<RecipientResult[]> {
    const carried = this.sent++ > 0;
    return (await this.transaction(message)).map((r) => {
      if (r.ok) return r;
      // RFC 5321 §4.5.3.1.10: over the server's limit of recipients per transaction, 452 (or 552
      // from older servers, then no permanent failure); both codes mean other things too, which
      // X.5.3 or the words tell apart.
      if (/^[45]52\b/.test(r.reply) && (/\b[45]\.5\.3\b/.test(r.reply) || /too many recipients/i.test(r.reply))) {
        return { ...r, permanent: false, again: 'transaction' as const };
      }
      // RFC 5321 §3.8: a 421 closes the connection, and speaks of it, not of the message. After
      // mail this connection carried, it is the server's limit per connection.
      if (carried && r.reply.startsWith('421')) return { ...r, again: 'connection' as const };
      return r;
    });
  }

  private transaction(message: OutboundMessage): Promise<RecipientResult[]> {
    const all = (ok: boolean, permanent: boolean, reply: string, ownReply = false): RecipientResult[] =>
      message.recipients.map((address) => ({ address, ok, permanent, reply, ...(ownReply ? { ownReply } : {}) }));
    if (this.broken) return Promise.resolve(all(false, false, 'connection lost', true));
    if (!this.offered.extensions.includes('SMTPUTF8') && !message.recipients.every(isAscii)) {
      // A server without SMTPUTF8 takes an internationalised domain in its A-labels; a recipient
      // with no ASCII form is one it cannot take, and the others go (RFC 6531 §3.2). Results
      // come back under the addresses as queued.
      const queued = new Map<string, string[]>();
      const refused: RecipientResult[] = [];
      for (const address of message.recipients) {
        const ascii = asciiAddress(address);
        if (ascii === undefined) refused.push({ address, ok: false, permanent: true, reply: noSmtpUtf8(address), ownReply: true });
        else queued.set(ascii, [...queued.get(ascii) ?? [], address]);
      }
      if (queued.size === 0) return Promise.resolve(refused);
      return this.transaction({ ...message, recipients: [...queued.keys()] })
        .then((results) => [...results.flatMap((r) => (queued.get(r.address) ?? [r.address]).map((address) => ({ ...r, address }))), ...refused]);
    }
    const refusal = this.unsendable(message);
    if (refusal) return Promise.resolve(all(false, true, refusal, true));
    if (message.recipients.some((a) => ANGLED.test(a))) {
      // Such a recipient fails alone, for good; the others are sent to.
      const refused = message.recipients.filter((a) => ANGLED.test(a)).map((address) => ({ address, ok: false, permanent: true, reply: ANGLED_RECIPIENT, ownReply: true }));
      const rest = message.recipients.filter((a) => !ANGLED.test(a));
      if (rest.length === 0) return Promise.resolve(refused);
      return this.transaction({ ...message, recipients: rest }).then((results) => [...results, ...refused]);
    }
    this.inFlight = true;
    return new Promise<RecipientResult[]>((resolve) => {
      // A failure that is no server's reply names where it happened, as one on connecting does.
      const where = whereOf(this.target);
      const onError = (err: NmError) => {
        clearTimeout(deadline);
        this.broken = true;
        // A reply that came with the close (421) is the server's own word, given as such; the
        // rest is mailnest's report of what happened to the connection.
        resolve(err.response ? all(false, false, describe(err)) : all(false, false, `${where}: ${describe(err)}`, true));
      };
      // Closed before the reply (close() at shutdown): nodemailer then never calls back. After a
      // 421 it closes first and then calls back with the reply, which is the one to keep.
      const onEnd = () => {
        clearTimeout(deadline);
        this.broken = true;
        setImmediate(() => resolve(all(false, false, `${where}: ${overdue ? TRANSACTION_TOO_LONG : 'connection closed before the reply'}`, true)));
      };
      // RFC 5321 §4.5.3.2 gives each reply its time, and the socket's idle limit sees silence
      // only: a reply that trickles in a byte at a time would hold the transaction, and a place
      // among the queue's connections, for ever. The whole of it has its bound.
      let overdue = false;
      const deadline = setTimeout(() => {
        overdue = true;
        this.conn.close();
      }, transactionBound(this.commandTimeout, message.recipients.length, message.size));
      deadline.unref();
      this.conn.once('error', onError);
      this.conn.once('end', onEnd);
      // A sender with an internationalised domain only needs no SMTPUTF8 in its A-labels.
      const sender = this.offered.extensions.includes('SMTPUTF8') ? message.sender : asciiAddress(message.sender) ?? message.sender;
      const envelope = {
        from: sender === '' ? false as const : sender,
        to: message.recipients,
        size: message.size,
        use8BitMime: message.eightBit,
        ...(message.dsn ? { dsn: message.dsn } : {}),
      };
      this.conn.send(envelope, message.content(), (err, info) => {
        clearTimeout(deadline);
        this.conn.removeListener('error', onError);
        this.conn.removeListener('end', onEnd);
        if (err) {
          const e = err as NmError;
          const code = e.responseCode ?? 0;
          // A recipient refused at RCPT keeps its own reply: the reply to MAIL or to the message
          // is for the others (RFC 5321 §3.3).
          const refused = refusals(e, this.conn);
          // A reply that is not a 4xx or 5xx: the connection failed midway.
          const lost = !(code >= 400);
          if (lost) this.broken = true;
          const results = message.recipients.map((address) => {
            const r = refused.get(address);
            if (r) return { address, ok: false, permanent: (r.responseCode ?? 0) >= 500, reply: describe(r) };
            return lost
              ? { address, ok: false, permanent: false, reply: `${where}: ${describe(e)}`, ownReply: true }
              : { address, ok: false, permanent: code >= 500, reply: describe(e) };
          });
          // The transaction is over; the next one starts clean (RSET) or on a new connection.
          this.reset().then(() => resolve(results));
          return;
        }
        const rejected = new Map((info.rejectedErrors ?? []).map((r) => [(r as NmError).recipient ?? '', r as NmError]));
        const reply = oneLine(info.response);
        resolve(message.recipients.map((address) => {
          const r = rejected.get(address);
          if (r) return { address, ok: false, permanent: (r.responseCode ?? 0) >= 500, reply: describe(r) };
          return { address, ok: true, permanent: false, reply };
        }));
      });
    }).finally(() => {
      this.inFlight = false;
    });
  }

  /**
   * RSET after a failed transaction, resolving once its reply is in (or the connection is gone,
   * and with it the client): a transaction begun before would have its replies read as RSET's,
   * and nodemailer, which forgets the envelope at RSET's reply, would fail on them with an
   * exception no caller can catch.
   */
  private reset(): Promise<void> {
    if (this.broken) return Promise.resolve();
    return new Promise((resolve) => {
      // Its reply in command_timeout, however it trickles in.
      const deadline = setTimeout(() => this.conn.close(), this.commandTimeout);
      deadline.unref();
      const done = () => {
        clearTimeout(deadline);
        this.conn.removeListener('end', lost);
        this.conn.removeListener('error', lost);
        resolve();
      };
      const lost = () => {
        this.broken = true;
        done();
      };
      this.conn.once('end', lost);
      this.conn.once('error', lost);
      this.conn.reset((err) => {
        if (err) this.broken = true;
        done();
      });
    });
  }

  /**
   * Why this server cannot take the message as it is, if it cannot: a sender with a non-ASCII
   * local part needs SMTPUTF8 (RFC 6531 §3.2), 8-bit data 8BITMIME (RFC 6152 §3), and the
   * message must be within the SIZE it declared. mailnest converts none of these, so the
   * message is returned to its sender, as RFC 6531 §3.2 has it for the addresses.
   */
  private unsendable(message: OutboundMessage): string | undefined {
    const { extensions: offered, maxSize } = this.offered;
    // First: such a sender is the reason, also when the message is 8-bit too.
    if (asciiAddress(message.sender) === undefined && !offered.includes('SMTPUTF8')) return noSmtpUtf8(message.sender);
    if (ANGLED.test(message.sender)) return ANGLED_SENDER;
    if (message.eightBit && !offered.includes('8BITMIME')) {
      return '554 5.6.3 the message has 8-bit data and the next hop does not offer 8BITMIME (RFC 6152)';
    }
    // RFC 1870 §6.1: a message over the size the server declared is not sent; it would be
    // refused for good (§4).
    if (maxSize > 0 && message.size > maxSize) {
      return `552 5.3.4 the message is ${message.size} octets and the next hop takes at most ${maxSize} (RFC 1870)`;
    }
    return undefined;
  }

  /** Ends the session: resolves once the connection is closed, after the server's answer to
   *  QUIT, or 2 s on, whichever comes first. The next connection to the server waits for it: a
   *  server that counts connections per client may count this one until then, and refuse one
   *  more (Postfix's client, too, waits for the QUIT reply). */
  close(): Promise<void> {
    // A transaction under way is cut off: a QUIT now would be written into the message it is
    // sending, which the server would then take.
    if (this.broken || this.inFlight) {
      this.broken = true;
      this.conn.close();
      return Promise.resolve();
    }
    this.broken = true;
    return quitThenClose(this.conn);
  }
}

/** RFC 5321 §4.1.1.10: a session ends with QUIT, one that failed on a server's reply too (a
 *  refused login, STARTTLS or EHLO); the connection is closed at the answer, or 2 s on. (After a
 *  refused greeting, EHLO or STARTTLS nodemailer closes the connection itself just after the
 *  QUIT is written: only a refused login waits for the answer.) */
function quitThenClose(conn: SMTPConnection): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      conn.close();
      resolve();
    }, 2000);
    timer.unref();
    conn.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
    // A server that closed first makes the QUIT's write fail: the end above follows.
    conn.on('error', () => {});
    conn.quit();
  });
}
