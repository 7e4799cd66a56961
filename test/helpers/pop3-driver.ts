/**
 * Drives a sans-I/O Pop3Session in memory: a stand-in for the connection and the store that
 * performs its effects the way handler.ts does, from a maildrop of three messages, so every
 * protocol rule can be tested without sockets.
 */
import assert from 'node:assert/strict';
import type { Output } from '../../src/net/session.ts';
import type { LoginResult, Pop3Effect, Pop3Owner, Pop3Result } from '../../src/pop3/effects.ts';
import { Pop3Session, type Pop3SessionOptions } from '../../src/pop3/session.ts';

export const MESSAGES = [
  'Subject: one\r\n\r\nfirst\r\n',
  'Subject: two\r\n\r\n.starts with a dot\r\nsecond\r\n..two dots\r\n',
  'Subject: three\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n',
];

/** What a write or a stream step puts on the wire, as text. */
function text(data: string | Buffer | Buffer[]): string {
  return typeof data === 'string' ? data : Buffer.concat(Array.isArray(data) ? data : [data]).toString('latin1');
}

/** A stand-in for the connection and the store: performs effects the way handler.ts does. */
export class Pop3Driver {
  readonly s: Pop3Session;
  readonly owner: Pop3Owner = { client: { remoteAddress: '127.0.0.1' }, closed: false };
  out = '';
  closed = false;
  tlsUpgrades = 0;
  effects: Pop3Effect[] = [];
  login: (u: string, p: string) => LoginResult = (u, p) =>
    u === 'alice@example.test' && p === 'secret word'
      ? { type: 'ok', userId: 7, address: 'alice@example.test', entries: MESSAGES.map((m, i) => ({ uid: 10 + i * 5, size: m.length, receivedAt: 0 })) }
      : { type: 'auth-failed', disconnect: false };
  missing = new Set<number>();
  unreadable = new Set<number>();
  quitResult: Pop3Result = { type: 'committed' };
  /** Times the session left input for a later turn. */
  mores = 0;
  /** Outputs the session gave after it asked to close: none is right. */
  afterClose: Output<Pop3Effect>[] = [];

  constructor(o: Partial<Pop3SessionOptions> = {}) {
    this.s = new Pop3Session({ owner: this.owner, hostname: 'mx.example.test', stls: true, allowInsecure: true, maxLineLength: 512, ...o });
  }

  async run(outs: Output<Pop3Effect>[]): Promise<void> {
    for (const o of outs) {
      if (this.closed) {
        this.afterClose.push(o);
        continue;
      }
      switch (o.type) {
        case 'write': this.out += text(o.data); break;
        case 'stream': for await (const c of o.source) this.out += text(c); break;
        case 'close': this.closed = true; break;
        case 'more': this.mores++; await this.run(this.s.receive(Buffer.alloc(0))); break;
        case 'starttls':
          this.tlsUpgrades++;
          await this.run(this.s.tlsStarted({ protocol: 'TLSv1.3', cipher: 'x' }));
          break;
        case 'effect': {
          this.effects.push(o.effect);
          await this.run(this.s.resolve(this.perform(o.effect)));
          break;
        }
      }
    }
  }

  perform(e: Pop3Effect): Pop3Result {
    switch (e.type) {
      case 'login': return this.login(e.username, e.password);
      case 'retrieve': {
        if (this.missing.has(e.uid)) return { type: 'missing' };
        if (this.unreadable.has(e.uid)) return { type: 'failed' };
        const text = MESSAGES[(e.uid - 10) / 5]!;
        return { type: 'message', source: pieces(Buffer.from(text)) };
      }
      case 'quit': return this.quitResult;
    }
  }

  async greet(): Promise<string> {
    await this.run(this.s.start());
    return this.take();
  }

  /** Sends raw input; returns everything written in answer. */
  async send(data: string | Buffer): Promise<string> {
    await this.run(this.s.receive(Buffer.isBuffer(data) ? data : Buffer.from(data)));
    return this.take();
  }

  async cmd(line: string): Promise<string> {
    return this.send(line + '\r\n');
  }

  take(): string {
    const t = this.out;
    this.out = '';
    return t;
  }

  async loggedIn(): Promise<this> {
    await this.greet();
    assert.match(await this.cmd('USER alice@example.test'), /^\+OK/);
    assert.match(await this.cmd('PASS secret word'), /^\+OK maildrop has 3 messages/);
    return this;
  }
}

async function* pieces(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 7) yield b.subarray(i, i + 7);
}

