/**
 * A pipelining POP3 client for the benchmark: logs in, then sends LIST, every RETR and QUIT in
 * one write and parses the responses as they stream in (status line, then the body up to
 * CRLF "." CRLF), counting messages and bytes.
 */
import net from 'node:net';

const END = Buffer.from('\r\n.\r\n');
const CRLF = Buffer.from('\r\n');

export interface DownloadResult {
  messages: number;
  /** Octets of the RETR responses (status lines, stuffed bodies, terminators). */
  bytes: number;
  /** Octets of message bodies as received (still stuffed, without terminators). */
  bodyBytes: number;
  seconds: number;
}

/** Reads replies off a socket: single lines and multi-line bodies, from Buffers. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private closed = false;
  total = 0;

  constructor(socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.total += d.length;
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('close', () => { this.closed = true; this.wake?.(); });
    socket.on('error', () => {});
  }

  private async more(): Promise<void> {
    if (this.closed) throw new Error('connection closed early');
    await new Promise<void>((r) => { this.wake = r; });
    this.wake = undefined;
  }

  async line(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf(CRLF);
      if (i >= 0) {
        const l = this.buf.toString('latin1', 0, i);
        this.buf = this.buf.subarray(i + 2);
        return l;
      }
      await this.more();
    }
  }

  /** The body of a multi-line response; returns its length (without the terminator). */
  async body(): Promise<number> {
    let seen = 0;
    for (;;) {
      if (seen === 0 && this.buf.length >= 3 && this.buf[0] === 0x2e && this.buf[1] === 13 && this.buf[2] === 10) {
        this.buf = this.buf.subarray(3);
        return 0;
      }
      // Search only the part not searched yet (keeping 4 bytes of overlap).
      const from = Math.max(0, seen - 4);
      const i = this.buf.indexOf(END, from);
      if (i >= 0) {
        this.buf = this.buf.subarray(i + 5);
        return i + 2;
      }
      seen = this.buf.length;
      await this.more();
    }
  }
}

export async function connect(port: number): Promise<{ socket: net.Socket; reader: Reader }> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const reader = new Reader(socket);
  const greeting = await reader.line();
  if (!greeting.startsWith('+OK')) throw new Error(`greeting: ${greeting}`);
  return { socket, reader };
}

export async function login(socket: net.Socket, reader: Reader, user: string, password: string): Promise<string> {
  socket.write(`USER ${user}\r\n`);
  const u = await reader.line();
  if (!u.startsWith('+OK')) throw new Error(`USER: ${u}`);
  socket.write(`PASS ${password}\r\n`);
  const p = await reader.line();
  if (!p.startsWith('+OK')) throw new Error(`PASS: ${p}`);
  return p;
}

/** A full download: login (not timed), then LIST + every RETR + QUIT pipelined (timed). */
export async function download(port: number, user: string, password: string, count: number): Promise<DownloadResult> {
  const { socket, reader } = await connect(port);
  await login(socket, reader, user, password);
  let cmds = 'LIST\r\n';
  for (let n = 1; n <= count; n++) cmds += `RETR ${n}\r\n`;
  cmds += 'QUIT\r\n';
  const start = process.hrtime.bigint();
  const before = reader.total;
  socket.write(cmds);
  const list = await reader.line();
  if (!list.startsWith('+OK')) throw new Error(`LIST: ${list}`);
  await reader.body();
  let bodyBytes = 0;
  for (let n = 1; n <= count; n++) {
    const status = await reader.line();
    if (!status.startsWith('+OK')) throw new Error(`RETR ${n}: ${status}`);
    bodyBytes += await reader.body();
  }
  const quit = await reader.line();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (!quit.startsWith('+OK')) throw new Error(`QUIT: ${quit}`);
  socket.destroy();
  return { messages: count, bytes: reader.total - before, bodyBytes, seconds };
}
