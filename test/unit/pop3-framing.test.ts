import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DotStuffer, TopFilter, frameMessage, frameWhole } from '../../src/pop3/framing.ts';

async function collect(source: AsyncIterable<Buffer[]>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const batch of source) parts.push(...batch);
  return Buffer.concat(parts);
}

async function* chunks(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const n = Math.max(1, sizes[i++ % sizes.length] ?? data.length);
    yield data.subarray(pos, pos + n);
    pos += n;
  }
}

function stuffWhole(text: string): string {
  const s = new DotStuffer();
  const out: Buffer[] = [];
  s.push(Buffer.from(text, 'latin1'), out);
  s.end(out);
  return Buffer.concat(out).toString('latin1');
}

/** The client side of RFC 1939 §3: split lines, undo the stuffing, stop at ".". */
function unstuff(wire: string): string {
  const lines = wire.split('\r\n');
  const out: string[] = [];
  for (const l of lines) {
    if (l === '.') break;
    out.push(l.startsWith('.') ? l.slice(1) : l);
  }
  return out.join('\r\n') + '\r\n';
}

describe('byte-stuffing (RFC 1939 §3)', () => {
  it('doubles a leading dot on every line, including the first', () => {
    assert.equal(stuffWhole('.a\r\nb\r\n..c\r\n.\r\n'), '..a\r\nb\r\n...c\r\n..\r\n.\r\n');
  });

  it('leaves dots that do not start a line alone', () => {
    assert.equal(stuffWhole('a.b\r\n x.\r\n'), 'a.b\r\n x.\r\n.\r\n');
  });

  it('adds a line break before the terminator when the message lacks one', () => {
    assert.equal(stuffWhole('no newline'), 'no newline\r\n.\r\n');
    assert.equal(stuffWhole(''), '.\r\n');
  });

  it('stuffs lines after bare LF too', () => {
    assert.equal(stuffWhole('a\n.b\n'), 'a\n..b\n.\r\n');
  });

  it('gives the same bytes whatever the chunking (property)', async () => {
    const alphabet = fc.constantFrom('.', '\r\n', 'a', '\n', '\r', ' ');
    await fc.assert(fc.asyncProperty(fc.array(alphabet, { maxLength: 200 }), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 5 }), async (parts, sizes) => {
      const msg = Buffer.from(parts.join(''), 'latin1');
      const whole = await collect(frameMessage(chunks(msg, [msg.length]), { status: '+OK\r\n' }));
      const split = await collect(frameMessage(chunks(msg, sizes), { status: '+OK\r\n', batchBytes: 3 }));
      assert.deepEqual(split, whole);
    }));
  });

  it('round-trips CRLF messages through a client un-stuffing (property)', async () => {
    const line = fc.array(fc.constantFrom('.', 'a', ' ', '..'), { maxLength: 6 }).map((a) => a.join(''));
    await fc.assert(fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 30 }), async (lines) => {
      const msg = lines.join('\r\n') + '\r\n';
      const wire = (await collect(frameMessage(chunks(Buffer.from(msg), [5, 1, 9]), { status: '' }))).toString('latin1');
      assert.ok(wire.endsWith('\r\n.\r\n') || wire === '.\r\n');
      assert.equal(unstuff(wire), msg);
    }));
  });
});

describe('frameMessage', () => {
  it('sends status, message and terminator, a small message in one batch', async () => {
    const batches: Buffer[][] = [];
    for await (const b of frameMessage(chunks(Buffer.from('A: b\r\n\r\n.x\r\n'), [4]), { status: '+OK 13 octets\r\n' })) batches.push(b);
    assert.equal(batches.length, 1);
    assert.equal(Buffer.concat(batches[0]!).toString(), '+OK 13 octets\r\nA: b\r\n\r\n..x\r\n.\r\n');
  });

  it('hands a large message on in bounded batches', async () => {
    const big = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 99; i < big.length; i += 100) big[i] = 10;
    big[big.length - 1] = 10;
    let max = 0;
    let total = 0;
    for await (const b of frameMessage(chunks(big, [65536]), { status: '+OK\r\n', batchBytes: 65536 })) {
      const bytes = b.reduce((n, p) => n + p.length, 0);
      max = Math.max(max, bytes);
      total += bytes;
    }
    assert.ok(max <= 2 * 65536, `largest batch ${max}`);
    assert.equal(total, 5 + big.length + 3);
  });

  it('calls onStart and onEnd around the response', async () => {
    const calls: string[] = [];
    await collect(frameMessage(chunks(Buffer.from('x\r\n'), [1]), { status: '', onStart: () => calls.push('start'), onEnd: () => calls.push('end') }));
    assert.deepEqual(calls, ['start', 'end']);
  });

  it('a source that fails: no onStart before any byte is handed on, no onEnd after some were', async () => {
    async function* failing(good: Buffer[]): AsyncIterable<Buffer> {
      yield* good;
      throw new Error('the body is gone');
    }
    for (const [good, expected] of [[[], []], [[Buffer.alloc(70_000, 'a')], ['start']]] as const) {
      const calls: string[] = [];
      const framed = frameMessage(failing([...good]), { status: '+OK\r\n', onStart: () => calls.push('start'), onEnd: () => calls.push('end') });
      await assert.rejects(collect(framed), /the body is gone/);
      assert.deepEqual(calls, expected);
    }
  });
});

