/** Lines made to fit 998 octets for mail written here: what changes, and what is left as it came. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitSubmittedLines, hasLongLine, UnfitLineError } from '../../src/mime/line-length.ts';

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

test('an address list written without spaces (a@x,b@x,...) is folded after its commas; commas in quoted names, comments and angle brackets stay as they are', () => {
  const list = Array.from({ length: 40 }, (_, i) => `customer.number${i}@remote.test`);
  const to = `"Doe,Jane" <jane@remote.test>,(a,comment)x@remote.test,<@relay.test,@other.test:route@remote.test>,${list.join(',')}`;
  const out = text(fitSubmittedLines([Buffer.from(`To: ${to}\r\nSubject: s\r\n\r\nbody\r\n`)]));
  const lines = out.split('\r\n');
  assert.ok(lines.length > 5 && lines.every((l) => l.length <= 998));
  // Unfolded, the value is the list with a space after each comma between its addresses.
  const unfolded = out.replace(/\r\n(?=[ \t])/g, '');
  assert.equal(unfolded, `To: "Doe,Jane" <jane@remote.test>, (a,comment)x@remote.test, <@relay.test,@other.test:route@remote.test>, ${list.join(', ')}\r\nSubject: s\r\n\r\nbody\r\n`);
  // Another field without white space is still refused (X-Blob above); so is one address too long.
  assert.throws(() => fitSubmittedLines([Buffer.from(`Cc: ${'c'.repeat(1000)}@remote.test\r\n\r\nx\r\n`)]), UnfitLineError);
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

test('a signed or encrypted message with a long line is refused, not re-encoded under its signature (RFC 1847 §2.1); a signature inside a mixed message too', () => {
  const signed = (outer: string) => `MIME-Version: 1.0\r\nContent-Type: ${outer}\r\n\r\n--S1\r\nContent-Type: text/plain\r\n\r\n${'x'.repeat(1200)}\r\n--S1\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--S1--\r\n`;
  for (const outer of ['multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="S1"', 'multipart/encrypted; protocol="application/pgp-encrypted"; boundary=S1']) {
    assert.throws(() => fitSubmittedLines([Buffer.from(signed(outer))]),
      (e: unknown) => e instanceof UnfitLineError && /^body line 4 is 1200 octets.*: a signed or encrypted message goes as it was signed \(RFC 1847 section 2\.1\)/.test(e.message), outer);
  }
  const inside = `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\nContent-Type: multipart/signed; protocol="application/pgp-signature"; boundary=S1\r\n\r\n--S1\r\nContent-Type: text/plain\r\n\r\n${'x'.repeat(1200)}\r\n--S1--\r\n--M--\r\n`;
  assert.throws(() => fitSubmittedLines([Buffer.from(inside)]), (e: unknown) => e instanceof UnfitLineError && /signed or encrypted/.test(e.message));
  // Nothing too long inside: it goes as it came.
  const fine = [Buffer.from(signed('multipart/signed; boundary=S1').replace('x'.repeat(1200), 'short'))];
  assert.equal(fitSubmittedLines(fine), fine);
});

test('a line is long past 998 octets before its CRLF (RFC 5322 §2.1.1), wherever the chunks cut it', () => {
  const line = (n: number) => `${'x'.repeat(n)}\r\n`;
  assert.equal(hasLongLine([Buffer.from(`a\r\n${line(998)}b\r\n`)]), false);
  assert.equal(hasLongLine([Buffer.from(`a\r\n${line(999)}b\r\n`)]), true);
  const cut = Buffer.from(`a\r\n${line(999)}`);
  assert.equal(hasLongLine([cut.subarray(0, 500), cut.subarray(500)]), true);
  const fits = Buffer.from(`a\r\n${line(998)}`);
  assert.equal(hasLongLine([fits.subarray(0, 500), fits.subarray(500, 1001), fits.subarray(1001)]), false);
  // A last line without its line end.
  assert.equal(hasLongLine([Buffer.from('x'.repeat(998))]), false);
  assert.equal(hasLongLine([Buffer.from('x'.repeat(999))]), true);
});
