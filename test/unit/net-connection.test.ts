/**
 * The connection driver over real loopback sockets: an exception inside one session ends that
 * session with its last words, and a second session on the same listener never notices;
 * connection limits refuse with the protocol's line; a stream is sent batch by batch; replies
 * produced together are one write; busy connections' input is spread over turns of the loop.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { pino } from 'pino';
import { Connection } from '../../src/net/connection.ts';
import { IdleSweep } from '../../src/net/idle-sweep.ts';
import { ConnectionLimits, Listener, type ProtocolHandler } from '../../src/net/listener.ts';
import type { Output, Session } from '../../src/net/session.ts';
import { countTurns } from '../helpers/turns.ts';

type E = { kind: 'boom' } | { kind: 'echo'; text: string };

/** A tiny line protocol: "crash" throws inside the session, "effect-crash" throws in perform. */
class ToySession implements Session<E, string> {
  busy = false;
  start(): Output<E>[] { return [{ type: 'write', data: 'hello\r\n' }]; }
  receive(data: Buffer): Output<E>[] {
    const text = data.toString().trim();
    if (text === 'crash') throw new Error('deliberate');
    if (text === 'effect-crash') return [{ type: 'effect', effect: { kind: 'boom' } }];
    return [{ type: 'effect', effect: { kind: 'echo', text } }];
  }
  resolve(result: string): Output<E>[] { return [{ type: 'write', data: `${result}\r\n` }]; }
  tlsStarted(): Output<E>[] { return []; }
  timeout(): Output<E>[] { return [{ type: 'write', data: 'timeout\r\n' }, { type: 'close' }]; }
  shutdown(): Output<E>[] { return [{ type: 'write', data: 'bye\r\n' }, { type: 'close' }]; }
  failure(): Output<E>[] { return [{ type: 'write', data: 'internal error\r\n' }]; }
  summary() { return { outcome: 'x' }; }
}

const handler: ProtocolHandler<E, string> = {
  name: 'toy',
  pool: 'strangers',
  implicitTls: false,
  idleTimeoutMs: 60_000,
  createSession: () => new ToySession(),
  perform: async (e) => {
    if (e.kind === 'boom') throw new Error('effect failed');
    return `echo ${e.text}`;
  },
  refusal: (reason) => `refused: ${reason}\r\n`,
};

async function listen(limits = new ConnectionLimits(100, 100)) {
  const listener = new Listener(handler, { limits, log: pino({ level: 'silent' }) });
  const [address] = await listener.listen(['127.0.0.1:0']);
  return { listener, port: Number(address!.split(':')[1]) };
}

/** Connects, sends lines one by one, and returns everything received until the server closes or `wait` ms pass. */
function dialogue(port: number, lines: string[], wait = 300): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    let i = 0;
    s.on('data', (d) => {
      got += d;
      if (i < lines.length) s.write(`${lines[i++]}\r\n`);
    });
    const timer = setTimeout(() => { s.destroy(); resolve(got); }, wait);
    s.on('close', () => { clearTimeout(timer); resolve(got); });
  });
}

