/**
 * Listeners: plain TCP or implicit TLS servers on the configured addresses, each connection
 * checked against the global and per-IP limits and handed to a Connection with a new session.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Connection } from './connection.ts';
import { clientAddress, clientKey } from './client-key.ts';
import { ClientCounts } from './client-counts.ts';
import { RefusalLog } from './refusal-log.ts';
import { IdleSweep } from './idle-sweep.ts';
import type { Session, TlsInfo } from './session.ts';
import { ignoreError, serverHandshake, tlsInfo } from './connection.ts';
import { splitHostPort } from '../config/schema.ts';

/**
 * Output a connection queues in the process before it waits for the peer to read (see
 * Connection.send), and input it holds while paused. Bulk output such as pipelined POP3 RETRs
 * goes to the kernel in writes of this size: fewer system calls than Node's 64 KiB default,
 * and still a small bound on memory per connection.
 */
const SOCKET_BUFFER = 256 * 1024;

/** What a session is told of its client. (Only what is used: the socket's own address would
 *  cost a getsockname call and an object per connection.) */
export interface ClientInfo {
  remoteAddress: string;
  /** Set for implicit-TLS listeners. */
  tls?: TlsInfo;
}

export interface ProtocolHandler<E, R> {
  /** Listener name for logs and metrics ("smtp", "submission", "pop3s", ...). */
  name: string;
  /** Whose connections these are, for the limits (see ConnectionLimits). */
  pool: Pool;
  implicitTls: boolean;
  idleTimeoutMs: number;
  createSession(client: ClientInfo): Session<E, R>;
  /** `session`: whose effect it is, which the listener always gives, for a handler that asks
   *  after it (whether its connection has closed meanwhile). */
  perform(effect: E, session?: Session<E, R>): Promise<R>;
  /** The one line sent to a connection refused by a limit (then closed). */
  refusal(reason: string): string;
  /** The connection of `session` has closed (release what the session held, e.g. a lock). */
  ended?(session: Session<E, R>): void;
  /** Counts a refusal a session reports. */
  refused?(reason: string): void;
}

/** Whom a listener serves: anyone on the internet (the MX), or the users and their scripts
 *  (submission, POP3, the HTTP API). */
export type Pool = 'strangers' | 'users';

/**
 * Connection counts across every listener of the process: `maxTotal` in all, of which
 * connections from strangers may take no more than three quarters, so that the internet
 * holding every slot of the MX (a botnet, each address within its own limit) still leaves the
 * users room to read and send their mail; and `maxPerIp` for an address in each pool, so that
 * a client's connections to the MX (a local user's, on loopback) do not shut the same address
 * out of its mailbox and the API.
 */
export class ConnectionLimits {
  private total = 0;
  private strangers = 0;
  private readonly perIp: Record<Pool, ClientCounts> = { strangers: new ClientCounts(), users: new ClientCounts() };
  private readonly maxTotal: number;
  private readonly maxStrangers: number;
  private readonly maxPerIp: number;

  constructor(maxTotal: number, maxPerIp: number) {
    this.maxTotal = maxTotal;
    // Three quarters rounded down, and at least one: a server of one connection has no quarter.
    this.maxStrangers = maxTotal < 2 ? maxTotal : Math.floor((maxTotal * 3) / 4);
    this.maxPerIp = maxPerIp;
  }

  /** Takes a slot; returns the reason when the connection must be refused. An IPv6 client is
   *  counted with its /64 (see clientKey). */
  acquire(ip: string, pool: Pool): string | undefined {
    if (this.total >= this.maxTotal || (pool === 'strangers' && this.strangers >= this.maxStrangers)) return 'too many connections';
    if (this.perIp[pool].of(ip) >= this.maxPerIp) {
      const key = clientKey(ip);
      return `too many connections from ${key === ip ? ip : `${ip} (${key})`}`;
    }
    this.total++;
    if (pool === 'strangers') this.strangers++;
    this.perIp[pool].add(ip);
    return undefined;
  }

