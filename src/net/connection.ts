/**
 * Drives one sans-I/O session over one socket: feeds it bytes, writes its replies with
 * back-pressure, performs its effects, upgrades to TLS when asked, tells the idle sweep when it
 * was last active, and turns an unexpected exception into the session's last words and a closed
 * socket — the server and the other sessions never notice.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { IdleMember, IdleSweep } from './idle-sweep.ts';
import type { Output, Session, TlsInfo } from './session.ts';
import { EMPTY } from './empty.ts';
import { inputTurn } from './turn-budget.ts';
import { totalLength } from '../chunks.ts';

/**
 * A read this small goes to its session at once, even when the turn's input budget is spent: a
 * few commands, which a client waiting for each reply sends, cost little, while a client that
 * sends faster than it is read soon has larger reads. (Put behind a hundred flooders, every
 * command of a newcomer waited 800 ms.)
 */
const SMALL_READ = 4096;

/** Held input handed to a session at once, at most: about one read's worth. */
const HELD_PIECE = 64 * 1024;

/** Output one connection writes in one turn of the event loop before the others get theirs. */
const TURN_BUDGET = 1024 * 1024;

export interface ConnectionOptions<E, R> {
  socket: net.Socket;
  session: Session<E, R>;
  perform: (effect: E, session: Session<E, R>) => Promise<R>;
  /** The listener's idle limit (also the bound on a STARTTLS handshake). */
  idle: IdleSweep;
  /** Needed when the session may ask for STARTTLS: the context of the moment it does. */
  tls?: { readonly context: tls.SecureContext };
  log: Logger;
  /** Fields every log line of this connection carries (listener, client). */
  logFields: Record<string, unknown>;
  onClose: () => void;
  /** A refusal the session reports (see Output). */
  refused?: (reason: string) => void;
}

export class Connection<E, R> implements IdleMember {
  private socket: net.Socket;
  private readonly o: ConnectionOptions<E, R>;
  private queue: Output<E>[] = [];
  private running = false;
  private closed = false;
  /** While an effect, a stream or a TLS upgrade is under way, or input waits for a later turn, it is held back. */
  private held: Buffer[] = [];
  private blocked = false;
  /** release() is taking what the paused socket read meanwhile. */
  private collecting = false;
  /** Input waits for a later turn of the event loop (see onData). */
  private deferred = false;
  /** The peer has ended its input (a half-close, or the start of a close). */
  private peerEnded = false;
  /** The session has said its last word: the socket ends once that is written. */
  private ending = false;
  /** Effects begun in this turn of the event loop (see execute). */
  private effectsThisTurn = 0;
  /** An effect is under way: the server's own work, which the client waits for. */
  private serving = false;
  private corked = false;
  /** Bytes written in this turn of the event loop (see pace). */
  private turnBytes = 0;
  private readonly started = Date.now();
  /** The idle sweep's tick at the last read or write (see IdleSweep). */
  lastActive: number | undefined;

  constructor(o: ConnectionOptions<E, R>) {
    this.o = o;
    this.socket = o.socket;
    this.attach(this.socket);
    this.lastActive = o.idle.tick;
    o.idle.add(this);
    this.push(() => o.session.start());
  }

  /** RFC 5321 §4.5.3.2 / RFC 1939 §3: the session says what an idle timeout means. When it
   *  ends the session, a peer that has not taken what was sent it takes no farewell either: the
   *  connection ends at once, and with it what the session held (a maildrop's lock, a connection
   *  slot). (A farewell that the system's buffers cannot take is such output at the next limit.) */
  timedOut(): void {
    this.lastActive = this.o.idle.tick;
    // The client waits for the server (a message being checked, fitted or stored), which is no
    // idleness of its own: RFC 5321 §4.5.3.2.6 gives it ten minutes for the reply to the end of
    // its data. Its limit starts over once the reply is made.
    if (this.serving) return;
    const stalled = this.socket.writableLength > 0;
    // The session has said its last word (QUIT), and the client has not read what came before
    // it since: it has had its limit.
    if (this.ending || this.queue.some((out) => out.type === 'close')) {
      this.socket.destroy();
      return;
    }
    let ends = false;
    this.push(() => {
      const outputs = this.o.session.timeout();
      ends = outputs.some((o) => o.type === 'close');
      return outputs;
    });
    if (ends && stalled) this.socket.destroy();
  }

