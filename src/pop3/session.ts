/**
 * The POP3 session (RFC 1939), sans-I/O: bytes in, replies and effects out. States per
 * RFC 1939 §3: AUTHORIZATION (USER/PASS, AUTH per RFC 5034, STLS per RFC 2595), TRANSACTION
 * (the maildrop is locked and fixed), UPDATE (entered by QUIT only: deletions are committed).
 * Extensions per RFC 2449: CAPA, response codes, PIPELINING (commands are answered in order,
 * input that arrives while an effect is under way waits in `pending`).
 */
import { asciiUpper } from '../ascii.ts';
import { EMPTY } from '../net/empty.ts';
import { LineReader, type LineEvent } from '../net/line-reader.ts';
import { describeTls, OUTPUT_PER_TURN, type Output, type Session, type SessionSummary, type TlsInfo } from '../net/session.ts';
import { MECHANISMS, SaslExchange, decodeBase64, isMechanism, type SaslStep } from '../sasl/sasl.ts';
import { arity, lineCount, messageNumber, parseCommand, type CommandLine } from './command.ts';
import type { LoginResult, Pop3Effect, Pop3Owner, Pop3Result, QuitResult, RetrieveResult } from './effects.ts';
import { frameMessage, frameWhole } from './framing.ts';
import { Maildrop, uniqueId } from './maildrop.ts';
import { capabilities, err, multiline, ok } from './replies.ts';

type Out = Output<Pop3Effect>;
type State = 'authorization' | 'transaction' | 'update' | 'closed';
type Waiting =
  | { kind: 'login' }
  | { kind: 'retrieve'; status: string; bodyLines?: number }
  | { kind: 'quit'; left: number; deleting: number }
  | { kind: 'tls' };

/** Input held while an effect is under way; a client pipelining more than this is cut off. */
const MAX_PENDING = 1024 * 1024;
/** Errors of the client's own making (an unknown command, one out of its state, bad arguments)
 *  a session may have; the next closes it, as Dovecot closes one after too many bad commands
 *  and SMTP after 20 errors: such a client holds a connection, and perhaps the maildrop's lock,
 *  for nothing. */
const MAX_ERRORS = 20;

/** The states each command is valid in (RFC 1939 §4-§7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4). */
const ALLOWED: Record<string, readonly State[]> = {
  USER: ['authorization'], PASS: ['authorization'], AUTH: ['authorization'], APOP: ['authorization'], STLS: ['authorization'],
  CAPA: ['authorization', 'transaction'], QUIT: ['authorization', 'transaction'],
  STAT: ['transaction'], LIST: ['transaction'], RETR: ['transaction'], DELE: ['transaction'], NOOP: ['transaction'],
  RSET: ['transaction'], TOP: ['transaction'], UIDL: ['transaction'],
};

export interface Pop3SessionOptions {
  owner: Pop3Owner;
  hostname: string;
  /** Implicit TLS (the pop3s listener): the session starts secure, on this. */
  tls?: TlsInfo;
  /** STLS can be offered (a TLS context exists and the session is not yet secure). */
  stls: boolean;
  /** `[auth] allow_insecure`: credentials are accepted without TLS. */
  allowInsecure: boolean;
  maxLineLength: number;
}

export class Pop3Session implements Session<Pop3Effect, Pop3Result> {
  private readonly o: Pop3SessionOptions;
  private state: State = 'authorization';
  private waiting: Waiting | undefined;
  /** The connection's TLS, from the start (pop3s) or since STLS. */
  private tls: TlsInfo | undefined;
  private readonly reader: LineReader;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Input left for a later turn once the replies made a turn's worth (see `more`). */
  private rest: Buffer = EMPTY;
  /** The name from USER, for the PASS that must come next (RFC 1939 §7). */
  private userName: string | undefined;
  private sasl: SaslExchange | undefined;
  private maildrop: Maildrop | undefined;
  private userId = 0;
  private address: string | undefined;
  private stopping = false;
  /** A RETR/TOP response is on the wire: an -ERR now would land inside it. */
  private streaming = false;
  private outcome = 'dropped';
  /** Client errors so far (see MAX_ERRORS). */
  private errors = 0;
  /** Messages sent whole (RETR), and tops of messages (TOP): counted apart, as Dovecot's retr=
   *  and top=, so that a client that reads headers only shows no downloads. */
  private retrieved = 0;
  private topped = 0;
  private deleted = 0;

