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
import { isStorageFull } from '../store/store.ts';
import { ComposeError } from '../mime/errors.ts';
import { parseSendRequest, RequestError } from './send-request.ts';
import { hashToken } from './tokens.ts';
import { listenError } from '../net/listener.ts';

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

const ROUTES: Record<string, string[]> = {
  '/api/v1/send': ['POST'],
  '/healthz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
};

export class HttpService implements Service {
  readonly name = 'http';
  private readonly ctx: Context;
  private readonly limits: ConnectionLimits | undefined;
  private readonly servers: http.Server[] = [];

  constructor(ctx: Context, limits?: ConnectionLimits) {
    this.ctx = ctx;
    this.limits = limits;
  }

  async start(): Promise<string[]> {
    const bound: string[] = [];
    for (const address of this.ctx.config.listen.http) {
      const sep = address.lastIndexOf(':');
      const host = address.slice(0, sep).replace(/^\[|\]$/g, '');
      const port = Number(address.slice(sep + 1));
      const server = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 60_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
        void this.handle(req, res);
      });
      server.timeout = this.ctx.config.limits.idle_timeout;
      server.maxRequestsPerSocket = 1000;
      server.on('connection', (socket: net.Socket) => this.admit(socket));
      server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
        // what the parser refused before a request existed: headers too large, too slow, malformed
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large'
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(listenError('listen.http', address, err)));
        server.listen({ host, port }, () => resolve());
      });
      const a = server.address() as net.AddressInfo;
      bound.push(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
      this.servers.push(server);
    }
    return bound;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeIdleConnections();
      // requests still running get a moment (the server's stop grace period came first)
      setTimeout(() => s.closeAllConnections(), 2_000).unref();
    })));
  }

  private admit(socket: net.Socket): void {
    const ip = socket.remoteAddress ?? 'unknown';
    const refused = this.limits?.acquire(ip);
    if (refused) {
      this.ctx.log.warn({ listener: LISTENER, client: ip, reason: refused }, 'connection refused');
      socket.on('error', () => {});
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroySoon();
      return;
    }
    this.ctx.metrics.count(LISTENER, 1);
    socket.once('close', () => {
      this.limits?.release(ip);
      this.ctx.metrics.count(LISTENER, -1);
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      const allowed = ROUTES[path];
      if (!allowed) throw new HttpError(404, 'not-found', `no such endpoint: ${path}`);
      if (!allowed.includes(req.method ?? '')) {
        throw new HttpError(405, 'method', `${req.method} is not allowed on ${path}; use ${allowed.join(' or ')}`, { Allow: allowed.join(', ') });
      }
      if (path === '/healthz') return this.reply(res, 200, { status: 'ok' }, req.method === 'HEAD');
      if (path === '/metrics') {
        const { contentType, text } = await this.ctx.metrics.render();
        res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      const result = await this.send(req);
      this.ctx.metrics.accepted.inc({ listener: LISTENER });
      this.reply(res, 202, result);
    } catch (err) {
      if (err instanceof HttpError) {
        if (path === '/api/v1/send' && err.status !== 405) this.ctx.metrics.rejected.inc({ listener: LISTENER, reason: err.reason });
        this.reply(res, err.status, { error: err.message }, false, err.headers);
      } else if (isStorageFull(err)) {
        // RFC 4918 §11.5: 507 Insufficient Storage; the client may try again later.
        this.ctx.log.error({ listener: LISTENER, err }, 'HTTP request failed: the disk holding data_dir is full');
        if (path === '/api/v1/send') this.ctx.metrics.rejected.inc({ listener: LISTENER, reason: 'storage-full' });
        this.reply(res, 507, { error: 'the server has no room to store the message now; try again later' });
      } else {
        this.ctx.log.error({ listener: LISTENER, err }, 'HTTP request failed');
        this.reply(res, 500, { error: 'internal error; see the server log' });
      }
    }
  }

  private reply(res: http.ServerResponse, status: number, body: unknown, headOnly = false, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
    res.end(headOnly ? undefined : text);
  }

  private async send(req: http.IncomingMessage): Promise<{ id: string; messageId: string }> {
    const tokenName = await this.authenticate(req);
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new HttpError(415, 'content-type', `Content-Type must be application/json${type ? `, not ${type}` : ''}`);
    }
    const raw = await this.readBody(req);
    // RFC 8259 §8.1: JSON is UTF-8. A body that is not would lose its bad bytes to U+FFFD.
    if (!isUtf8(raw)) throw new HttpError(400, 'bad-request', 'request body is not UTF-8 (RFC 8259 §8.1)');
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, 'bad-request', `request body is not valid JSON: ${(err as Error).message}`);
    }
    let request;
    try {
      request = parseSendRequest(json);
    } catch (err) {
      if (err instanceof RequestError) throw new HttpError(400, 'bad-request', err.message);
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
        throw new HttpError(400, 'bad-request', message);
      }
      throw err;
    }
    try {
      const id = await submitLocal(this.ctx, {
        sender: composed.sender, recipients: composed.recipients, message: composed.message,
        protocol: 'HTTP', clientIp: req.socket.remoteAddress ?? 'unknown', submitter: `token ${tokenName}`,
      });
      return { id, messageId: composed.messageId };
    } catch (err) {
      if (err instanceof SubmitError) {
        if (err.problem === 'too-big') throw new HttpError(413, 'size', err.message);
        throw new HttpError(400, err.problem, err.message);
      }
      throw err;
    }
  }

  /** Returns the token's name; throws 401 for a missing, malformed, unknown or revoked token. */
  private async authenticate(req: http.IncomingMessage): Promise<string> {
    const challenge = { 'WWW-Authenticate': 'Bearer realm="mailnest"' };
    const header = req.headers.authorization;
    if (!header) throw new HttpError(401, 'auth', 'missing Authorization: Bearer <token> (create one with "mailnest token create NAME")', challenge);
    const m = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i.exec(header);
    if (!m) throw new HttpError(401, 'auth', 'the Authorization header must be "Bearer <token>"', challenge);
    const token = await this.ctx.store.findTokenByHash(hashToken(m[1]!));
    if (!token) throw new HttpError(401, 'auth', 'invalid or revoked token', { 'WWW-Authenticate': 'Bearer realm="mailnest", error="invalid_token"' });
    // last use is kept to the minute: one durable write per token per minute, not per request
    const now = Date.now();
    if (token.lastUsed === null || now - token.lastUsed >= 60_000) await this.ctx.store.touchToken(token.name, now);
    return token.name;
  }

  /** Reads the body up to limits.max_message_size; past that, 413 and no more reading. */
  private readBody(req: http.IncomingMessage): Promise<Buffer> {
    const max = this.ctx.config.limits.max_message_size;
    const tooBig = () => new HttpError(413, 'size', `request body over limits.max_message_size (${max} bytes)`, { Connection: 'close' });
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > max) return Promise.reject(tooBig());
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      const onData = (chunk: Buffer) => {
        total += chunk.length;
        if (total > max) {
          req.off('data', onData);
          req.pause();
          reject(tooBig());
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => resolve(Buffer.concat(chunks)));
      req.once('error', reject);
      req.once('aborted', () => reject(new HttpError(400, 'aborted', 'request aborted')));
    });
  }
}
