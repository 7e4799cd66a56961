/**
 * A small SMTP server for delivery tests: it takes what the outbound client sends (EHLO with
 * PIPELINING, SIZE, 8BITMIME, SMTPUTF8; optional STARTTLS) and keeps every message, with replies
 * to RCPT and DATA that a test can script (4xx now, 5xx for one address, ...).
 */
import net from 'node:net';
import tls from 'node:tls';

export interface SunkMessage {
  from: string;
  to: string[];
  data: Buffer;
  helo: string;
  mailParams: string;
}

export interface SinkOptions {
  /** Reply to RCPT TO for an address, or undefined for 250. */
  rcptReply?: (address: string) => string | undefined;
  /** Reply after the final dot, or undefined for 250. */
  dataReply?: (m: SunkMessage) => string | undefined;
  /** What the reply after the final dot waits for, as a slow server's does. */
  dataGate?: () => Promise<void>;
  /** What the 354 that lets the message begin waits for. */
  startGate?: () => Promise<void>;
  /** Offer STARTTLS with this key and certificate. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Name in the greeting. */
  name?: string;
  /** Messages one connection may carry: the MAIL after them gets 421 and the connection closes,
   *  as providers' limits do. */
  messagesPerConnection?: number;
  /** Recipients one transaction may have: the RCPT after them gets `overLimit` (452 4.5.3, as
   *  Postfix's smtpd_recipient_limit does, when not given). */
  recipientsPerMessage?: number;
  overLimit?: string;
  /** Offer DSN (RFC 3461): its parameters are then taken, and kept in `commands`. */
  dsn?: boolean;
  /** Connections open at once: one more gets 421 at the greeting and is closed, as servers
   *  with a limit per client address do. */
  maxConnections?: number;
  /** Milliseconds before the greeting, as a busy server's. */
  greetingDelay?: number;
  /** Milliseconds a closed connection still counts against maxConnections, as with a server
   *  that counts its processes until they are reaped. */
  slotLag?: number;
}

export class SmtpSink {
  readonly messages: SunkMessage[] = [];
  /** Every command line received, for tests that look at the dialogue. */
  readonly commands: string[] = [];
  connections = 0;
  /** The most connections that were open at once (refused ones not counted). */
  mostOpen = 0;
  /** For each connection taken, in order: how many were open with it. */
  readonly openWith: number[] = [];
  private open = 0;
  private server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  opts: SinkOptions;
  port = 0;