  constructor(o: Pop3SessionOptions) {
    this.o = o;
    this.tls = o.tls;
    this.reader = new LineReader(o.maxLineLength);
  }

  /** For tests and logs. */
  get currentState(): State {
    return this.state;
  }

  start(): Out[] {
    return [write(ok(`${this.o.hostname} mailnest POP3 server ready`))];
  }

  receive(data: Buffer): Out[] {
    if (this.state === 'closed') return [];
    if (this.waiting) {
      // RFC 2595 §4: anything sent after STLS before the handshake is discarded.
      if (this.waiting.kind === 'tls') return [];
      return this.hold(data);
    }
    const input = this.rest.length === 0 ? data : Buffer.concat([this.rest, data]);
    this.rest = EMPTY;
    return coalesce(this.process(input));
  }

  resolve(result: Pop3Result): Out[] {
    const w = this.waiting;
    if (!w || this.state === 'closed') return [];
    this.waiting = undefined;
    let out: Out[];
    switch (w.kind) {
      case 'login': out = this.loggedIn(result as LoginResult); break;
      case 'retrieve': out = this.retrieve(result as RetrieveResult, w); break;
      case 'quit': out = this.quitted(result as QuitResult, w); break;
      case 'tls': return []; // ended by tlsStarted, never by a result
    }
    return coalesce([...out, ...this.resume()]);
  }

  tlsStarted(info: TlsInfo): Out[] {
    // RFC 2595 §4: the session starts over in AUTHORIZATION; no new greeting is sent.
    this.tls = info;
    this.waiting = undefined;
    this.userName = undefined;
    this.reader.reset();
    this.pending = [];
    this.pendingBytes = 0;
    this.rest = EMPTY;
    return [];
  }

  /** RFC 1939 §3: on autologout the server closes without a response and without UPDATE. */
  timeout(): Out[] {
    if (this.state === 'closed' || this.waiting?.kind === 'quit') return [];
    this.state = 'closed';
    this.outcome = 'autologout';
    return [{ type: 'close' }];
  }

  /** Server stopping: a QUIT under way finishes; otherwise -ERR and close, deleting nothing. */
  shutdown(): Out[] {
    if (this.state === 'closed') return [];
    this.stopping = true;
    if (this.waiting?.kind === 'quit') return [];
    this.state = 'closed';
    this.outcome = 'shutdown';
    return [write(err('server shutting down, try again later', 'SYS/TEMP')), { type: 'close' }];
  }

  failure(): Out[] {
    const midResponse = this.streaming;
    this.state = 'closed';
    this.outcome = 'error';
    return midResponse ? [] : [write(err('internal error, closing connection', 'SYS/TEMP'))];
  }

  summary(): SessionSummary {
    return {
      ...(this.address ? { user: this.address } : {}),
      outcome: this.outcome,
      ...(this.tls ? { tls: describeTls(this.tls) } : {}),
      retrieved: this.retrieved,
      top: this.topped,
      deleted: this.deleted,
    };
  }

  // ------------------------------------------------------------------ input

  private hold(data: Buffer): Out[] {
    this.pendingBytes += data.length;
    if (this.pendingBytes > MAX_PENDING) {
      this.state = 'closed';
      this.outcome = 'pipeline overflow';
      this.pending = [];
      return [write(err('too many commands sent ahead, closing connection')), { type: 'close' }];
    }
    this.pending.push(data);
    return [];
  }

