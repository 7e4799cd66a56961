import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DataReader } from '../../src/smtp/data-reader.ts';
import { MessageSink } from '../../src/smtp/message-sink.ts';

/** Feeds `input` in the given pieces; returns content, whether it ended and what followed. */
function read(pieces: string[]): { content: string; done: boolean; rest: string } {
  const r = new DataReader();
  let content = '';
  for (const [i, p] of pieces.entries()) {
    const step = r.feed(Buffer.from(p, 'latin1'));
    content += Buffer.concat(step.content).toString('latin1');
    if (step.done) return { content, done: true, rest: step.rest.toString('latin1') + pieces.slice(i + 1).join('') };
  }
  return { content, done: false, rest: '' };
}

test('end of data only at CRLF.CRLF; what follows is returned', () => {
  assert.deepEqual(read(['a\r\nb\r\n.\r\nQUIT\r\n']), { content: 'a\r\nb\r\n', done: true, rest: 'QUIT\r\n' });
  assert.deepEqual(read(['.\r\n']), { content: '', done: true, rest: '' });
});

test('dot-unstuffing removes exactly one leading dot', () => {
  assert.equal(read(['..\r\n...x\r\n.y\r\n.\r\n']).content, '.\r\n..x\r\ny\r\n');
});

for (const attack of ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r', '\r.\r\n', '\n.\r', '\r\n.\r']) {
  test(`${JSON.stringify(attack)} does not end the data`, () => {
    const r = read([`x${attack}MAIL FROM:<a@b.c>\r\n`]);
    assert.equal(r.done, false);
  });
}

test('any split of a message gives the same result', () => {
  const message = 'Subject: x\r\n\r\n.dot\r\n..two\r\nbare\nlf\r\n\r\n.\r\nNEXT';
  const whole = read([message]);
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: message.length }), { maxLength: 8 }), (cuts) => {
    const points = [...new Set(cuts)].sort((a, b) => a - b);
    const pieces: string[] = [];
    let last = 0;
    for (const p of points) { pieces.push(message.slice(last, p)); last = p; }
    pieces.push(message.slice(last));
    assert.deepEqual(read(pieces), whole);
  }));
});

test('stuffing then reading gives back any text made of CRLF lines', () => {
  fc.assert(fc.property(fc.array(fc.stringMatching(/^[^\r\n]*$/), { maxLength: 20 }), (lines) => {
    const text = lines.map((l) => `${l}\r\n`).join('');
    const stuffed = lines.map((l) => `${l.startsWith('.') ? '.' : ''}${l}\r\n`).join('') + '.\r\n';
    const r = read([stuffed]);
    assert.equal(r.done, true);
    assert.equal(r.content, text);
  }));
});

test('MessageSink: CRLF lines are fine, bare CR or LF anywhere is refused, across chunk borders too', () => {
  const verdict = (...chunks: string[]) => {
    const s = new MessageSink(1000);
    for (const c of chunks) s.add(Buffer.from(c));
    return s.finish();
  };
  assert.equal(verdict('a\r\n', 'b\r', '\nc\r\n'), 'ok');
  assert.equal(verdict('a\nb\r\n'), 'bare-newline');
  assert.equal(verdict('a\rb\r\n'), 'bare-newline');
  assert.equal(verdict('a\r', 'b\r\n'), 'bare-newline');
  assert.equal(verdict('\n'), 'bare-newline');
  assert.equal(verdict('a\r'), 'bare-newline');
});

test('MessageSink: a NUL anywhere is refused (RFC 2045 §2.8), after a bare line end in precedence', () => {
  const verdict = (...chunks: string[]) => {
    const s = new MessageSink(1000);
    for (const c of chunks) s.add(Buffer.from(c, 'latin1'));
    return s.finish();
  };
  assert.equal(verdict('a\r\n', '\0.\r\n'), 'nul');
  assert.equal(verdict('\0'), 'nul');
  assert.equal(verdict('a\0\nb\r\n'), 'bare-newline');
  assert.equal(verdict('\u00ff\u0080\r\n'), 'ok');
});