  constructor(opts: SinkOptions = {}) {
    this.opts = opts;
    this.server = net.createServer((s) => this.session(s));
  }

  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Resolves once `n` messages have arrived, rejects after `ms`. */
  async waitFor(n: number, ms = 20_000): Promise<SunkMessage[]> {
    const deadline = Date.now() + ms;
    while (this.messages.length < n) {
      if (Date.now() > deadline) throw new Error(`sink: ${this.messages.length} of ${n} messages after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
    return this.messages;
  }

  private session(raw: net.Socket): void {
    this.connections++;
    let sock: net.Socket = raw;
    this.sockets.add(raw);
    raw.on('close', () => this.sockets.delete(raw));
    raw.on('error', () => undefined);
    if (this.opts.maxConnections !== undefined && this.open >= this.opts.maxConnections) {
      raw.end('421 4.7.0 too many connections from your address\r\n');
      return;
    }
    this.open++;
    this.mostOpen = Math.max(this.mostOpen, this.open);
    this.openWith.push(this.open);
    raw.on('close', () => {
      if (this.opts.slotLag) setTimeout(() => this.open--, this.opts.slotLag);
      else this.open--;
    });
    let buf = Buffer.alloc(0);
    let helo = '';
    let from: string | undefined;
    let mailParams = '';
    let to: string[] = [];
    let inData = false;
    let data: Buffer[] = [];
    let secure = false;
    let carried = 0;
    const name = this.opts.name ?? 'sink.test';
    const write = (s: string) => sock.write(`${s}\r\n`);
    const onLine = (line: Buffer): void => {
      if (inData) {
        const text = line.toString('latin1');
        if (text === '.\r\n') {
          inData = false;
          const m: SunkMessage = { from: from ?? '', to, data: Buffer.concat(data), helo, mailParams };
          const r = this.opts.dataReply?.(m);
          const answer = () => {
            if (r === undefined) {
              this.messages.push(m);
              carried++;
              write('250 2.0.0 queued as sink');
            } else {
              write(r);
            }
          };
          if (this.opts.dataGate) void this.opts.dataGate().then(answer);
          else answer();
          from = undefined;
          to = [];
          data = [];
          return;
        }
        data.push(text.startsWith('.') ? line.subarray(1) : line);
        return;
      }
      const cmd = line.toString('utf8').replace(/\r?\n$/, '');
      this.commands.push(cmd);
      const verb = cmd.split(' ')[0]!.toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') {
        helo = cmd.slice(5);
        if (verb === 'HELO') return void write(`250 ${name}`);
        const ext = ['PIPELINING', 'SIZE 52428800', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', ...(this.opts.dsn ? ['DSN'] : [])];
        if (this.opts.tls && !secure) ext.push('STARTTLS');
        sock.write(`250-${name}\r\n${ext.map((e, i) => `250${i === ext.length - 1 ? ' ' : '-'}${e}\r\n`).join('')}`);
      } else if (verb === 'STARTTLS' && this.opts.tls && !secure) {
        write('220 2.0.0 go ahead');
        sock.removeListener('data', onData);
        const t = new tls.TLSSocket(raw, { isServer: true, key: this.opts.tls.key, cert: this.opts.tls.cert });
        t.on('error', () => undefined);
        sock = t;
        secure = true;
        buf = Buffer.alloc(0);
        t.on('data', onData);
      } else if (verb === 'MAIL') {
        if (carried >= (this.opts.messagesPerConnection ?? Infinity)) {
          write('421 4.7.0 too many messages on this connection');
          return void sock.end();
        }
        const m = /^MAIL FROM:\s*<([^>]*)>(.*)$/i.exec(cmd);
        if (!m) return void write('501 5.5.4 syntax');
        from = m[1]!;
        mailParams = m[2]!.trim();
        to = [];
        write('250 2.1.0 ok');
      } else if (verb === 'RCPT') {
        const m = /^RCPT TO:\s*<([^>]*)>/i.exec(cmd);
        if (!m || from === undefined) return void write('503 5.5.1 bad sequence');
        const r = this.opts.rcptReply?.(m[1]!);
        if (r !== undefined) return void write(r);
        if (to.length >= (this.opts.recipientsPerMessage ?? Infinity)) return void write(this.opts.overLimit ?? '452 4.5.3 Error: too many recipients');
        to.push(m[1]!);
        write('250 2.1.5 ok');
      } else if (verb === 'DATA') {
        if (to.length === 0) return void write('554 5.5.1 no valid recipients');
        inData = true;
        if (this.opts.startGate) void this.opts.startGate().then(() => write('354 go ahead'));
        else write('354 go ahead');
      } else if (verb === 'RSET') {
        from = undefined;
        to = [];
        write('250 2.0.0 ok');
      } else if (verb === 'NOOP') {
        write('250 2.0.0 ok');
      } else if (verb === 'QUIT') {
        write('221 2.0.0 bye');
        sock.end();
      } else {
        write('502 5.5.2 not implemented');
      }
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      let nl: number;
      while ((nl = buf.indexOf(10)) >= 0) {
        const line = buf.subarray(0, nl + 1);
        buf = buf.subarray(nl + 1);
        onLine(line);
        if (sock !== raw && !secure) return;
      }
    };
    raw.on('data', onData);
    if (this.opts.greetingDelay) setTimeout(() => write(`220 ${name} ESMTP sink`), this.opts.greetingDelay);
    else write(`220 ${name} ESMTP sink`);
  }
}