  /** Continues with the input that waited for the effect just resolved. */
  private resume(): Out[] {
    if (this.state === 'closed' || this.waiting) return [];
    if (this.stopping) {
      this.state = 'closed';
      return [write(err('server shutting down, try again later', 'SYS/TEMP')), { type: 'close' }];
    }
    if (this.pending.length === 0) return [];
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    return this.process(data);
  }

  private process(data: Buffer): Out[] {
    const out: Out[] = [];
    let input = data;
    let written = 0;
    while (this.state !== 'closed' && !this.waiting) {
      // A turn's worth of replies: the rest of the input waits for a later turn.
      if (written >= OUTPUT_PER_TURN && input.length > 0) {
        this.rest = input;
        out.push({ type: 'more' });
        return out;
      }
      const { event, rest } = this.reader.next(input);
      input = rest;
      if (!event) break;
      for (const o of this.line(event)) {
        if (o.type === 'write') written += typeof o.data === 'string' || Buffer.isBuffer(o.data) ? o.data.length : 0;
        out.push(o);
      }
    }
    if (this.waiting && this.waiting.kind !== 'tls' && this.state !== 'closed' && input.length > 0) out.push(...this.hold(input));
    return out;
  }

  private line(event: LineEvent): Out[] {
    const out = this.command(event);
    // A reply with a response code (RFC 2449 §8: AUTH, IN-USE, SYS/TEMP) is about the
    // credentials or the server, which the login throttle and the lock see to; the rest count.
    const clientError = out.some((o) => o.type === 'write' && typeof o.data === 'string' && o.data.startsWith('-ERR ') && !o.data.startsWith('-ERR ['));
    if (!clientError || ++this.errors < MAX_ERRORS || this.state === 'closed') return out;
    return [...out, ...this.closeWith(err('too many bad commands, closing the connection'), 'too many errors')];
  }

  private command(event: LineEvent): Out[] {
    if (event.type === 'overlong') {
      this.sasl = undefined;
      this.userName = undefined;
      return [write(err('command line too long'))];
    }
    if (this.sasl) return this.saslResponse(event.line);
    const c = parseCommand(event.line);
    // PASS is valid only right after a successful USER (RFC 1939 §7); a CAPA between the two,
    // which changes nothing, is let through, as Dovecot does.
    const userName = this.userName;
    if (c.verb !== 'CAPA') this.userName = undefined;
    const allowed = ALLOWED[c.verb];
    if (!allowed) return [write(err('unknown command'))];
    if (!allowed.includes(this.state)) return [write(err(`${c.verb} is not valid in the ${this.state.toUpperCase()} state`))];
    switch (c.verb) {
      case 'USER': return this.user(c);
      case 'PASS': return this.pass(c, userName);
      case 'AUTH': return this.auth(c);
      case 'APOP': return [write(err('APOP is not supported, use USER/PASS or AUTH'))];
      case 'STLS': return this.stls(c);
      case 'CAPA': return this.capa(c);
      case 'QUIT': return this.quit(c);
      case 'STAT': return this.stat(c);
      case 'LIST': return this.list(c, false);
      case 'UIDL': return this.list(c, true);
      case 'RETR': return this.retr(c);
      case 'TOP': return this.top(c);
      case 'DELE': return this.dele(c);
      case 'NOOP': return noArgs(c) ?? [write(ok())];
      case 'RSET': return this.rset(c);
      default: return [write(err('unknown command'))];
    }
  }

  // ------------------------------------------------------------------ AUTHORIZATION

  private get credentialsAllowed(): boolean {
    return this.tls !== undefined || this.o.allowInsecure;
  }

  private refuseCleartext(): Out[] {
    return [write(err('credentials are refused on an unencrypted connection, use STLS first', 'AUTH'))];
  }

