/**
 * The HTTP service on listen.http (node:http):
 *
 *   POST /api/v1/send   Authorization: Bearer <token>; JSON body (see send-request.ts)
 *                       -> 202 {"id", "messageId"}; 400 bad body (the field is named),
 *                       401 missing/unknown/revoked token, 413 body or message over
 *                       limits.max_message_size, 415 not JSON
 *   GET  /healthz       -> 200 {"status":"ok"}
 *   GET  /metrics       -> Prometheus text format
 *
 * Every request is bounded: headers (16 KiB, 10 s), the whole request (60 s), the body
 * (limits.max_message_size; reading stops as soon as it is passed), idle keep-alive sockets,
 * and connections count against the same per-IP and total limits as the mail listeners.
 */
import { isUtf8 } from 'node:buffer';
import http from 'node:http';
import type net from 'node:net';
import type { Context } from '../context.ts';
import type { ConnectionLimits } from '../net/listener.ts';
import type { Service } from '../server.ts';
import { submitLocal, SubmitError } from '../delivery/submit.ts';
import type { Room } from '../store/free-space.ts';
import { isStorageFull, NoRoom } from '../store/store.ts';
import { ComposeError } from '../mime/errors.ts';
import { answerUnparsed, closing, lingeringClose, unanswered } from './answer-order.ts';
import { repeatedName } from './repeated-name.ts';
import { parseSendRequest, RequestError } from './send-request.ts';
import { hashToken } from './tokens.ts';
import { listenOn } from '../net/listener.ts';
import { clientAddress } from '../net/client-key.ts';
import { RefusalLog } from '../net/refusal-log.ts';
import { splitHostPort } from '../config/schema.ts';

const LISTENER = 'http';

class HttpError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly headers: Record<string, string>;
  constructor(status: number, reason: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.headers = headers;
  }
}

/** The path of the request target, in origin form or absolute form (RFC 9112 §3.2.1, §3.2.2:
 *  a server must take both): the path as written, without its query, never normalised (so that
 *  `/x/../metrics` is no way round a proxy's rule for `/metrics`). */