/** A server on which every connection drives the session `make` gives it; resolves with its port. */
async function serve(t: TestContext, make: (socket: net.Socket) => Session<E, string>): Promise<number> {
  const server = net.createServer((socket) => {
    new Connection<E, string>({
      socket, session: make(socket), perform: handler.perform, idle: new IdleSweep(60_000),
      log: pino({ level: 'silent' }), logFields: {}, onClose: () => {},
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

test('an exception in a session ends only that session, with its last words', async () => {
  const { listener, port } = await listen();
  const crashed = await dialogue(port, ['crash', 'after'], 2000);
  assert.equal(crashed, 'hello\r\ninternal error\r\n');
  const effectCrash = await dialogue(port, ['effect-crash', 'after'], 2000);
  assert.equal(effectCrash, 'hello\r\ninternal error\r\n');
  const fine = await dialogue(port, ['one', 'two']);
  assert.equal(fine, 'hello\r\necho one\r\necho two\r\n');
  listener.stopAccepting();
  listener.destroyAll();
});

/** A listener for `h` with a one-second idle limit, and a client connected to it; both end with the test. */
async function idleLimited(t: TestContext, h: ProtocolHandler<E, string>): Promise<{ listener: Listener<E, string>; s: net.Socket }> {
  const listener = new Listener({ ...h, idleTimeoutMs: 1000 }, { limits: new ConnectionLimits(10, 10), log: pino({ level: 'silent' }) });
  const [address] = await listener.listen(['127.0.0.1:0']);
  t.after(() => {
    listener.stopAccepting();
    listener.destroyAll();
  });
  const s = net.connect(Number(address!.split(':')[1]), '127.0.0.1');
  t.after(() => s.destroy());
  return { listener, s };
}

test('the idle limit: a client that keeps talking stays, a silent one gets the session\'s timeout words', { timeout: 10_000 }, async (t) => {
  const { s } = await idleLimited(t, handler);
  let got = '';
  s.on('data', (d) => { got += d; });
  const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
  // Six lines 200 ms apart, 1.2 s in all, past the limit of 1 s: never a second of silence, even
  // on a busy machine, so all are answered before the timeout's words.
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 200));
    s.write(`line ${i}\r\n`);
  }
  await closed;
  assert.match(got, /echo line 0\r\n[^]*echo line 5\r\ntimeout\r\n$/);
});

test('the idle limit holds for a client that stops reading: the connection ends, though its answer cannot go', { timeout: 15_000 }, async (t) => {
  // The answer is more than the kernel's buffers on both sides hold, for a client that reads nothing.
  const { listener, s } = await idleLimited(t, { ...handler, perform: async () => 'x'.repeat(32 << 20) });
  s.pause();
  const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
  s.on('error', () => undefined);
  s.write('line\r\n');
  // The server ends it: the socket closes although this side never reads.
  while (listener.open === 0) await new Promise((r) => setTimeout(r, 20));
  while (listener.open > 0) await new Promise((r) => setTimeout(r, 100));
  s.resume();
  await closed;
});

test('the idle limit holds for a client that said goodbye without reading its replies: the connection ends', { timeout: 15_000 }, async (t) => {
  // As an SMTP session after QUIT: its last words (more than the buffers hold), then no more
  // to say when the idle limit comes.
  class Leaving extends ToySession {
    override receive(): Output<E>[] { return [{ type: 'write', data: 'x'.repeat(32 << 20) }, { type: 'close' }]; }
    override timeout(): Output<E>[] { return []; }
  }
  const { listener, s } = await idleLimited(t, { ...handler, createSession: () => new Leaving() });
  s.pause();
  s.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
  s.write('quit\r\n');
  while (listener.open === 0) await new Promise((r) => setTimeout(r, 20));
  while (listener.open > 0) await new Promise((r) => setTimeout(r, 100));
  s.resume();
  await closed;
});

test('connection limits: total and per client address', async () => {
  const limits = new ConnectionLimits(100, 2);
  const { listener, port } = await listen(limits);
  const held = await Promise.all([0, 1].map(() => new Promise<net.Socket>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
  })));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await dialogue(port, [], 2000), 'refused: too many connections from 127.0.0.1\r\n');
  for (const s of held) s.destroy();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(limits.count, 0, 'slots are given back when connections close');
  assert.equal(await dialogue(port, ['x']), 'hello\r\necho x\r\n');
  listener.stopAccepting();
  listener.destroyAll();
});

test('a stream: the next batch is asked for only once the one before is on the network, even with a slow reader', { timeout: 30_000 }, async (t) => {
  // Batches under the socket's high-water mark: queued, they still leave room for more. An
  // empty one has no write to wait for.
  const batches = Array.from({ length: 600 }, (_, i) => (i === 300 ? [] : [Buffer.alloc(30_000, 97 + (i % 26)), Buffer.from(`|${i}|`)]));
  const queuedAtResume: number[] = [];
  const port = await serve(t, (socket) => {
    async function* source(): AsyncIterable<Buffer[]> {
      for (const b of batches) {
        yield b;
        queuedAtResume.push(socket.writableLength);
      }
    }
    const session = new ToySession();
    session.start = () => [{ type: 'stream', source: source() }, { type: 'close' }];
    return session;
  });
  const client = net.connect(port, '127.0.0.1');
  t.after(() => client.destroy());
  const got: Buffer[] = [];
  client.on('data', (d: Buffer) => got.push(d));
  // A reader that stops long enough for the kernel's buffers to fill, then now and then.
  client.pause();
  await new Promise((r) => setTimeout(r, 300));
  client.resume();
  const pauses = setInterval(() => {
    client.pause();
    setTimeout(() => client.resume(), 5);
  }, 20);
  t.after(() => clearInterval(pauses));
  await new Promise((r) => client.on('close', r));
  assert.equal(queuedAtResume.length, batches.length);
  assert.deepEqual(queuedAtResume.filter((n) => n !== 0), []);
  assert.ok(Buffer.concat(got).equals(Buffer.concat(batches.flat())));
});

