/**
 * A raw SMTP dialogue client for integration tests: writes exactly the bytes it is given over a
 * real socket (plain or TLS) and reads whole replies (multi-line replies joined), so a test can
 * check each reply code and text, pipeline commands, and upgrade with STARTTLS.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface SmtpReply {
  code: number;
  /** Text of each line after "NNN-" / "NNN ". */
  lines: string[];
  /** The reply exactly as received, CRLFs included. */
  raw: string;
  /** The enhanced status code of the first line (RFC 2034), when there is one. */
  enhanced: string | undefined;
}

export interface ConnectOptions {
  /** Implicit TLS, trusting this CA (the server's self-signed certificate). */
  ca?: string | Buffer;
  /** How long any single wait may take before the test fails instead of hanging. */
  timeoutMs?: number;
  /** Source address (another 127.x.y.z to look like a different client). */
  localAddress?: string;
}

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/;

export class SmtpClient {
  socket: net.Socket;
  readonly timeoutMs: number;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private isClosed = false;
  private closeWaiters: (() => void)[] = [];

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.attach(socket);
  }

  /** Connects to 127.0.0.1:port; the greeting is not read (see greeting()). */
  static async connect(port: number, opts: ConnectOptions = {}): Promise<SmtpClient> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const local = opts.localAddress ? { localAddress: opts.localAddress } : {};
      const s: net.Socket = opts.ca
        ? tls.connect({ host: '127.0.0.1', port, ca: opts.ca, servername: 'mx.example.test', ...local }, () => resolve(s))
        : net.connect({ host: '127.0.0.1', port, ...local }, () => resolve(s));
      s.once('error', reject);
    });
    return new SmtpClient(socket, timeoutMs);
  }

  /** Connects and reads the 220 greeting (throws if it is anything else). */
  static async open(port: number, opts: ConnectOptions = {}): Promise<SmtpClient> {
    const c = await SmtpClient.connect(port, opts);
    const g = await c.reply();
    if (g.code !== 220) throw new Error(`unexpected greeting: ${g.raw}`);
    return c;
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', () => { /* seen as close */ });
    socket.on('close', this.onClose);
  }

  private onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.wake?.();
  };

  private onClose = (): void => {
    this.isClosed = true;
    this.wake?.();
    for (const w of this.closeWaiters.splice(0)) w();
  };

  get closed(): boolean {
    return this.isClosed;
  }

  /** Everything received and not yet consumed as a reply. */
  get pending(): string {
    return this.buf.toString('utf8');
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until `test` accepts the buffered input (or the socket closes / time runs out). */
  private async waitFor(test: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    while (!test()) {
      if (this.isClosed) throw new Error(`connection closed while waiting for ${what}; unread: ${JSON.stringify(this.pending)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; unread: ${JSON.stringify(this.pending)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(t); resolve(); };
      });
      this.wake = undefined;
    }
  }

  /** Length in bytes of the first complete reply in the buffer, or -1. */
  private replyLength(): number {
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf('\r\n', pos);
      if (nl < 0) return -1;
      const line = this.buf.subarray(pos, nl).toString('latin1');
      pos = nl + 2;
      if (!/^\d{3}[ -]/.test(line) && !/^\d{3}$/.test(line)) throw new Error(`malformed reply line: ${JSON.stringify(line)}`);
      if (line[3] !== '-') return pos;
    }
  }

  /** Reads the next complete reply. */
  async reply(): Promise<SmtpReply> {
    let len = -1;
    await this.waitFor(() => (len = this.replyLength()) >= 0, 'a reply');
    const raw = this.buf.subarray(0, len).toString('utf8');
    this.buf = this.buf.subarray(len);
    const textLines = raw.split('\r\n').slice(0, -1);
    const code = Number(textLines[0]!.slice(0, 3));
    for (const l of textLines) {
      if (Number(l.slice(0, 3)) !== code) throw new Error(`reply lines with different codes: ${JSON.stringify(raw)}`);
    }
    const lines = textLines.map((l) => l.slice(4));
    const m = ENHANCED.exec(lines[0] ?? '');
    return { code, lines, raw, enhanced: m?.[1] };
  }

  /** Reads `n` replies. */
  async replies(n: number): Promise<SmtpReply[]> {
    const out: SmtpReply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.reply());
    return out;
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async cmd(line: string): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /**
   * One transaction: MAIL FROM, a RCPT TO for each of `to`, DATA, then `message` (dot-stuffed
   * already, without its last line end) and the final dot. `from` and each of `to` are what
   * follows the colon, parameters included (`<bob@example.test> NOTIFY=SUCCESS`). Throws when
   * MAIL, a RCPT or DATA is not accepted; resolves with the reply to the message.
   */
  async transaction(from: string, to: string[], message: string): Promise<SmtpReply> {
    for (const [line, code] of [[`MAIL FROM:${from}`, 250], ...to.map((t) => [`RCPT TO:${t}`, 250] as const), ['DATA', 354]] as const) {
      const r = await this.cmd(line);
      if (r.code !== code) throw new Error(`${line}: ${r.raw}`);
    }
    return this.cmd(`${message}\r\n.`);
  }

  async ehlo(name = 'client.example.net'): Promise<SmtpReply> {
    const r = await this.cmd(`EHLO ${name}`);
    if (r.code !== 250) throw new Error(`EHLO failed: ${r.raw}`);
    return r;
  }

  /** STARTTLS, the handshake (trusting `ca`), and nothing else (the caller sends EHLO again). */
  async starttls(ca: string | Buffer): Promise<SmtpReply> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) return r;
    await this.upgrade(ca);
    return r;
  }

  /** Runs the TLS handshake on the current socket (after the server's 220 to STARTTLS). */
  async upgrade(ca: string | Buffer): Promise<void> {
    const raw = this.socket;
    raw.off('data', this.onData);
    raw.off('close', this.onClose);
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: raw, ca, servername: 'mx.example.test' }, () => resolve(s));
      s.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  /** Waits for the server to close the connection; returns what it sent meanwhile. */
  async closedByServer(): Promise<string> {
    if (!this.isClosed) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`server did not close; unread: ${JSON.stringify(this.pending)}`)), this.timeoutMs);
        this.closeWaiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    const rest = this.pending;
    this.buf = Buffer.alloc(0);
    return rest;
  }

  /** QUIT and wait for the close. */
  async quit(): Promise<SmtpReply> {
    const r = await this.cmd('QUIT');
    await this.closedByServer();
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Base64 of a UTF-8 string (AUTH responses). */
export function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** The SASL PLAIN response for a user and password. */
export function plain(user: string, password: string): string {
  return b64(`\0${user}\0${password}`);
}
