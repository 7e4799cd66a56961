/** Lines made to fit 998 octets for mail written here: what changes, and what is left as it came. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitSubmittedLines, UnfitLineError } from '../../src/mime/line-length.ts';

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('latin1');

test('a message whose lines fit is the same chunks', () => {
  const message = [Buffer.from('Subject: s\r\n\r\n'), Buffer.from(`${'x'.repeat(998)}\r\n`)];
  assert.equal(fitSubmittedLines(message), message);
});

test('a long header line is folded, and an 8-bit body outside MIME is left as it came', () => {
  const subject = 'word '.repeat(300).trim();
  const out = text(fitSubmittedLines([Buffer.from(`Subject: ${subject}\r\n\r\nK\u00f6ln\r\n`, 'latin1')]));
  assert.ok(out.split('\r\n').every((l) => l.length <= 998));
  assert.equal(out.replace(/\r\n(?=[ \t])/g, ''), `Subject: ${subject}\r\n\r\nK\u00f6ln\r\n`);
});

test('one text part without a Content-Type gets the charset of its text when it becomes quoted-printable', () => {
  const body = `${'\u00e9'.repeat(600)}`;
  const out = text(fitSubmittedLines([Buffer.from(`MIME-Version: 1.0\r\nSubject: s\r\n\r\n${body}\r\n`, 'utf8')]));
  assert.match(out, /^MIME-Version: 1\.0\r\nSubject: s\r\nContent-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n/);
});

test('a last line of 999 octets without its line end is too long too', () => {
  const out = text(fitSubmittedLines([Buffer.from(`Subject: s\r\n\r\n${'x'.repeat(999)}`)]));
  assert.match(out, /Content-Transfer-Encoding: quoted-printable\r\n\r\n/);
});

test('a header run without white space too long for a line is refused, with advice for a header', () => {
  assert.throws(() => fitSubmittedLines([Buffer.from(`X-Blob: ${'b'.repeat(1200)}\r\n\r\nx\r\n`)]),
    (e: unknown) => e instanceof UnfitLineError && /^header X-Blob has 1200 octets without white space, .*: shorten it, or encode it \(RFC 2047\)$/.test(e.message));
});

test('quoted-printable made here has no line that begins with "-", so none reads as a multipart delimiter (RFC 2046 §5.1.1), and decodes to the text', () => {
  const body = `--not-a-boundary\r\n${'a'.repeat(73)}${'-'.repeat(1000)}\r\n-\r\nend`;
  for (const head of ['Subject: s\r\n', 'MIME-Version: 1.0\r\nContent-Type: text/plain\r\nSubject: s\r\n']) {
    const out = text(fitSubmittedLines([Buffer.from(`${head}\r\n${body}\r\n`)]));
    const qp = out.slice(out.indexOf('\r\n\r\n') + 4);
    const lines = qp.split('\r\n');
    assert.ok(lines.every((l) => !l.startsWith('-') && l.length <= 76), qp);
    assert.ok(lines.filter((l) => l.startsWith('=2D')).length >= 3, qp);
    assert.equal(qp.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), `${body}\r\n`);
  }
});
