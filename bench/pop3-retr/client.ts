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

/**
 * Parses a pipelined run of replies as they stream in, without keeping message bodies: status
 * lines are checked for +OK, bodies are scanned for CRLF "." CRLF (across chunk edges).
 */
class PipelineParser {
  private readonly steps: ('line' | 'body')[];
  private idx = 0;
  private lineBuf = '';
  private tail: Buffer = CRLF;
  bodyBytes = 0;
  bodies = 0;
  error: string | undefined;

  constructor(steps: ('line' | 'body')[]) {
    this.steps = steps;
  }

  get done(): boolean {
    return this.idx >= this.steps.length || this.error !== undefined;
  }

  feed(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && !this.done) {
      if (this.steps[this.idx] === 'line') {
        const i = chunk.indexOf(10, pos);
        if (i < 0) {
          this.lineBuf += chunk.toString('latin1', pos);
          return;
        }
        const line = this.lineBuf + chunk.toString('latin1', pos, i + 1);
        this.lineBuf = '';
        if (!line.startsWith('+OK')) this.error = line.trim();
        this.idx++;
        pos = i + 1;
        // A body follows: it may end at once with ".\r\n", as if after a line break.
        this.tail = CRLF;
        continue;
      }
      const head = chunk.subarray(pos, pos + 5);
      const joined = Buffer.concat([this.tail, head]);
      const j = joined.indexOf(END);
      let end = -1;
      if (j >= 0) end = pos + j + 5 - this.tail.length;
      else {
        const k = chunk.indexOf(END, pos);
        if (k >= 0) end = k + 5;
      }
      if (end >= 0) {
        this.bodyBytes += end - pos - 3;
        this.bodies++;
        this.idx++;
        pos = end;
        continue;
      }
      this.bodyBytes += chunk.length - pos;
      const rest = Buffer.concat([this.tail, chunk.subarray(Math.max(pos, chunk.length - 4))]);
      this.tail = rest.subarray(Math.max(0, rest.length - 4));
      return;
    }
  }
}

/** A full download: login (not timed), then LIST + every RETR + QUIT pipelined (timed). */
export async function download(port: number, user: string, password: string, count: number): Promise<DownloadResult> {
  const { socket, reader } = await connect(port);
  await login(socket, reader, user, password);
  socket.removeAllListeners('data');
  let cmds = 'LIST\r\n';
  const steps: ('line' | 'body')[] = ['line', 'body'];
  for (let n = 1; n <= count; n++) {
    cmds += `RETR ${n}\r\n`;
    steps.push('line', 'body');
  }
  cmds += 'QUIT\r\n';
  steps.push('line');
  const parser = new PipelineParser(steps);
  let bytes = 0;
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      parser.feed(d);
      if (parser.done) resolve();
    });
    socket.on('close', () => reject(new Error('connection closed early')));
    socket.write(cmds);
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  socket.destroy();
  if (parser.error) throw new Error(`server said: ${parser.error}`);
  // The LIST body is not a message.
  return { messages: parser.bodies - 1, bytes, bodyBytes: parser.bodyBytes, seconds };
}