  /** RFC 1939 §7 USER name. */
  private user(c: CommandLine): Out[] {
    if (!this.credentialsAllowed) return this.refuseCleartext();
    const bad = arity(c, 1);
    if (bad) return [write(err(bad))];
    this.userName = c.args[0]!;
    return [write(ok('send PASS'))];
  }

  /** RFC 1939 §7 PASS string: the whole rest of the line, spaces included. */
  private pass(c: CommandLine, userName: string | undefined): Out[] {
    if (!this.credentialsAllowed) return this.refuseCleartext();
    // Out of order, not a wrong password: no [AUTH] code (RFC 3206 §4), which a client takes
    // for the credentials' fault.
    if (userName === undefined) return [write(err('send USER first'))];
    if (c.rest === '') return [write(err('PASS needs an argument'))];
    return this.login(userName, c.rest);
  }

  /** RFC 5034 §4 AUTH mechanism [initial-response]; "AUTH" alone lists the mechanisms. */
  private auth(c: CommandLine): Out[] {
    // A bare AUTH asks which mechanisms there are (the form before RFC 5034's CAPA, which
    // Outlook and Thunderbird still send): none where credentials may not be given yet, as
    // Dovecot answers it, rather than a refusal of credentials that were not sent.
    if (c.args.length === 0) return [write(multiline('SASL mechanisms follow', this.credentialsAllowed ? [...MECHANISMS] : []))];
    if (!this.credentialsAllowed) return this.refuseCleartext();
    const bad = arity(c, 1, 2);
    if (bad) return [write(err(bad))];
    const name = asciiUpper(c.args[0]!);
    if (!isMechanism(name)) return [write(err(`unsupported authentication mechanism, use one of ${MECHANISMS.join(' ')}`))];
    let initial: Buffer | undefined;
    if (c.args.length === 2) {
      initial = decodeBase64(c.args[1]!);
      if (!initial) return [write(err('initial response is not valid base64'))];
    }
    const exchange = new SaslExchange(name);
    return this.saslStep(exchange, exchange.start(initial));
  }

  private saslStep(exchange: SaslExchange, step: SaslStep): Out[] {
    switch (step.type) {
      case 'challenge':
        this.sasl = exchange;
        // RFC 5034 §4: a continuation is "+" SP base64 challenge.
        return [write(`+ ${step.challenge}\r\n`)];
      case 'credentials':
        this.sasl = undefined;
        return this.login(step.username, step.password);
      case 'refused':
        this.sasl = undefined;
        return [write(err(step.message, 'AUTH'))];
    }
  }

  private saslResponse(line: Buffer): Out[] {
    const exchange = this.sasl!;
    const text = line.toString('latin1').trim();
    // RFC 5034 §4: "*" cancels the exchange and the server answers -ERR.
    if (text === '*') {
      this.sasl = undefined;
      return [write(err('authentication cancelled'))];
    }
    const response = decodeBase64(text);
    if (!response) {
      this.sasl = undefined;
      return [write(err('response is not valid base64'))];
    }
    return this.saslStep(exchange, exchange.respond(response));
  }

  private login(username: string, password: string): Out[] {
    this.waiting = { kind: 'login' };
    return [{ type: 'effect', effect: { type: 'login', owner: this.o.owner, username, password } }];
  }

  private loggedIn(r: LoginResult): Out[] {
    switch (r.type) {
      case 'ok':
        this.state = 'transaction';
        this.userId = r.userId;
        this.address = r.address;
        this.maildrop = new Maildrop(r.entries);
        this.outcome = 'no quit';
        return [write(ok(`maildrop has ${messages(this.maildrop.count)} (${this.maildrop.octets} octets)`))];
      case 'auth-failed':
        if (r.disconnect) return this.closeWith(err('invalid user name or password, too many failures', 'AUTH'), 'auth failures');
        return [write(err('invalid user name or password', 'AUTH'))];
      case 'blocked':
        return this.closeWith(err('too many failed logins from your address, try again later', 'SYS/TEMP'), 'auth blocked');
      case 'in-use':
        return [write(err('maildrop is locked by another session', 'IN-USE'))];
      case 'temp':
        return [write(err('cannot open the maildrop now, try again later', 'SYS/TEMP'))];
    }
  }

