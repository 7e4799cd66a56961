/**
 * Random and mutated command lines fed to the SMTP session in every state: no exception
 * escapes, and every reply is a well-formed reply (RFC 5321 §4.2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isWellFormedReply } from '../helpers/smtp-reply.ts';
import { SmtpDriver } from '../helpers/smtp-driver.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Prefixes that bring a session into each state before the random input. */
const STATES: Record<string, string> = {
  greeted: '',
  helo: 'HELO c\r\n',
  ehlo: 'EHLO c\r\n',
  mail: 'EHLO c\r\nMAIL FROM:<a@remote.test>\r\n',
  rcpt: 'EHLO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n',
  data: 'EHLO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n',
  bdat: 'EHLO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 5\r\nab',
  auth: 'EHLO c\r\nAUTH LOGIN\r\n',
  authed: `EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`,
};

const VERBS = ['HELO', 'EHLO', 'MAIL FROM:', 'RCPT TO:', 'DATA', 'BDAT', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'EXPN', 'HELP', 'STARTTLS', 'AUTH', 'AUTH PLAIN', 'AUTH LOGIN', '.', '*'];

const word = fc.oneof(
  fc.constantFrom(...VERBS),
  fc.constantFrom('<>', '<alice@example.test>', '<x@remote.test>', '<"q"@example.test>', '<@a:b@c>', 'SIZE=1', 'SIZE=99999999', 'LAST', '0', '3', 'NOTIFY=NEVER', 'BODY=8BITMIME', 'SMTPUTF8', '=', 'AGFsaWNl'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
const line = fc.array(word, { minLength: 1, maxLength: 5 }).map((ws) => ws.join(' '));
const ending = fc.constantFrom('\r\n', '\n', '\r', '', '\r\r\n');
const input = fc.array(fc.tuple(line, ending).map(([l, e]) => l + e), { minLength: 1, maxLength: 12 });

function assertReplies(text: string): void {
  // Split the output into replies: a reply ends at a line whose 4th character is a space.
  let current = '';
  for (const l of text.split(/(?<=\r\n)/)) {
    if (l === '') continue;
    current += l;
    if (/^\d{3}( |\r\n)/.test(l) || /^334 /.test(l)) {
      if (!/^334 /.test(l)) assert.ok(isWellFormedReply(current), `malformed reply ${JSON.stringify(current)}`);
      current = '';
    }
  }
  assert.equal(current, '', `unterminated reply ${JSON.stringify(current)}`);
}

for (const [state, prefix] of Object.entries(STATES)) {
  for (const role of ['smtp', 'submission'] as const) {
    test(`random input in state ${state} (${role}): no exception, only well-formed replies`, () => {
      fc.assert(fc.property(input, fc.integer({ min: 1, max: 7 }), (lines, chunk) => {
        const d = new SmtpDriver({ role, allowInsecureAuth: true });
        d.send(prefix);
        const bytes = Buffer.from(lines.join(''), 'utf8');
        // Feed in pieces of varying size, as a network would.
        for (let i = 0; i < bytes.length; i += chunk) d.send(bytes.subarray(i, i + chunk));
        assertReplies(d.written);
        const summary = d.session.summary();
        assert.equal(typeof summary.outcome, 'string');
      }), { numRuns: 150 });
    });
  }
}

test('mutated valid dialogues never break the session', () => {
  const dialogue = 'EHLO c\r\nMAIL FROM:<a@remote.test> SIZE=20\r\nRCPT TO:<alice@example.test> NOTIFY=SUCCESS\r\nDATA\r\nSubject: s\r\n\r\n..x\r\n.\r\nBDAT 3 LAST\r\nabcQUIT\r\n';
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(dialogue.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (mutations) => {
    const bytes = Buffer.from(dialogue);
    for (const [at, value] of mutations) bytes[at] = value;
    const d = new SmtpDriver();
    d.send(bytes);
    assertReplies(d.written);
  }), { numRuns: 500 });
});
