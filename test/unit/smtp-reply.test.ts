/** Rendering SMTP replies: enhanced codes, characters replies may not hold, the line limit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderReply, reply } from '../../src/smtp/reply.ts';

test('a reply line over 512 octets with its CRLF is cut with "...", never inside a character (RFC 5321 §4.5.3.1.5)', () => {
  // Two-octet letters, and four-octet ones written as UTF-16 surrogate pairs, under SMTPUTF8.
  for (const text of ['é'.repeat(400), '😀'.repeat(200), `a${'😀'.repeat(200)}`]) {
    const line = renderReply(reply(550, '5.1.1', `<${text}@example.test>: no such user`), true, true);
    assert.ok(Buffer.byteLength(line) <= 512, `${Buffer.byteLength(line)} octets`);
    assert.match(line, /^550 5\.1\.1 <.*\.\.\.\r\n$/u);
    assert.equal(Buffer.from(line).toString('utf8'), line, 'a character cut in two');
  }
  // Each line of a multi-line reply on its own; short ones as they are.
  const multi = renderReply(reply(250, undefined, 'x'.repeat(600), 'short'), false);
  assert.deepEqual(multi.split('\r\n').map((l) => l.length), [510, 9, 0]);
  assert.ok(multi.endsWith('250 short\r\n'));
});