test('replies produced together go to the socket as one write, also while the client does not read them', { timeout: 30_000 }, async (t) => {
  // Each line is answered with 2,048 replies, as a client pipelining 2,048 commands in one read
  // would be. Held as 2,048 queued writes while such a client did not read, a hundred clients
  // cost the server about a hundred megabytes.
  const reply = `${'r'.repeat(1022)}\r\n`;
  let received = 0;
  const writes: number[] = [];
  const port = await serve(t, (socket) => {
    const write = socket.write.bind(socket) as (data: string | Buffer, cb?: () => void) => boolean;
    socket.write = ((data: string | Buffer, cb?: () => void) => {
      writes.push(data.length);
      return write(data, cb);
    }) as typeof socket.write;
    const session = new ToySession();
    session.start = () => [];
    session.receive = () => {
      received++;
      return Array.from({ length: 2048 }, () => ({ type: 'write' as const, data: reply }));
    };
    return session;
  });
  const client = net.connect(port, '127.0.0.1');
  t.after(() => client.destroy());
  client.pause();
  for (let i = 0; i < 20; i++) {
    client.write(`line ${i}\r\n`);
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(received > 0 && received < 20, `${received} lines read from a client that reads nothing`);
  assert.deepEqual(writes, Array(received).fill(2048 * reply.length), 'one write of all 2,048 replies per line read');
});

test('input of busy connections is spread over turns of the event loop; a client that waits for each reply is not put behind them', { timeout: 30_000 }, async (t) => {
  // libuv accepts one connection a turn, and a reply leaves at the end of one. Each large read
  // here costs its session 4 ms; twenty clients send 1 MB each, which the system reads in
  // pieces of up to 64 KiB, up to 32 in a row per socket: unbudgeted, one turn took about 20.
  const turns = countTurns(t);
  const perTurn = new Map<number, number>();
  const talkerTurns: number[] = [];
  let received = 0;
  const port = await serve(t, () => {
    const session = new ToySession();
    session.start = () => [];
    session.receive = (data) => {
      if (data.length < 100) {
        talkerTurns.push(turns.turn);
        return [{ type: 'write', data: 'ok\r\n' }];
      }
      received += data.length;
      perTurn.set(turns.turn, (perTurn.get(turns.turn) ?? 0) + 1);
      const until = performance.now() + 4;
      while (performance.now() < until) { /* a session's work */ }
      return [];
    };
    return session;
  });
  const connect = () => new Promise<net.Socket>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
  });
  const [talker, ...flooders] = await Promise.all(Array.from({ length: 21 }, connect));
  t.after(() => { for (const c of [talker!, ...flooders]) c.destroy(); });
  for (const c of flooders) c.write(Buffer.alloc(1_000_000, 'x'));
  // The talker sends a line, waits for its reply, and so on, while the others are read.
  talker!.on('data', () => { if (received < 15_000_000) talker!.write('line\r\n'); });
  talker!.write('line\r\n');
  while (received < 20_000_000) await new Promise((r) => setTimeout(r, 20));
  // The 2 ms budget lets one large read through in the poll phase and one in the check phase,
  // where put-off input goes on.
  const most = Math.max(...perTurn.values());
  assert.ok(most <= 4, `${most} large reads in one turn`);
  // A small read goes at once: a reply and the next line take a turn or two, not a place
  // behind twenty others (ten turns and more).
  const gaps = talkerTurns.slice(1).map((n, i) => n - talkerTurns[i]!).sort((a, b) => a - b);
  assert.ok(gaps.length >= 10, `${gaps.length} lines from the talker`);
  assert.ok(gaps[Math.floor(gaps.length / 2)]! <= 3, `turns between the talker's lines: ${gaps.join(' ')}`);
});

test('a pipeline of effects done at once does not hold the event loop: a new client is greeted in the middle of it', { timeout: 30_000 }, async (t) => {
  /** One effect per line, the next line's once the last is answered, as SMTP's RCPT pipeline. */
  class Lines extends ToySession {
    private pending: string[] = [];
    override receive(data: Buffer): Output<E>[] {
      this.pending.push(...data.toString().split('\r\n').filter((l) => l !== ''));
      return this.next();
    }
    override resolve(result: string): Output<E>[] { return [{ type: 'write', data: `${result}\r\n` }, ...this.next()]; }
    private next(): Output<E>[] {
      const line = this.pending.shift();
      return line === undefined ? [] : [{ type: 'effect', effect: { kind: 'echo', text: line } }];
    }
  }
  // Each effect takes 2 ms of the event loop and is done at once, as a synchronous store lookup is.
  const perform = async (e: E) => {
    const until = performance.now() + 2;
    while (performance.now() < until);
    return e.kind === 'echo' ? `echo ${e.text}` : '';
  };
  const listener = new Listener({ ...handler, createSession: () => new Lines(), perform }, { limits: new ConnectionLimits(10, 10), log: pino({ level: 'silent' }) });
  const [address] = await listener.listen(['127.0.0.1:0']);
  const port = Number(address!.split(':')[1]);
  t.after(() => { listener.stopAccepting(); listener.destroyAll(); });
  const a = net.connect(port, '127.0.0.1');
  t.after(() => a.destroy());
  let answered = 0;
  let text = '';
  const first = new Promise<void>((resolve) => a.on('data', (d) => {
    text += d;
    answered = (text.match(/echo/g) ?? []).length;
    if (answered > 0) resolve();
  }));
  a.write(Array.from({ length: 400 }, (_, i) => `a${i}\r\n`).join(''));
  await first;
  // The pipeline takes 800 ms of work; a client that comes now is greeted long before its end.
  const b = net.connect(port, '127.0.0.1');
  t.after(() => b.destroy());
  const atGreeting = await new Promise<number>((resolve) => b.once('data', () => resolve(answered)));
  assert.ok(atGreeting < 400, `greeted only after all ${atGreeting} answers of the pipeline`);
  while (answered < 400) await new Promise((r) => setTimeout(r, 20));
});