  shutdown(): void {
    this.push(() => this.o.session.shutdown());
  }

  /** Ends the connection at once (the shutdown grace period ran out), logged as such. */
  destroy(): void {
    this.ended('shutdown');
    this.socket.destroy();
  }

  private attach(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', ignoreError);
    socket.on('close', this.onClosed);
  }

  /**
   * The peer sends nothing more. What it sent is still answered, and a message it ended still
   * gets its 250 once on disk: a client that pipelines its last commands and half-closes (RFC
   * 5321 §3.8 lets the server close only after QUIT's reply) would otherwise see the connection
   * close unanswered and send the message again. Then the connection ends.
   */
  private onEnd = (): void => {
    this.peerEnded = true;
    this.endIfAnswered();
  };

  private endIfAnswered(): void {
    if (!this.peerEnded || this.closed || this.running || this.blocked || this.deferred) return;
    if (this.held.length > 0 || this.queue.length > 0) return;
    this.socket.end();
  }

  private onData = (chunk: Buffer): void => {
    this.lastActive = this.o.idle.tick;
    if (this.collecting) {
      this.held.push(chunk);
      return;
    }
    if (this.blocked || this.deferred) {
      this.held.push(chunk);
      this.socket.pause();
      return;
    }
    if (chunk.length > SMALL_READ && inputTurn.spent()) {
      this.held.push(chunk);
      this.socket.pause();
      this.deferred = true;
      // A closure made only now: an idle connection carries none.
      inputTurn.defer(() => this.resumeDeferred());
      return;
    }
    this.push(() => this.o.session.receive(chunk));
  };

  /** The turn budget's call, in a later turn: held input goes on unless something else holds it. */
  private resumeDeferred(): void {
    this.deferred = false;
    if (!this.blocked && !this.running && !this.closed && this.held.length > 0) this.release();
    else this.endIfAnswered();
  }

  private onClosed = (): void => this.ended();

  /** The one log line of the session; `outcome` when the connection knows better (STARTTLS). */
  private ended(outcome?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.o.idle.delete(this);
    this.o.session.closed?.();
    const s = this.o.session.summary();
    this.o.log.info({ ...this.o.logFields, ...s, ...(outcome ? { outcome } : {}), ms: Date.now() - this.started }, 'session');
    this.o.onClose();
  }

  /** Calls into the session (guarded) and runs what it returned. */
  private push(call: () => Output<E>[]): void {
    if (this.closed) return;
    let outputs: Output<E>[];
    try {
      outputs = call();
    } catch (err) {
      outputs = this.fail(err);
    }
    this.queue.push(...joinWrites(outputs));
    void this.run();
  }