  release(ip: string, pool: Pool): void {
    this.total--;
    if (pool === 'strangers') this.strangers--;
    this.perIp[pool].remove(ip);
  }

  get count(): number {
    return this.total;
  }
}

export interface ListenerContext {
  limits: ConnectionLimits;
  log: Logger;
  /** Its `context` is what a TLS session that begins now gets (the certificate is renewed). */
  tls?: { readonly context: tls.SecureContext };
  /** Called as connections open and close (metrics). */
  onCount?: (listener: string, delta: number) => void;
}

/** TCP keepalive after this long without a packet (Node then probes every second, ten times):
 *  a client gone without a word (a phone that changed networks, a NAT that forgot it) is
 *  noticed in about 70 s, not at the idle limit, and what it held (a connection slot, a POP3
 *  maildrop's lock) is let go. */
const KEEPALIVE_IDLE_MS = 60_000;

/** How long a refused connection may take to close after its refusal (see accept). */
const REFUSED_LINGER_MS = 1000;
/** Refused connections a listener lets linger at most; past them, one is closed at once. A
 *  client opening connections as fast as it could, refused, had the server hold 20,000. */
const MAX_LINGERING = 1000;

export class Listener<E, R> {
  readonly handler: ProtocolHandler<E, R>;
  private readonly ctx: ListenerContext;
  private servers: net.Server[] = [];
  private connections = new Set<Connection<E, R>>();
  private stopped = false;
  /** One function for every connection of this listener. */
  private readonly perform = (e: E, s: Session<E, R>): Promise<R> => this.handler.perform(e, s);
  private readonly idle: IdleSweep;
  /** Refused connections waiting for their client to close. */
  private lingering = 0;
  private readonly refusals: RefusalLog;

  constructor(handler: ProtocolHandler<E, R>, ctx: ListenerContext) {
    this.handler = handler;
    this.ctx = ctx;
    this.idle = new IdleSweep(handler.idleTimeoutMs);
    this.refusals = new RefusalLog(ctx.log, handler.name);
  }