function requestPath(req: http.IncomingMessage): string {
  const target = req.url ?? '/';
  const absolute = /^https?:\/\/[^/?#]*/i.exec(target);
  const path = absolute ? target.slice(absolute[0].length) || '/' : target;
  return path.split('?')[0]!;
}

function tooBig(max: number): HttpError {
  return new HttpError(413, 'size', `request body over limits.max_message_size (${max} bytes)`);
}

const ROUTES: Record<string, string[]> = {
  '/api/v1/send': ['POST'],
  '/healthz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
};

export class HttpService implements Service {
  readonly name = 'http';
  private readonly ctx: Context;
  private readonly limits: ConnectionLimits | undefined;
  /** The server's gauge of free space, which SMTP counts its messages off too. */
  private readonly room: Room;
  private readonly refusals: RefusalLog;
  private readonly servers: http.Server[] = [];

  constructor(ctx: Context, room: Room, limits?: ConnectionLimits) {
    this.ctx = ctx;
    this.room = room;
    this.limits = limits;
    this.refusals = new RefusalLog(ctx.log, LISTENER);
  }

  async start(): Promise<string[]> {
    const bound: string[] = [];
    for (const address of this.ctx.config.listen.http) {
      const { host, port } = splitHostPort(address);
      // The header and request limits are checked every second (Node's default is 30 s, which
      // let a slow client hold on for up to 40 s rather than 10).
      // A request without Host is answered here, in its turn (Node's own answer would not stop
      // the requests after it).
      const server = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 60_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000, requireHostHeader: false }, (req, res) => {
        unanswered(req, res);
        void this.handle(req, res);
      });
      // "Expect: 100-continue" (RFC 9110 §10.1.1): the client is asked for its body only once its
      // headers pass; a refusal is the final answer, and the body is never read.
      server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
        unanswered(req, res);
        if (closing.has(req.socket)) return;
        void this.admitRequest(req).then((admitted) => {
          res.writeContinue();
          return this.handle(req, res, admitted);
        }, (err: unknown) => this.refuse(req, res, err, true));
      });
      server.timeout = this.ctx.config.limits.idle_timeout;
      server.maxRequestsPerSocket = 1000;
      server.on('connection', (socket: net.Socket) => this.admit(socket));
      // A client that half-closes after its requests (printf ... | nc -N) gets their answers
      // before the connection closes: Node's default ends it at once, answers still owed.
      // (A property of Node's HTTP server its types do not declare.)
      (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
      server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
        // What the parser refused: headers too large, too slow, malformed, or a body that
        // breaks its framing or comes too slowly. The answers owed to the requests before it on
        // the connection go first (RFC 9112 §9.3.2): a send made and its 202 lost would be sent
        // again; then the connection closes.
        const [code, reason]: [number, string] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large']
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
        answerUnparsed(socket, code, reason);
      });
      try {
        await listenOn(server, { host, port }, 'listen.http', address, this.ctx.log);
      } catch (err) {
        // The addresses bound before this one are let go: the server does not start.
        await this.stop(0);
        throw err;
      }
      const a = server.address() as net.AddressInfo;
      bound.push(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
      this.servers.push(server);
    }
    return bound;
  }

  /** Takes no new connection; requests under way get `graceMs`, as the sessions do. */
  async stop(graceMs = 10_000): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeIdleConnections();
      setTimeout(() => s.closeAllConnections(), graceMs).unref();
    })));
  }

  private admit(socket: net.Socket): void {
    const ip = clientOf(socket);
    const refused = this.limits?.acquire(ip, 'users');
    if (refused) {
      this.refusals.refused(ip, refused);
      socket.on('error', () => {});
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroySoon();
      return;
    }
    this.ctx.metrics.count(LISTENER, 1);
    socket.once('close', () => {
      this.limits?.release(ip, 'users');
      this.ctx.metrics.count(LISTENER, -1);
    });
  }

  /** `admitted`: what admitRequest found, when it has run already (for Expect: 100-continue). */
  private async handle(req: http.IncomingMessage, res: http.ServerResponse, admitted?: { path: string; token?: string }): Promise<void> {
    // A request after one answered with "Connection: close" is not run: the connection closes
    // after that answer, and this one's would never be sent (a send made and not said so).
    // Answers still owed to requests before it go out first, in order (RFC 9112 §9.3.2).
    if (closing.has(req.socket)) return;
    try {
      const { path, token } = admitted ?? await this.admitRequest(req);
      if (path === '/healthz') {
        // The store answers a query, or the server is not well: 503 (RFC 9110 §15.6.4).
        await this.ctx.store.queueDepth();
        return this.reply(req, res, 200, { status: 'ok' });
      }
      if (path === '/metrics') {
        const { contentType, text } = await this.ctx.metrics.render();
        res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      const { id, messageId, from, to, size } = await this.send(req, token!);
      this.ctx.metrics.accepted.inc({ listener: LISTENER });
      // The line SMTP writes for a message taken, with the token it came with.
      this.ctx.log.info({ listener: LISTENER, client: clientOf(req.socket), token, id, from, to, size }, 'message accepted');
      this.reply(req, res, 202, { id, messageId });
    } catch (err) {
      this.refuse(req, res, err);
    }
  }

  /** The answer to a request that failed: its HttpError, 507 for a full disk, 500 otherwise.
   *  `unasked`: refused on its headers after "Expect: 100-continue", its body never asked for. */
  private refuse(req: http.IncomingMessage, res: http.ServerResponse, err: unknown, unasked = false): void {
    const path = requestPath(req);
    const send = path === '/api/v1/send';
    // A client gone before its body was whole is answered nothing, and refused nothing either.
    if (err instanceof HttpError && err.reason === 'aborted') {
      this.ctx.log.info({ listener: LISTENER, client: clientOf(req.socket) }, 'request abandoned: the client went before its body was whole');
      return;
    }
    if (err instanceof HttpError) {
      if (send && err.status !== 405) {
        this.ctx.metrics.rejected.inc({ listener: LISTENER, reason: err.reason });
        this.ctx.log.info({ listener: LISTENER, client: clientOf(req.socket), status: err.status, reason: err.reason }, 'request refused');
      }
      this.reply(req, res, err.status, { error: err.message }, err.headers, unasked);
    } else if (isStorageFull(err)) {
      // RFC 4918 §11.5: 507 Insufficient Storage; the client may try again later. Refused
      // before anything was written, as SMTP refuses it, or failed on a full disk.
      if (err instanceof NoRoom) this.ctx.log.warn({ listener: LISTENER, reason: err.message }, 'message refused for now: the disk holding data_dir is nearly full');
      else this.ctx.log.error({ listener: LISTENER, err }, 'HTTP request failed: the disk holding data_dir is full');
      if (send) this.ctx.metrics.rejected.inc({ listener: LISTENER, reason: 'storage_full' });
      this.reply(req, res, 507, { error: 'the server has no room to store the message now; try again later' });
    } else {
      this.ctx.log.error({ listener: LISTENER, err }, 'HTTP request failed');
      if (path === '/healthz') return this.reply(req, res, 503, { status: 'unavailable', error: 'the store does not answer; see the server log' });
      this.reply(req, res, 500, { error: 'internal error; see the server log' });
    }
  }

  /**
   * What can be judged from a request's line and headers: its route and method, and for a send
   * its token, Content-Type and Content-Encoding. Throws the HttpError to answer.
   */
  private async admitRequest(req: http.IncomingMessage): Promise<{ path: string; token?: string }> {
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400.
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && req.headers.host === undefined) {
      throw new HttpError(400, 'bad_request', 'an HTTP/1.1 request needs a Host header field (RFC 9112 section 3.2)');
    }
    const path = requestPath(req);
    const allowed = ROUTES[path];
    if (!allowed) throw new HttpError(404, 'not_found', `no such endpoint: ${path}`);
    if (!allowed.includes(req.method ?? '')) {
      throw new HttpError(405, 'method', `${req.method} is not allowed on ${path}; use ${allowed.join(' or ')}`, { Allow: allowed.join(', ') });
    }
    if (path !== '/api/v1/send') return { path };
    const token = await this.authenticate(req);
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new HttpError(415, 'content_type', `Content-Type must be application/json${type ? `, not ${type}` : ''}`);
    }
    const coding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
    if (coding !== '' && coding !== 'identity') {
      // RFC 9110 §15.5.16: a content coding the server does not take.
      throw new HttpError(415, 'content_type', `Content-Encoding ${coding} is not supported; send the body as it is`);
    }
    const max = this.ctx.config.limits.max_message_size;
    if (Number(req.headers['content-length'] ?? NaN) > max) throw tooBig(max);
    return { path, token };
  }

  /**
   * A response. A request refused before its body was read has the rest of its body read and
   * dropped first, and its answer keeps the connection open for the next request. When that
   * body is over limits.max_message_size (declared, or once counted), or was never asked for
   * ("Expect: 100-continue", RFC 9110 §10.1.1), the answer goes at once with "Connection: close"
   * and the connection closes after it (lingeringClose). Node sends answers in the order of
   * their requests, so one owed to an earlier request on the connection still goes out first.
   */
  private reply(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, unasked = false): void {
    if (res.headersSent) return;
    const answer = (close: boolean): void => {
      if (res.headersSent || req.socket.destroyed) return;
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(status, {
        'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store',
        ...(close ? { Connection: 'close' } : {}), ...headers,
      });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    if (req.complete || req.destroyed) return answer(false);
    const limit = this.ctx.config.limits.max_message_size;
    // A body counted past the limit while it was read for a send (readBody stopped there):
    // nothing more is read.
    if (status === 413 && req.readableFlowing === false) {
      lingeringClose(req, limit, true);
      return answer(true);
    }
    if (unasked || Number(req.headers['content-length'] ?? 0) > limit) {
      lingeringClose(req, limit, false);
      return answer(true);
    }
    let dropped = 0;
    const drop = (chunk: Buffer): void => {
      dropped += chunk.length;
      if (dropped <= limit) return;
      req.off('data', drop);
      lingeringClose(req, limit, true);
      answer(true);
    };
    req.on('data', drop);
    req.once('end', () => answer(false));
    req.resume();
  }

  private async send(req: http.IncomingMessage, tokenName: string): Promise<{ id: string; messageId: string; from: string; to: string[]; size: number }> {
    const raw = await this.readBody(req);
    // RFC 8259 §8.1: JSON is UTF-8. A body that is not would lose its bad bytes to U+FFFD.
    if (!isUtf8(raw)) throw new HttpError(400, 'bad_request', 'request body is not UTF-8 (RFC 8259 §8.1)');
    const text = raw.toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new HttpError(400, 'bad_request', `request body is not valid JSON: ${(err as Error).message}`);
    }
    const repeated = repeatedName(text);
    if (repeated !== undefined) throw new HttpError(400, 'bad_request', `${repeated}: given more than once, and only one would be used; give each field once`);
    let request;
    try {
      request = parseSendRequest(json);
    } catch (err) {
      if (err instanceof RequestError) throw new HttpError(400, 'bad_request', err.message);
      throw err;
    }
    let composed;
    try {
      // Loaded on the first request: the composer and its MIME tables are large.
      const { composeMessage } = await import('../mime/compose.ts');
      composed = await composeMessage({
        from: request.from ?? `postmaster@${this.ctx.config.domains[0]}`,
        to: request.to, cc: request.cc, bcc: request.bcc,
        ...(request.subject !== undefined ? { subject: request.subject } : {}),
        ...(request.text !== undefined ? { text: request.text } : {}),
        ...(request.html !== undefined ? { html: request.html } : {}),
        attachments: request.attachments,
        headers: request.headers,
        hostname: this.ctx.config.hostname,
      });
    } catch (err) {
      if (err instanceof ComposeError) {
        // headers arrive as an object: name the header rather than its position
        const m = /^headers\[(\d+)\]/.exec(err.field);
        const message = m ? `headers[${JSON.stringify(request.headers[Number(m[1])]!.name)}]${err.message.slice(m[0].length)}` : err.message;
        throw new HttpError(400, 'bad_request', message);
      }
      throw err;
    }
    try {
      const id = await submitLocal(this.ctx, {
        sender: composed.sender, recipients: composed.recipients, message: composed.message,
        protocol: 'HTTP', clientIp: clientOf(req.socket), submitter: `token ${tokenName}`, room: this.room,
      });
      return { id, messageId: composed.messageId, from: composed.sender, to: composed.recipients, size: composed.message.length };
    } catch (err) {
      if (err instanceof SubmitError) {
        if (err.problem === 'too_big') throw new HttpError(413, 'size', err.message);
        throw new HttpError(400, err.problem, err.message);
      }
      throw this.storeFailure(err);
    }
  }

  /** What a request whose store work failed is answered: a full disk as it is (507), anything
   *  else (a lock held too long elsewhere, a failing disk) as SMTP's 451 4.3.0 is, a 503 (RFC
   *  9110 §15.6.4) that a script knows to try again. */
  private storeFailure(err: unknown): unknown {
    if (isStorageFull(err)) return err;
    this.ctx.log.error({ listener: LISTENER, err }, 'the store failed');
    return new HttpError(503, 'store_error', 'the server cannot store the message now; try again later', { 'Retry-After': '60' });
  }

  /** Returns the token's name; throws 401 for a missing, malformed, unknown or revoked token. */
  private async authenticate(req: http.IncomingMessage): Promise<string> {
    const challenge = { 'WWW-Authenticate': 'Bearer realm="mailnest"' };
    const header = req.headers.authorization;
    if (!header) throw new HttpError(401, 'auth', 'missing Authorization: Bearer <token> (create one with "mailnest token create NAME")', challenge);
    const m = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i.exec(header);
    if (!m) throw new HttpError(401, 'auth', 'the Authorization header must be "Bearer <token>"', challenge);
    try {
      const token = await this.ctx.store.findTokenByHash(hashToken(m[1]!));
      if (!token) throw new HttpError(401, 'auth', 'invalid or revoked token', { 'WWW-Authenticate': 'Bearer realm="mailnest", error="invalid_token"' });
      // last use is kept to the minute: one durable write per token per minute, not per request
      const now = Date.now();
      if (token.lastUsed === null || now - token.lastUsed >= 60_000) await this.ctx.store.touchToken(token.name, now);
      return token.name;
    } catch (err) {
      throw err instanceof HttpError ? err : this.storeFailure(err);
    }
  }

  /** Reads the body up to limits.max_message_size; past that, 413 and no more reading. */
  private readBody(req: http.IncomingMessage): Promise<Buffer> {
    const max = this.ctx.config.limits.max_message_size;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      const onData = (chunk: Buffer) => {
        total += chunk.length;
        if (total > max) {
          req.off('data', onData);
          req.pause();
          reject(tooBig(max));
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => resolve(Buffer.concat(chunks)));
      // The client gone before its body was whole (its connection reset or cut off, before this
      // read began too): an error on the request, or its close before it was complete. (A
      // settled promise ignores what comes after.)
      const gone = () => reject(new HttpError(400, 'aborted', 'request aborted'));
      if (req.destroyed && !req.complete) gone();
      req.once('error', gone);
      req.once('close', () => { if (!req.complete) gone(); });
    });
  }
}

/** The client's address as the mail listeners say it (see clientAddress): one client for the
 *  limits, the logs and fail2ban. */
function clientOf(socket: net.Socket): string {
  return clientAddress(socket.remoteAddress ?? 'unknown');
}