  private fail(err: unknown): Output<E>[] {
    this.o.log.error({ ...this.o.logFields, err }, 'session failed');
    try {
      return [...this.o.session.failure(), { type: 'close' }];
    } catch {
      return [{ type: 'close' }];
    }
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        // Replies produced together still leave in one segment: see send().
        await this.execute(this.queue.shift()!);
      }
    } finally {
      this.running = false;
    }
    if (!this.blocked && !this.deferred && this.held.length > 0 && !this.closed) this.release();
    this.endIfAnswered();
  }

  private async execute(out: Output<E>): Promise<void> {
    switch (out.type) {
      case 'write': {
        const wait = this.pace(this.sendAll(out.data));
        if (!wait) return;
        // RFC 2920 §3.1: a client that does not read its replies is not read either.
        this.blocked = true;
        await wait;
        this.blocked = false;
        return;
      }
      case 'close':
        this.queue = [];
        this.ending = true;
        this.socket.end();
        this.socket.destroySoon?.();
        return;
      case 'stream':
        this.blocked = true;
        try {
          for await (const chunk of out.source) {
            if (this.closed) return;
            // The write callback of the batch's last piece (Node also calls it when the socket
            // is destroyed first): only then is the next batch asked for.
            const written = Promise.withResolvers<void>();
            await this.pace(this.sendAll(chunk, written.resolve));
            this.flushNow();
            await written.promise;
          }
        } catch (err) {
          this.queue.unshift(...this.fail(err));
        } finally {
          this.blocked = false;
        }
        return;
      case 'effect': {
        this.blocked = true;
        let outputs: Output<E>[];
        try {
          // An effect done at once (a lookup in the store) resumes as a microtask, and a pipeline
          // of them (RCPT after RCPT to a wide alias) would hold the event loop, every other
          // session with it. The second effect of a connection in one turn, past the turn's
          // budget, waits for a later turn, as input does; a client that waits for each reply
          // has one effect a turn, and never waits here.
          if (this.effectsThisTurn++ > 0 && inputTurn.spent()) await new Promise<void>((resolve) => inputTurn.defer(resolve));
          if (this.effectsThisTurn === 1) setImmediate(() => { this.effectsThisTurn = 0; });
          this.serving = true;
          const result = await this.o.perform(out.effect, this.o.session);
          outputs = this.closed ? [] : this.o.session.resolve(result);
        } catch (err) {
          outputs = this.fail(err);
        } finally {
          this.blocked = false;
          this.serving = false;
          this.lastActive = this.o.idle.tick;
        }
        this.queue.unshift(...joinWrites(outputs));
        return;
      }
      case 'starttls':
        await this.upgrade();
        return;
      case 'refused':
        this.o.refused?.(out.reason);
        // Whose mail was refused, to whom and why (Postfix's "NOQUEUE: reject" line).
        if (out.envelope) this.o.log[out.warn ? 'warn' : 'info']({ ...this.o.logFields, reason: out.reason, ...(out.detail ? { detail: out.detail } : {}), ...out.envelope }, 'refused');
        return;
      case 'more':
        // After every connection that waits for its turn's input (see TurnBudget); input that
        // arrives meanwhile is held, so nothing overtakes what the session still has.
        this.deferred = true;
        inputTurn.defer(() => {
          this.deferred = false;
          this.push(() => this.o.session.receive(EMPTY));
        });
        return;
    }
  }

  /**
   * Writes with the socket corked until the event loop's next turn: replies to pipelined
   * commands (and POP3 messages sent back to back) leave in one writev instead of one
   * system call each. Any wait for the network or the disk lets the turn end and the data go.
   */
  private send(data: string | Buffer, written?: () => void): boolean {
    const socket = this.socket;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.turnBytes = 0;
        socket.uncork();
      });
    }
    this.turnBytes += data.length;
    this.lastActive = this.o.idle.tick;
    if (socket.write(data, written)) return true;
    // Past the high-water mark: hand what is queued to the kernel now instead of at the end of
    // the turn. Only a peer that does not read leaves it queued, and only then do we wait.
    this.flushNow();
    return socket.writableLength < socket.writableHighWaterMark;
  }

  /** send() of one buffer or of pieces that go out together; `written` once they all are. */
  private sendAll(data: string | Buffer | Buffer[], written?: () => void): boolean {
    if (!Array.isArray(data)) return this.send(data, written);
    let room = true;
    data.forEach((piece, i) => { room = this.send(piece, i === data.length - 1 ? written : undefined); });
    if (data.length === 0) written?.();
    return room;
  }

  /** Hands what is corked to the kernel now; the socket stays corked until the turn ends. */
  private flushNow(): void {
    if (!this.corked) return;
    this.socket.uncork();
    this.socket.cork();
  }

  /**
   * What to wait for after a write, if anything: without room, the peer reading; past
   * TURN_BUDGET in this turn, every other connection's turn (a pipelined download whose client
   * keeps up would otherwise hold the event loop until it ends).
   */
  private pace(room: boolean): Promise<void> | undefined {
    if (!room) return this.drained();
    if (this.turnBytes >= TURN_BUDGET) return new Promise<void>((resolve) => setImmediate(resolve));
    return undefined;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** RFC 3207 §4.2 / RFC 2595 §4: whatever the client sent before the handshake is discarded. */
  private async upgrade(): Promise<void> {
    if (!this.o.tls) throw new Error('STARTTLS without a TLS context');
    const raw = this.socket;
    // The "220 Ready to start TLS" must leave before the handshake bytes.
    if (this.corked) {
      this.corked = false;
      raw.uncork();
    }
    raw.off('data', this.onData);
    raw.off('end', this.onEnd);
    raw.off('close', this.onClosed);
    this.held = [];
    this.blocked = true;
    // The handshake has its own limit; the sweep leaves the connection alone meanwhile.
    this.lastActive = undefined;
    const handshake = await serverHandshake(raw, this.o.tls.context, this.o.idle.timeoutMs);
    this.lastActive = this.o.idle.tick;
    this.blocked = false;
    if ('failure' in handshake) {
      this.ended(handshake.failure);
      return;
    }
    const { secure } = handshake;
    this.socket = secure;
    this.attach(secure);
    this.queue.unshift(...this.callSafely(() => this.o.session.tlsStarted(tlsInfo(secure))));
  }

  private callSafely(call: () => Output<E>[]): Output<E>[] {
    try {
      return call();
    } catch (err) {
      return this.fail(err);
    }
  }

  /** Held input goes to the session in one piece: what arrived together is seen together, so
   *  the session can tell a command the client sent more after without waiting (RFC 2920).
   *  That is also what the paused socket read meanwhile, up to HELD_PIECE in all: resumed, it
   *  would hand it on one read at a time. (read() gives it as a 'data' event, which onData
   *  holds.) The rest follows as later reads do, within the turn's input budget. */
  private release(): void {
    if (this.socket.destroyed) {
      this.held = [];
      return;
    }
    const more = Math.min(this.socket.readableLength, HELD_PIECE - totalLength(this.held));
    if (more > 0) {
      this.collecting = true;
      this.socket.read(more);
      this.collecting = false;
    }
    const chunks = this.held;
    this.held = [];
    this.socket.resume();
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    this.push(() => this.o.session.receive(data));
  }
}