  /** RFC 2595 §4 STLS. */
  private stls(c: CommandLine): Out[] {
    const bad = noArgs(c);
    if (bad) return bad;
    if (this.tls) return [write(err('already using TLS'))];
    if (!this.o.stls) return [write(err('STLS is not available'))];
    this.waiting = { kind: 'tls' };
    return [write(ok('begin TLS negotiation')), { type: 'starttls' }];
  }

  /** RFC 2449 §5 CAPA. */
  private capa(c: CommandLine): Out[] {
    const bad = noArgs(c);
    if (bad) return bad;
    const caps = capabilities({
      credentialsAllowed: this.credentialsAllowed,
      offerStls: this.state === 'authorization' && !this.tls && this.o.stls,
    });
    return [write(multiline('capability list follows', caps))];
  }

  /** RFC 1939 §6 QUIT: in TRANSACTION it enters UPDATE and commits the deletions. */
  private quit(c: CommandLine): Out[] {
    const bad = noArgs(c);
    if (bad) return bad;
    if (this.state === 'authorization') return this.closeWith(ok('mailnest POP3 server signing off'), 'quit');
    const drop = this.maildrop!;
    const uids = drop.deletedUids();
    this.state = 'update';
    this.waiting = { kind: 'quit', left: drop.count, deleting: uids.length };
    return [{ type: 'effect', effect: { type: 'quit', owner: this.o.owner, userId: this.userId, uids } }];
  }

  private quitted(r: QuitResult, w: { left: number; deleting: number }): Out[] {
    if (r.type === 'commit-failed') return this.closeWith(err('some deleted messages not removed', 'SYS/TEMP'), 'commit failed');
    this.deleted = w.deleting;
    // What this session saw (RFC 1939 §6's "(maildrop empty)"): mail that came meanwhile is not known.
    const left = w.left > 0 ? `${messages(w.left)} left` : w.deleting > 0 ? `${messages(w.deleting)} deleted` : 'maildrop empty';
    return this.closeWith(ok(`mailnest POP3 server signing off (${left})`), 'quit');
  }

  // ------------------------------------------------------------------ TRANSACTION

  private stat(c: CommandLine): Out[] {
    const bad = noArgs(c);
    if (bad) return bad;
    const d = this.maildrop!;
    return [write(ok(`${d.count} ${d.octets}`))];
  }

  /** RFC 1939 §5 LIST [msg] and §7 UIDL [msg]: deleted messages are not listed. */
  private list(c: CommandLine, uidl: boolean): Out[] {
    const bad = arity(c, 0, 1);
    if (bad) return [write(err(bad))];
    const d = this.maildrop!;
    const value = (n: number) => (uidl ? uniqueId(d.entry(n)) : String(d.entry(n).size));
    if (c.args.length === 1) {
      const found = this.find(c.args[0]!);
      if (typeof found !== 'number') return found;
      return [write(ok(`${found} ${value(found)}`))];
    }
    const lines: string[] = [];
    for (let n = 1; n <= d.size; n++) if (!d.isDeleted(n)) lines.push(`${n} ${value(n)}`);
    return [write(multiline(uidl ? 'unique-id listing follows' : `${messages(d.count)} (${d.octets} octets)`, lines))];
  }

  /** RFC 1939 §5 RETR msg: "+OK <octets> octets", the byte-stuffed message, ".". */
  private retr(c: CommandLine): Out[] {
    const bad = arity(c, 1);
    if (bad) return [write(err(bad))];
    const found = this.find(c.args[0]!);
    if (typeof found !== 'number') return found;
    const entry = this.maildrop!.entry(found);
    this.waiting = { kind: 'retrieve', status: ok(`${entry.size} octets`) };
    return [{ type: 'effect', effect: { type: 'retrieve', userId: this.userId, uid: entry.uid } }];
  }

