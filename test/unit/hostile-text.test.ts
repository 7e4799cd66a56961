/**
 * Text a stranger sends, read in one pass: nested comments in a header field, long runs of spaces
 * and tabs at the end of a command or a delimiter line. Each case is what a reading that takes a
 * pass per nesting level, or a regular expression that tries `[ \t]+$` from every position,
 * spends seconds on (hundreds of thousands of characters); read here, it is milliseconds. The
 * results are checked, not the time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import PostalMime from 'postal-mime';
import { trimEndBlanks } from '../../src/ascii.ts';
import { atLineEnds, piecesAtLineEnds, readUntil } from '../../src/chunks.ts';
import { withoutForgedResults } from '../../src/delivery/auth-results.ts';
import { oneLine } from '../../src/delivery/smtp-client.ts';
import { withoutComments } from '../../src/mime/structured-value.ts';
import { fitSubmittedLines } from '../../src/mime/line-length.ts';
import { completeSubmission } from '../../src/mime/submission.ts';
import { parseCommand } from '../../src/pop3/command.ts';
import { SmtpDriver } from '../helpers/smtp-driver.ts';

const N = 200_000;

test('comments are removed in one pass, nested ones whole; quoted strings keep theirs; an unclosed one stays', () => {
  assert.equal(withoutComments('a (b (c) d) e'), 'a   e');
  assert.equal(withoutComments('"x (not a comment)" (one \\) two) y'), '"x (not a comment)"   y');
  assert.equal(withoutComments('"a \\" (still quoted)" z'), '"a \\" (still quoted)" z');
  assert.equal(withoutComments('mx (open (never closed'), 'mx (open (never closed');
  assert.equal(withoutComments(`${'('.repeat(N)}${')'.repeat(N)} mx.example.test; spf=pass`), '  mx.example.test; spf=pass');
});

test('an Authentication-Results field of deeply nested comments claiming our name is still found and removed', () => {
  const forged = `Authentication-Results: ${'('.repeat(N)}${')'.repeat(N)} mx.example.test; dmarc=pass\r\n`;
  const kept = 'Authentication-Results: elsewhere.test; spf=pass\r\n';
  const out = Buffer.concat(withoutForgedResults([Buffer.from(`${forged}${kept}Subject: s\r\n\r\nbody\r\n`)], 'mx.example.test')).toString();
  assert.equal(out, `${kept}Subject: s\r\n\r\nbody\r\n`);
});

test('spaces and tabs at the end are trimmed by a loop; POP3 arguments, VRFY\'s SMTPUTF8 and a multipart delimiter read the same as before', async () => {
  assert.equal(trimEndBlanks('a b \t \t'), 'a b');
  assert.equal(trimEndBlanks(`x${' \t'.repeat(N)}y`), `x${' \t'.repeat(N)}y`);
  assert.deepEqual(parseCommand(Buffer.from('RETR  1 \t ')).args, ['1']);
  assert.deepEqual(parseCommand(Buffer.from(`X ${' \t'.repeat(N)}y`)).args.at(-1), `\ty`);
  const d = new SmtpDriver({ role: 'smtp' });
  d.send('EHLO c\r\n');
  assert.equal(d.send(`VRFY x${' '.repeat(400)}y\r\n`), '252 2.5.0 Cannot verify the address, but will accept mail for local recipients\r\n');
  assert.equal(d.send('VRFY alice  SMTPUTF8  \r\n'), '252 2.5.0 Cannot verify the address, but will accept mail for local recipients\r\n');
  // A line of "--" and blanks inside a multipart is no delimiter; the real ones still are.
  const message = `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${'x'.repeat(1200)}\r\n--${' \t'.repeat(N)}y\r\n--b-- \t\r\n`;
  const fitted = Buffer.concat(fitSubmittedLines([Buffer.from(message)]));
  assert.match(fitted.toString('latin1'), /^--b\r\nContent-Type: text\/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n/m);
  assert.match(fitted.toString('latin1'), /\r\n--b-- \t\r\n$/);
  const read = await PostalMime.parse(fitted);
  // (Compared as a yes or no: a failure would print some 400,000 characters.)
  assert.ok(read.text?.replace(/\r\n/g, '\n').replace(/\n$/, '') === `${'x'.repeat(1200)}\n--${' \t'.repeat(N)}y`, 'the part\'s text is as written, the blank line in it');
});

test('a header field of thousands of continuation lines is taken as one stretch of the header, not copied line by line', () => {
  // 4,000 lines of 2,000 octets: copied line by line, some 16 GB of copying.
  const long = `X-Long: start${'\r\n '.concat('y'.repeat(2000)).repeat(4000)}\r\n`;
  const bcc = 'Bcc: hidden@example.test\r\n';
  const done = completeSubmission([Buffer.from(`${long}${bcc}Subject: s\r\n\r\nbody\r\n`)], { from: 'alice@example.test', hostname: 'mx.example.test', now: new Date(0) });
  const out = Buffer.concat(done.message).toString('latin1');
  assert.ok(out.startsWith(long), 'the long field whole and first');
  assert.ok(!out.includes('hidden@'), 'the Bcc removed after it');
  assert.deepEqual(done.originators, [{ field: 'From', address: 'alice@example.test' }]);
});

test('a queued message is read for its report until its header ends, wherever the empty line falls between pieces, each piece searched once', async () => {
  const message = Buffer.from('A: 1\r\nB: 2\r\n\r\nbody line\r\nmore\r\n');
  const end = message.indexOf('\r\n\r\n') + 4;
  for (let size = 1; size <= 6; size++) {
    const pieces = Array.from({ length: Math.ceil(message.length / size) }, (_, i) => message.subarray(i * size, (i + 1) * size));
    const read = await readUntil((async function* () { yield* pieces; })(), '\r\n\r\n', 1_000_000);
    assert.ok(read.length >= end && read.length < end + size, `pieces of ${size}: read ${read.length}`);
    assert.deepEqual(read.subarray(0, end), message.subarray(0, end));
    assert.deepEqual(await readUntil((async function* () { yield* pieces; })(), undefined, 1_000_000), message);
  }
  // A header that never ends: all of it, in pieces of 256 KiB, up to the limit.
  const headerOnly = Array.from({ length: 100 }, () => Buffer.from('X-Filler: '.concat('f'.repeat(2600), '\r\n').repeat(100)));
  assert.equal((await readUntil((async function* () { yield* headerOnly; })(), '\r\n\r\n', 100_000_000)).length, 100 * headerOnly[0]!.length);
});

test('a message is handed to DKIM in pieces that end lines, a long line whole, from a buffer or from pieces read', async () => {
  const long = 'y'.repeat(3 * 1024 * 1024);
  const message = Buffer.from(`Subject: s\r\n\r\n${'short line\r\n'.repeat(20_000)}${long}\r\nend\r\n${long}`);
  const longLine = Buffer.from(`${long}\r\n`);
  const check = (pieces: Buffer[]) => {
    assert.ok(Buffer.concat(pieces).equals(message));
    for (const p of pieces.slice(0, -1)) assert.equal(p[p.length - 1], 0x0a);
    assert.ok(pieces.some((p) => p.length >= longLine.length && p.includes(longLine)), 'the long line in one piece');
  };
  check([...atLineEnds(message)]);
  const read = async (of: Buffer, size: number) => {
    const pieces: Buffer[] = [];
    const source = Array.from({ length: Math.ceil(of.length / size) }, (_, i) => of.subarray(i * size, (i + 1) * size));
    for await (const p of piecesAtLineEnds((async function* () { yield* source; })())) pieces.push(p);
    return pieces;
  };
  for (const size of [1000, 256 * 1024]) check(await read(message, size));
  // Pieces of one and two octets: every line's end where it is, whatever the pieces.
  const small = Buffer.from('a\r\nbb\r\n\r\nccc\nd');
  for (const size of [1, 2]) {
    const pieces = await read(small, size);
    assert.ok(Buffer.concat(pieces).equals(small));
    assert.deepEqual(pieces.map(String), ['a\r\n', 'bb\r\n', '\r\n', 'ccc\n', 'd']);
  }
});

test('a next hop\'s reply of 170,000 short lines becomes one line of 500 characters from its beginning, controls and marks that turn text around as "?"', () => {
  const reply = `550-\u202eA\x1b[31m\r\n${'550-A\r\n'.repeat(170_000)}550 no`;
  const line = oneLine(reply);
  assert.equal(line.length, 500);
  assert.ok(line.startsWith('550-?A?[31m 550-A 550-A '), line.slice(0, 40));
});
