/**
 * POP3 test helpers: a raw client over a real socket (for pipelining, exact replies and dropped
 * connections), mail sent through the SMTP listener with python's smtplib, and the Debian POP3
 * client mpop, installed when missing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { python } from './server.ts';

export class RawPop3 {
  private socket: net.Socket;
  private buffer = '';
  private waiter: (() => void) | undefined;
  ended = false;

  /** This end's port, by which the server's side of the connection is found. */
  get localPort(): number {
    return this.socket.localPort!;
  }

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach();
  }

  private attach(): void {
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.buffer += d;
      this.waiter?.();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
    this.socket.on('error', () => {});
  }

  /** Connects and reads the greeting. */
  static async connect(port: number, o: { tls?: boolean; ca?: Buffer } = {}): Promise<{ client: RawPop3; greeting: string }> {
    const socket = o.tls
      ? tls.connect({ host: '127.0.0.1', port, ca: o.ca, servername: 'localhost' })
      : net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once(o.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    const client = new RawPop3(socket);
    return { client, greeting: await client.line() };
  }

  /** Waits until `n` bytes or a complete match are buffered, then takes them. */
  private async until(find: (buf: string) => number): Promise<string> {
    for (;;) {
      const end = find(this.buffer);
      if (end >= 0) {
        const out = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end);
        return out;
      }
      if (this.ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer.slice(0, 200))}`);
      await new Promise<void>((r) => { this.waiter = r; });
      this.waiter = undefined;
    }
  }

  /** One reply line, without CRLF. */
  async line(): Promise<string> {
    const l = await this.until((b) => { const i = b.indexOf('\r\n'); return i < 0 ? -1 : i + 2; });
    return l.slice(0, -2);
  }

  /** A status line and, when it is +OK, the multi-line body up to "." (as sent, still stuffed). */
  async multi(): Promise<{ status: string; body: string }> {
    const status = await this.line();
    if (!status.startsWith('+OK')) return { status, body: '' };
    const body = await this.until((b) => {
      if (b.startsWith('.\r\n')) return 3;
      const i = b.indexOf('\r\n.\r\n');
      return i < 0 ? -1 : i + 5;
    });
    return { status, body: body.slice(0, -3) };
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  async command(line: string): Promise<string> {
    this.send(line + '\r\n');
    return this.line();
  }

  /** Everything until the server closes. */
  async rest(): Promise<string> {
    return this.until((b) => (this.ended ? b.length : -1));
  }

  async stls(ca: Buffer): Promise<string> {
    const reply = await this.command('STLS');
    if (!reply.startsWith('+OK')) return reply;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    const secure = tls.connect({ socket: this.socket, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach();
    return reply;
  }

  /** Drops the connection without QUIT. */
  drop(): void {
    this.socket.destroy();
  }

  async closed(): Promise<void> {
    await this.until((b) => (this.ended ? b.length : -1));
  }
}

/** Undoes RFC 1939 byte-stuffing of a multi-line body (as returned by RawPop3.multi). */
export function unstuff(body: string): string {
  return body.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n');
}

/** Sends messages through the SMTP listener (python smtplib); `messages` are raw bytes in latin1. */
export function smtpSend(port: number, from: string, to: string, messages: Buffer[]): void {
  const r = python(`
import smtplib, sys, base64
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
for b in sys.stdin.read().split():
    s.sendmail(sys.argv[2], [sys.argv[3]], base64.b64decode(b))
s.quit()
`, [String(port), from, to], messages.map((m) => m.toString('base64')).join('\n'));
  if (r.status !== 0) throw new Error(`smtplib failed: ${r.stderr}`);
}

/**
 * A MIME message with a binary attachment and lines starting with ".", built by python's email
 * package (SMTP policy: CRLF line ends), returned as the exact bytes.
 */
export function mimeMessage(seed: number, attachmentBytes: number): Buffer {
  const r = python(`
import sys, random, email.message, email.policy
rnd = random.Random(int(sys.argv[1]))
m = email.message.EmailMessage(policy=email.policy.SMTP)
m['From'] = 'Bob <bob@example.org>'
m['To'] = 'alice@example.test'
m['Subject'] = 'Report %s with attachment' % sys.argv[1]
m.set_content('Hello,\\n.this line starts with a dot\\n..and this with two\\n.\\nbye\\n')
m.add_attachment(bytes(rnd.getrandbits(8) for _ in range(int(sys.argv[2]))), maintype='application', subtype='octet-stream', filename='data-%s.bin' % sys.argv[1])
m.add_attachment('résumé,text\\n.1,2\\n', subtype='csv', filename='notes.csv')
sys.stdout.buffer.write(m.as_bytes())
`, [String(seed), String(attachmentBytes)]);
  if (r.status !== 0) throw new Error(`email build failed: ${r.stderr}`);
  return Buffer.from(r.stdout, 'utf8');
}

/**
 * The mpop binary, installed with apt-get when missing (as root). Returns undefined with the
 * reason when it cannot be had.
 */
export function ensureMpop(): { path: string } | { missing: string } {
  const has = () => spawnSync('mpop', ['--version'], { encoding: 'utf8' }).status === 0;
  if (has()) return { path: 'mpop' };
  if (process.getuid?.() !== 0) return { missing: 'mpop is not installed and the tests do not run as root to install it (apt-get install mpop)' };
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-q', 'mpop'], { encoding: 'utf8', env, timeout: 300_000 });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { encoding: 'utf8', env, timeout: 300_000 });
    r = spawnSync('apt-get', ['install', '-y', '-q', 'mpop'], { encoding: 'utf8', env, timeout: 300_000 });
  }
  return has() ? { path: 'mpop' } : { missing: `mpop could not be installed: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}` };
}

/** Creates users straight in the store of `dataDir` (quicker than one CLI process each). */
export async function createUsers(dataDir: string, users: [address: string, password: string][]): Promise<void> {
  const { SqliteStore } = await import('../../src/store/sqlite/sqlite-store.ts');
  const { hashPassword } = await import('../../src/auth/password.ts');
  const store = new SqliteStore(dataDir);
  try {
    for (const [address, password] of users) await store.createUser(address, await hashPassword(password));
  } finally {
    store.close();
  }
}

/**
 * `sizes.length` messages of those sizes for `user`@example.test (created, password "`user`
 * pass"), stored straight in `dataDir`. Each line names its message; some need stuffing.
 */
export async function storeBig(dataDir: string, user: string, sizes: number[]): Promise<Buffer[]> {
  const line = (i: number, n: number) => `${n % 37 === 0 ? '.' : ''}message ${i} line ${n} ${'abcdefghij'.repeat(6)}\r\n`;
  const messages = sizes.map((size, i) => {
    const lines: string[] = [`Subject: big ${i}\r\n\r\n`];
    for (let n = 0, len = lines[0]!.length; len < size; n++) {
      lines.push(line(i, n));
      len += lines[lines.length - 1]!.length;
    }
    return Buffer.from(lines.join(''), 'latin1');
  });
  await createUsers(dataDir, [[`${user}@example.test`, `${user} pass`]]);
  const { SqliteStore } = await import('../../src/store/sqlite/sqlite-store.ts');
  const { newQueueId } = await import('../../src/store/queue-id.ts');
  const store = new SqliteStore(dataDir);
  try {
    const owner = (await store.findUser(`${user}@example.test`))!;
    for (const body of messages) {
      await store.accept({ id: newQueueId(), body: [body], sender: 'bob@example.org', local: [{ userId: owner.id, prefix: Buffer.alloc(0) }] });
    }
  } finally {
    store.close();
  }
  return messages;
}

/** The replies to RETR 1..n and QUIT (as received, in latin1), checked message by message against `messages`. */
export function assertDownload(wire: string, messages: Buffer[]): void {
  for (const [i, sent] of messages.entries()) {
    const status = wire.slice(0, wire.indexOf('\r\n'));
    assert.equal(status, `+OK ${sent.length} octets`, `message ${i + 1}`);
    const end = wire.indexOf('\r\n.\r\n');
    assert.equal(unstuff(wire.slice(status.length + 2, end + 2)), sent.toString('latin1'), `message ${i + 1} arrives whole`);
    wire = wire.slice(end + 5);
  }
  assert.match(wire, /^\+OK mailnest POP3 server signing off/);
}