  /** RFC 1939 §7 TOP msg n: the header, the blank line, and n lines of the body. */
  private top(c: CommandLine): Out[] {
    const bad = arity(c, 2);
    if (bad) return [write(err(bad))];
    const found = this.find(c.args[0]!);
    if (typeof found !== 'number') return found;
    const lines = lineCount(c.args[1]!);
    if (!lines.ok) return [write(err(lines.error))];
    const entry = this.maildrop!.entry(found);
    this.waiting = { kind: 'retrieve', status: ok('top of message follows'), bodyLines: lines.value };
    return [{ type: 'effect', effect: { type: 'retrieve', userId: this.userId, uid: entry.uid } }];
  }

  private retrieve(r: RetrieveResult, w: { status: string; bodyLines?: number }): Out[] {
    if (r.type === 'missing') return [write(err('message is no longer in the store'))];
    if (r.type === 'failed') return [write(err('cannot read the message now, try again later', 'SYS/TEMP'))];
    if (w.bodyLines === undefined) this.retrieved++;
    else this.topped++;
    const framing = { status: w.status, ...(w.bodyLines !== undefined ? { bodyLines: w.bodyLines } : {}) };
    if (r.type === 'whole') return [write(frameWhole(r.parts, framing))];
    const source = frameMessage(r.source, {
      ...framing,
      ...(r.recycle ? { recycle: r.recycle } : {}),
      onStart: () => { this.streaming = true; },
      onEnd: () => { this.streaming = false; },
    });
    return [{ type: 'stream', source }];
  }

  /** RFC 1939 §5 DELE msg: marked now, removed in the UPDATE state. */
  private dele(c: CommandLine): Out[] {
    const bad = arity(c, 1);
    if (bad) return [write(err(bad))];
    const found = this.find(c.args[0]!);
    if (typeof found !== 'number') return found;
    this.maildrop!.markDeleted(found);
    return [write(ok(`message ${found} deleted`))];
  }

  /** RFC 1939 §5 RSET. */
  private rset(c: CommandLine): Out[] {
    const bad = noArgs(c);
    if (bad) return bad;
    const d = this.maildrop!;
    d.reset();
    return [write(ok(`maildrop has ${messages(d.count)} (${d.octets} octets)`))];
  }

  /** A message number that exists and is not deleted, or the -ERR saying why not. */
  private find(arg: string): number | Out[] {
    const n = messageNumber(arg);
    if (!n.ok) return [write(err(n.error))];
    const found = this.maildrop!.lookup(n.value);
    if (!found.ok) return [write(err(found.reason))];
    return n.value;
  }

  private closeWith(line: string, outcome: string): Out[] {
    this.state = 'closed';
    this.outcome = outcome;
    return [write(line), { type: 'close' }];
  }
}

function write(data: string | Buffer | Buffer[]): Out {
  return { type: 'write', data };
}

function noArgs(c: CommandLine): Out[] | undefined {
  const bad = arity(c, 0);
  return bad ? [write(err(bad))] : undefined;
}

/** Adjacent text replies (pipelined commands) leave in one write. */
function coalesce(out: Out[]): Out[] {
  if (out.length < 2) return out;
  const merged: Out[] = [];
  for (const o of out) {
    const last = merged[merged.length - 1];
    if (o.type === 'write' && last?.type === 'write' && typeof o.data === 'string' && typeof last.data === 'string') {
      merged[merged.length - 1] = { type: 'write', data: last.data + o.data };
    } else {
      merged.push(o);
    }
  }
  return merged;
}

/** "1 message", "2 messages". */
function messages(n: number): string {
  return `${n} message${n === 1 ? '' : 's'}`;
}