  /** Binds every address; resolves with the actual "host:port" bound (port 0 gets a real one). */
  async listen(addresses: string[]): Promise<string[]> {
    const bound: string[] = [];
    for (const address of addresses) {
      const { host, port } = splitHostPort(address);
      // Implicit TLS too starts as plain TCP: the connection is counted against the limits
      // from its first moment, and its handshake is bounded like any other wait. A client's
      // end of input (a half-close) leaves the way back open: the connection ends once what
      // it sent is answered (see Connection).
      const server = net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: SOCKET_BUFFER, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_IDLE_MS }, (s) => void this.accept(s));
      server.maxConnections = Infinity;
      await listenOn(server, { host, port, backlog: 4096 }, `listen.${this.handler.name}`, address, this.ctx.log);
      const a = server.address() as net.AddressInfo;
      bound.push(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
      this.servers.push(server);
    }
    return bound;
  }

  private async accept(raw: net.Socket): Promise<void> {
    const ip = clientAddress(raw.remoteAddress ?? 'unknown');
    const refused = this.ctx.limits.acquire(ip, this.handler.pool);
    raw.on('error', ignoreError);
    if (refused) {
      // A TLS client cannot read a plaintext line: it just sees the connection close.
      if (this.handler.implicitTls) raw.destroy();
      else if (this.lingering >= MAX_LINGERING) {
        // The reply is tried; the socket goes at once.
        raw.end(this.handler.refusal(refused));
        raw.destroy();
      } else {
        raw.end(this.handler.refusal(refused));
        // What the client sends meanwhile is read and dropped, so its close is seen, and the
        // reply is not cut off by a reset; one that does not close is let go shortly, as a
        // refused connection counts against no limit but MAX_LINGERING.
        this.lingering++;
        // From now, however much the client sends meanwhile.
        const timer = setTimeout(() => raw.destroy(), REFUSED_LINGER_MS);
        raw.once('close', () => {
          clearTimeout(timer);
          this.lingering--;
        });
        raw.resume();
      }
      this.refusals.refused(ip, refused);
      return;
    }
    this.ctx.onCount?.(this.handler.name, 1);
    let socket: net.Socket = raw;
    if (this.handler.implicitTls) {
      const started = Date.now();
      const handshake = await serverHandshake(raw, this.ctx.tls!.context, this.handler.idleTimeoutMs);
      if ('failure' in handshake || this.stopped) {
        if ('secure' in handshake) handshake.secure.destroy();
        this.ctx.limits.release(ip, this.handler.pool);
        this.ctx.onCount?.(this.handler.name, -1);
        // No session began; the log still has the connection's one line.
        const outcome = 'failure' in handshake ? handshake.failure : 'shutdown';
        this.ctx.log.info({ listener: this.handler.name, client: ip, outcome, ms: Date.now() - started }, 'session');
        return;
      }
      socket = handshake.secure;
    }
    const client: ClientInfo = {
      remoteAddress: ip,
      ...(socket instanceof tls.TLSSocket ? { tls: tlsInfo(socket) } : {}),
    };
    let session: Session<E, R>;
    try {
      session = this.handler.createSession(client);
    } catch (err) {
      this.ctx.log.error({ err }, 'cannot create session');
      this.ctx.limits.release(ip, this.handler.pool);
      this.ctx.onCount?.(this.handler.name, -1);
      socket.destroy();
      return;
    }
    const conn: Connection<E, R> = new Connection({
      socket,
      session,
      perform: this.perform,
      idle: this.idle,
      ...(this.ctx.tls ? { tls: this.ctx.tls } : {}),
      log: this.ctx.log,
      logFields: { listener: this.handler.name, client: ip },
      ...(this.handler.refused ? { refused: this.handler.refused } : {}),
      onClose: () => {
        this.connections.delete(conn);
        this.handler.ended?.(session);
        this.ctx.limits.release(ip, this.handler.pool);
        this.ctx.onCount?.(this.handler.name, -1);
      },
    });
    this.connections.add(conn);
  }

  /** Stops accepting; asks each session to finish. */
  stopAccepting(): void {
    this.stopped = true;
    for (const s of this.servers) s.close();
    for (const c of this.connections) c.shutdown();
  }

  get open(): number {
    return this.connections.size;
  }

  destroyAll(): void {
    for (const c of this.connections) c.destroy();
  }
}

/**
 * Binds `server`; rejects with listenError when it cannot. Once listening, a server's own error
 * (an accept that fails: EMFILE when the process is out of file descriptors) is logged, at most
 * once a minute, and the server goes on listening: without a handler it would end the process.
 */
export function listenOn(server: net.Server, options: net.ListenOptions, key: string, address: string, log: Logger): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => reject(listenError(key, address, err));
    server.once('error', failed);
    server.listen(options, () => {
      server.off('error', failed);
      let logged = 0;
      server.on('error', (err: NodeJS.ErrnoException) => {
        if (Date.now() - logged < 60_000) return;
        logged = Date.now();
        log.error({ err: err.message, listener: key, address }, 'a connection could not be accepted (said once a minute)');
      });
      resolve();
    });
  });
}

/** Why a listener could not open, with what to do for the usual causes. */
export function listenError(key: string, address: string, err: NodeJS.ErrnoException): Error {
  const hint = err.code === 'EACCES' ? ': ports below 1024 need root or the CAP_NET_BIND_SERVICE capability (setcap cap_net_bind_service=+ep on the node binary), or use a port above 1023'
    : err.code === 'EADDRINUSE' ? ': another program listens there, or another listener of this file under another name for the address; stop it, or choose another address'
      : err.code === 'EADDRNOTAVAIL' ? ': no network interface of this machine has that address'
        : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? ': this machine cannot resolve that host name; give an IP address instead'
          : '';
  return new Error(`${key}: cannot listen on ${address}: ${err.code ?? err.message}${hint}`);
}