/**
 * A server whose session answers its first input with an effect that ends only on `open()`,
 * and records every input it is given; a client connected to it, past the greeting, that has
 * sent `one` (the effect is under way).
 */
async function heldEffect(t: TestContext, opts: net.ServerOpts = {}) {
  const received: Buffer[] = [];
  class Recorder extends ToySession {
    override receive(data: Buffer): Output<E>[] {
      received.push(data);
      return received.length === 1 ? [{ type: 'effect', effect: { kind: 'echo', text: 'first' } }] : [];
    }
  }
  const gate = Promise.withResolvers<void>();
  let connection: Connection<E, string> | undefined;
  const server = net.createServer(opts, (socket) => {
    connection = new Connection<E, string>({
      socket, session: new Recorder(), idle: new IdleSweep(60_000),
      perform: async () => { await gate.promise; return 'done'; },
      log: pino({ level: 'silent' }), logFields: {}, onClose: () => {},
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.after(() => client.destroy());
  client.on('error', () => {});
  client.setNoDelay(true);
  let text = '';
  client.on('data', (d) => { text += d; });
  const until = async (ok: () => boolean) => { while (!ok()) await new Promise((r) => setTimeout(r, 10)); };
  await until(() => text.includes('hello'));
  client.write('one\r\n');
  await until(() => received.length === 1);
  return { client, received, until, open: () => gate.resolve(), answered: () => text.includes('done'), connection: () => connection! };
}

test('input that arrives while an effect is under way reaches the session in one piece once it ends', { timeout: 30_000 }, async (t) => {
  // What a session checks about the input it is given (SMTP's pipelining check: did the client
  // wait for its reply?) must see all of what came meanwhile, not one TCP segment of it.
  const h = await heldEffect(t);
  // Three writes, apart in time, so that they arrive as three reads while the effect holds.
  for (const line of ['two\r\n', 'three\r\n', 'four\r\n']) {
    h.client.write(line);
    await new Promise((r) => setTimeout(r, 50));
  }
  h.open();
  await h.until(() => h.answered() && h.received.length >= 2);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(h.received.map(String), ['one\r\n', 'two\r\nthree\r\nfour\r\n']);
});

test('input held while an effect is under way goes on 64 KiB at most at once; none of it is lost or reordered', { timeout: 30_000 }, async (t) => {
  const h = await heldEffect(t, { highWaterMark: 256 * 1024 });
  // 200 KiB while the effect holds: more than the server's socket buffers one read at a time.
  const sent = Buffer.from(Array.from({ length: 200 * 1024 / 8 }, (_, i) => String(i).padStart(8, '0')).join(''));
  h.client.write(sent);
  await new Promise((r) => setTimeout(r, 300));
  h.open();
  const got = () => Buffer.concat(h.received.slice(1));
  await h.until(() => got().length >= sent.length);
  for (const piece of h.received.slice(1)) assert.ok(piece.length <= 64 * 1024, `${piece.length} bytes at once`);
  assert.ok(h.received[1]!.length > 16 * 1024, `the held input went on in pieces of ${h.received[1]!.length}`);
  assert.ok(got().equals(sent));
});

test('input held when the connection is ended goes nowhere: the session is given nothing more', { timeout: 30_000 }, async (t) => {
  const h = await heldEffect(t);
  h.client.write('two\r\n');
  await new Promise((r) => setTimeout(r, 100));
  // Ended (the shutdown's grace ran out) just as the effect ends.
  h.connection().destroy();
  h.open();
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(h.received.map(String), ['one\r\n']);
});