describe('frameMessage: recycling the source chunks', () => {
  /** The chunks the consumer has been given back, as seen each time it asks for the next batch. */
  async function backAt(source: Buffer[], o: { batchBytes: number; bodyLines?: number }): Promise<{ back: string[][]; wire: string }> {
    const recycled: Buffer[] = [];
    const names = new Map(source.map((c, i) => [c, `c${i}`]));
    const back: string[][] = [];
    const wire: Buffer[] = [];
    async function* from(): AsyncIterable<Buffer> { yield* source; }
    for await (const batch of frameMessage(from(), { status: '+OK\r\n', ...o, recycle: (c) => recycled.push(c) })) {
      back.push(recycled.map((c) => names.get(c)!));
      wire.push(...batch);
    }
    back.push(recycled.map((c) => names.get(c)!));
    return { back, wire: Buffer.concat(wire).toString('latin1') };
  }

  it('a chunk comes back only after the batch holding its slices, once the next is asked for', async () => {
    const source = ['aa\r\n.b', 'b\r\n', '.c\r\n', 'dddd\r\n'].map((t) => Buffer.from(t));
    // Batches close at 8 bytes: [status, c0] [c1, c2] [c3, terminator].
    const { back, wire } = await backAt(source, { batchBytes: 8 });
    assert.deepEqual(back, [[], ['c0'], ['c0', 'c1', 'c2'], ['c0', 'c1', 'c2', 'c3']]);
    assert.equal(wire, '+OK\r\naa\r\n..bb\r\n..c\r\ndddd\r\n.\r\n');
  });

  it('TOP that stops early gives back what it sent; a consumer that stops gives back nothing more', async () => {
    const source = ['S: x\r\n\r\nl1\r\n', 'l2\r\nl3\r\n', 'l4\r\n'].map((t) => Buffer.from(t));
    const { back } = await backAt(source, { batchBytes: 1000, bodyLines: 2 });
    assert.deepEqual(back.at(-1), ['c0', 'c1']);
    const recycled: Buffer[] = [];
    async function* from(): AsyncIterable<Buffer> { yield* source; }
    for await (const _ of frameMessage(from(), { status: '', batchBytes: 1, recycle: (c) => recycled.push(c) })) break;
    assert.deepEqual(recycled, []);
  });
});

describe('TOP (RFC 1939 §7)', () => {
  const msg = 'Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n.line2\r\nline3\r\n';

  async function top(text: string, n: number, sizes = [text.length || 1]): Promise<string> {
    return (await collect(frameMessage(chunks(Buffer.from(text), sizes), { status: '', bodyLines: n }))).toString();
  }

  it('sends the header and blank line for n = 0', async () => {
    assert.equal(await top(msg, 0), 'Subject: hi\r\nFrom: a@b\r\n\r\n.\r\n');
  });

  it('sends n body lines, byte-stuffed', async () => {
    assert.equal(await top(msg, 2), 'Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n..line2\r\n.\r\n');
  });

  it('sends the whole message when n exceeds the body', async () => {
    assert.equal(await top(msg, 50), msg.replace('\n.line2', '\n..line2') + '.\r\n');
  });

  it('sends a message without a blank line whole', async () => {
    assert.equal(await top('A: b\r\nC: d\r\n', 0), 'A: b\r\nC: d\r\n.\r\n');
  });

  it('finds the blank line across chunk boundaries, CR and LF split', async () => {
    for (let size = 1; size <= 7; size++) assert.equal(await top(msg, 1, [size]), 'Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n.\r\n', `chunk size ${size}`);
  });

  it('stops after the last wanted line even mid-chunk', () => {
    const f = new TopFilter(1);
    const out = f.push(Buffer.from(msg));
    assert.equal(out.toString(), 'Subject: hi\r\nFrom: a@b\r\n\r\nline1\r\n');
    assert.equal(f.done, true);
  });
});

describe('frameWhole', () => {
  it('gives exactly the bytes frameMessage streams, for RETR and TOP, however the parts are cut', async () => {
    const text = fc.array(fc.constantFrom('a', '.', '\r\n', '\r\n.', 'x y', '\r\n\r\n', '..'), { maxLength: 40 }).map((xs) => xs.join(''));
    await fc.assert(fc.asyncProperty(text, fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 }), fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }), async (t, sizes, lines) => {
      const o = { status: '+OK\r\n', ...(lines !== undefined ? { bodyLines: lines } : {}) };
      const parts: Buffer[] = [];
      for await (const p of chunks(Buffer.from(t, 'latin1'), sizes)) parts.push(p);
      const streamed = await collect(frameMessage(chunks(Buffer.from(t, 'latin1'), sizes), o));
      assert.deepEqual(Buffer.concat(frameWhole(parts, o)), streamed);
    }), { numRuns: 300 });
  });
});