/** How a server-side TLS handshake ended: the secure socket, or why there is none. */
export type Handshake = { secure: tls.TLSSocket } | { failure: 'TLS handshake timed out' | 'TLS handshake failed' };

/**
 * The server side of a TLS handshake on an accepted socket (implicit TLS, or after STARTTLS),
 * bounded by `timeoutMs` like any other wait for the client. When it fails or times out, the
 * socket is destroyed and the failure says which.
 */
export function serverHandshake(raw: net.Socket, context: tls.SecureContext, timeoutMs: number): Promise<Handshake> {
  const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
  return new Promise((resolve) => {
    const timer = setTimeout(() => done('TLS handshake timed out'), timeoutMs);
    const done = (failure?: 'TLS handshake timed out' | 'TLS handshake failed') => {
      clearTimeout(timer);
      secure.off('secure', onSecure);
      secure.off('end', onFail);
      secure.off('close', onFail);
      if (failure) {
        secure.on('error', ignoreError);
        secure.destroy();
        raw.destroy();
      }
      resolve(failure ? { failure } : { secure });
    };
    const onSecure = () => done();
    const onFail = () => done('TLS handshake failed');
    secure.once('secure', onSecure);
    secure.once('error', onFail);
    // The raw socket may stay half-open (see Listener): a client that gives up during the
    // handshake ends its side, and nothing else would come.
    secure.once('end', onFail);
    secure.once('close', onFail);
  });
}

/**
 * Runs of text replies become one write. A client pipelining thousands of commands in one read
 * then costs one string and one socket write, not an object per reply: while such a client does
 * not read, those objects waited in the queue, and a hundred such clients held about a hundred
 * megabytes (RFC 2920 §3.1 lets the server stop reading them; it still owed what it had read).
 */
function joinWrites<E>(outputs: Output<E>[]): Output<E>[] {
  if (outputs.length < 2) return outputs;
  const joined: Output<E>[] = [];
  let texts: string[] = [];
  const end = () => {
    if (texts.length > 0) joined.push({ type: 'write', data: texts.join('') });
    texts = [];
  };
  for (const out of outputs) {
    if (out.type === 'write' && typeof out.data === 'string') {
      texts.push(out.data);
      continue;
    }
    end();
    joined.push(out);
  }
  end();
  return joined;
}

/** Socket errors end in 'close', which is where a connection is accounted for. */
export function ignoreError(): void {}

export function tlsInfo(socket: tls.TLSSocket): TlsInfo {
  const c = socket.getCipher();
  return { protocol: socket.getProtocol() ?? 'TLS', cipher: c?.standardName ?? c?.name ?? 'unknown' };
}