/** Data mode the slow way: byte by byte over the whole input, one line at a time. */
function referenceRead(input: string): { content: string; done: boolean; rest: string } {
  let content = '';
  let i = 0;
  while (i < input.length) {
    // i is at the start of a line (after a CRLF, or at the start)
    if (input.startsWith('.\r\n', i)) return { content, done: true, rest: input.slice(i + 3) };
    if (input[i] === '.') i++;
    const end = input.indexOf('\r\n', i);
    if (end < 0) return { content: content + input.slice(i), done: false, rest: '' };
    content += input.slice(i, end + 2);
    i = end + 2;
  }
  return { content, done: false, rest: '' };
}

/** Cuts `text` at the given points. */
function cut(text: string, points: number[]): string[] {
  const sorted = [...new Set(points.map((p) => p % (text.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let last = 0;
  for (const p of sorted) { pieces.push(text.slice(last, p)); last = p; }
  pieces.push(text.slice(last));
  return pieces;
}

const dataText = fc.array(fc.constantFrom('a', 'xyz', '.', '..', '\0', '\r', '\n', '\r\n', '\r\n.', '.\r\n', '\r\n.\r\n'), { maxLength: 30 })
  .map((t) => t.join(''));

test('DataReader agrees with a byte-by-byte reading, whatever the text and however it is cut', () => {
  fc.assert(fc.property(dataText, fc.array(fc.nat(), { maxLength: 6 }), (text, points) => {
    const expected = referenceRead(text);
    const got = read(cut(text, points));
    if (expected.done) {
      assert.deepEqual(got, expected);
    } else {
      // A line-start dot at the very end stays undecided, and its CR with it.
      assert.equal(got.done, false);
      assert.ok(expected.content.startsWith(got.content) && expected.content.length - got.content.length <= 1);
    }
  }), { numRuns: 2000 });
});

test('MessageSink agrees with a byte-by-byte check of the line ends, however the text is cut', () => {
  fc.assert(fc.property(dataText, fc.array(fc.nat(), { maxLength: 6 }), (text, points) => {
    let bare = false;
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '\r' && text[i + 1] !== '\n') bare = true;
      if (text[i] === '\n' && text[i - 1] !== '\r') bare = true;
    }
    const s = new MessageSink(1000);
    for (const piece of cut(text, points)) s.add(Buffer.from(piece, 'latin1'));
    assert.equal(s.finish(), bare ? 'bare-newline' : text.includes('\0') ? 'nul' : 'ok');
  }), { numRuns: 2000 });
});

test('MessageSink: past the limit nothing is kept', () => {
  const s = new MessageSink(10);
  s.add(Buffer.from('12345\r\n'));
  s.add(Buffer.from('12345\r\n'));
  assert.equal(s.finish(), 'too-big');
  assert.equal(s.size, 14);
  assert.deepEqual(s.take(), []);
});

test('MessageSink: a message of millions of tiny pieces (dot-stuffed lines, one-octet BDAT chunks) is kept in few, whole and in order', () => {
  const sink = new MessageSink(10_000_000);
  const reader = new DataReader();
  // 200,000 lines holding one dot each, stuffed: every line a piece of its own after unstuffing.
  const stuffed = Buffer.from('..\r\n'.repeat(200_000));
  for (let at = 0; at < stuffed.length; at += 65536) for (const c of reader.feed(stuffed.subarray(at, at + 65536)).content) sink.add(c);
  for (const c of reader.feed(Buffer.from('a large piece that ends it\r\n'.repeat(200))).content) sink.add(c);
  for (const byte of Buffer.from('then one octet at a time\r\n')) sink.add(Buffer.from([byte]));
  assert.equal(sink.finish(), 'ok');
  const parts = sink.take();
  assert.ok(parts.length < 100, `${parts.length} pieces kept`);
  assert.equal(Buffer.concat(parts).toString(), `${'.\r\n'.repeat(200_000)}${'a large piece that ends it\r\n'.repeat(200)}then one octet at a time\r\n`);
});
