import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BodyBudget } from '../../src/smtp/body-budget.ts';
import { SmtpDriver, WORLD, bodyOf } from '../helpers/smtp-driver.ts';
import { isAsciiReply } from '../helpers/smtp-reply.ts';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Brings a fresh session into a named state. */
function inState(state: string, opts: ConstructorParameters<typeof SmtpDriver>[0] = {}): SmtpDriver {
  const d = new SmtpDriver(opts);
  if (state === 'greeted') return d;
  d.send('EHLO client.test\r\n');
  if (state === 'ehlo') return d;
  d.send('MAIL FROM:<sender@remote.test>\r\n');
  if (state === 'mail') return d;
  d.send('RCPT TO:<alice@example.test>\r\n');
  if (state === 'rcpt') return d;
  throw new Error(state);
}

const lastCode = (text: string) => Number(text.trimEnd().split('\r\n').at(-1)!.slice(0, 3));

// Every state × command, for the MX role and for submission: the final reply code of each
// command given in that state ("c": the session then closes). Order and syntax: RFC 5321 §4.1.4
// and §4.3.2 (503 out of sequence, 501 bad arguments, 500 unknown, 502 known but not done), §3.3
// (554 no valid recipients); AUTH RFC 4954 §4 and §6 (503 in a transaction or twice, 504 unknown
// mechanism, 538 without TLS); STARTTLS RFC 3207 §4 (501 with an argument); BDAT RFC 3030 §2.
const COMMANDS = [
  'HELO c.test', 'EHLO c.test', 'MAIL FROM:<alice@example.test>', 'RCPT TO:<alice@example.test>', 'DATA', 'BDAT 0 LAST',
  'RSET', 'NOOP', 'QUIT', 'VRFY alice@example.test', 'EXPN team@example.test', 'HELP', `AUTH PLAIN ${b64('\0alice@example.test\0secret')}`,
  'STARTTLS', 'FOO', 'TURN',
  // Bad arguments. A BDAT size that cannot be read leaves no way to tell its chunk from commands.
  'HELO', 'MAIL FROM:a@remote.test', 'RCPT TO:<>', 'DATA x', 'BDAT x', 'RSET x', 'NOOP x', 'QUIT x', 'VRFY', 'EXPN',
  'HELP DATA', 'AUTH', 'AUTH FOO', 'STARTTLS x',
];
const TLS = { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' };
const MX = ['EHLO c.test', 'MAIL FROM:<s@remote.test>', 'RCPT TO:<alice@example.test>'];
const AUTHED = ['EHLO c.test', `AUTH PLAIN ${b64('\0alice@example.test\0secret')}`, 'MAIL FROM:<alice@example.test>', 'RCPT TO:<x@remote.test>'];
const STATES: Record<string, [opts: ConstructorParameters<typeof SmtpDriver>[0], before: string[]]> = {
  'mx, greeted': [{}, []],
  'mx, after HELO': [{}, ['HELO c.test']],
  'mx, after EHLO': [{}, MX.slice(0, 1)],
  'mx, after MAIL': [{}, MX.slice(0, 2)],
  'mx, after RCPT': [{}, MX],
  'mx, after a BDAT chunk': [{}, [...MX, 'BDAT 4\r\nab']],
  'submission, no TLS': [{ role: 'submission' }, AUTHED.slice(0, 1)],
  'submission, TLS': [{ role: 'submission', tls: TLS }, AUTHED.slice(0, 1)],
  'submission, after AUTH': [{ role: 'submission', tls: TLS }, AUTHED.slice(0, 2)],
  'submission, after MAIL': [{ role: 'submission', tls: TLS }, AUTHED.slice(0, 3)],
  'submission, after RCPT': [{ role: 'submission', tls: TLS }, AUTHED],
};
const MATRIX: [state: string, codes: string][] = [
  //                           HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP AUTH STLS FOO  TURN   HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP AUTH AUTH STLS
  ['mx, greeted',             '250  250  503  503  503  503  250  250  221c 252  252  214  503  220  500  502   501  503  503  501  421c 501  250  221c 501  501  214  503  503  501'],
  ['mx, after HELO',          '250  250  250  503  503  503  250  250  221c 252  252  214  503  220  500  502   501  501  503  501  421c 501  250  221c 501  501  214  503  503  501'],
  ['mx, after EHLO',          '250  250  250  503  503  503  250  250  221c 252  252  214  538  220  500  502   501  501  503  501  421c 501  250  221c 501  501  214  501  504  501'],
  ['mx, after MAIL',          '250  250  503  250  554  554  250  250  221c 252  252  214  503  220  500  502   501  503  501  501  421c 501  250  221c 501  501  214  503  503  501'],
  ['mx, after RCPT',          '250  250  503  250  354  250  250  250  221c 252  252  214  503  220  500  502   501  503  501  501  421c 501  250  221c 501  501  214  503  503  501'],
  ['mx, after a BDAT chunk',  '250  250  503  503  503  250  250  250  221c 252  252  214  503  220  500  502   501  503  503  501  421c 501  250  221c 501  501  214  503  503  501'],
  ['submission, no TLS',      '250  250  530  503  503  503  250  250  221c 252  252  214  538  220  500  502   501  530  503  501  421c 501  250  221c 501  501  214  501  504  501'],
  ['submission, TLS',         '250  250  530  503  503  503  250  250  221c 252  252  214  235  503  500  502   501  530  503  501  421c 501  250  221c 501  501  214  501  504  501'],
  ['submission, after AUTH',  '250  250  250  503  503  503  250  250  221c 250  250  214  503  503  500  502   501  501  503  501  421c 501  250  221c 501  501  214  503  503  501'],
  ['submission, after MAIL',  '250  250  503  250  554  554  250  250  221c 250  250  214  503  503  500  502   501  503  501  501  421c 501  250  221c 501  501  214  503  503  501'],
  ['submission, after RCPT',  '250  250  503  250  354  250  250  250  221c 250  250  214  503  503  500  502   501  503  501  501  421c 501  250  221c 501  501  214  503  503  501'],
];

for (const [state, codes] of MATRIX) {
  const [opts, before] = STATES[state]!;
  test(`every command in state "${state}" gets its reply code`, () => {
    const got = COMMANDS.map((line) => {
      const d = new SmtpDriver(opts);
      for (const b of before) assert.match(d.send(`${b}\r\n`), /^2\d\d /m, b);
      const reply = d.send(`${line}\r\n`);
      return `${lastCode(reply)}${d.closed ? 'c' : ''}`;
    });
    assert.deepEqual(got, codes.split(/\s+/), COMMANDS.map((c, i) => `${c} -> ${got[i]}`).join('\n'));
  });
}

test('reply text is printable ASCII, echoes of the client included; UTF-8 only within an SMTPUTF8 transaction (RFC 5321 §4.2, RFC 6531 §3.7.4.2)', () => {
  const d = new SmtpDriver();
  d.send('EHLO c\r\n');
  const replies = [d.send('MAIL FROM:<a@remote.test> X-\u00dcBER=1\r\n')];
  d.send('MAIL FROM:<a@remote.test>\r\n');
  replies.push(d.send('RCPT TO:<alice@example.test> NOTIFY=BOGUS\r\n'), d.send('RCPT TO:<alice@example.test> ORCPT=x\r\n'));
  d.send('RCPT TO:<alice@example.test>\r\n');
  d.send('DATA\r\n');
  replies.push(d.send('Subject: x\r\n\r\nbare\nline\r\n.\r\n'));
  replies.push(d.send('AUTH \u00dcBER\r\n'));
  assert.deepEqual(replies.map((r) => r.slice(0, 3)), ['501', '501', '501', '550', '504']);
  for (const r of replies) assert.ok(isAsciiReply(r), JSON.stringify(r));
  assert.match(replies[0]!, /bad parameter "X-\?BER=1"/);
  assert.match(replies[4]!, /mechanism \?BER/);
  const u = new SmtpDriver();
  u.send('EHLO c\r\n');
  u.send('MAIL FROM:<j\u00f6rg@remote.test> SMTPUTF8\r\n');
  assert.equal(u.send('RCPT TO:<j\u00f6rg@other.test>\r\n'), '550 5.7.1 <j\u00f6rg@other.test>: Relay access denied\r\n');
});

test('thousands of pipelined commands in one read are answered a turn\'s worth at a time, in order (RFC 2920 §3.1)', () => {
  const d = inState('ehlo');
  // Recipients past the limit (5 here) are what a session takes the longest: 995 of them, in
  // one read, after the five it looked up.
  d.send('MAIL FROM:<s@remote.test>\r\n');
  for (let i = 0; i < 5; i++) d.send('RCPT TO:<alice@example.test>\r\n');
  const outputs = d.session.receive(Buffer.from('RCPT TO:<alice@example.test>\r\n'.repeat(995)));
  const text = (os: typeof outputs) => os.map((o) => (o.type === 'write' ? o.data.toString() : '')).join('');
  assert.equal(outputs.at(-1)?.type, 'more', 'the rest waits for a later turn');
  let all = text(outputs);
  assert.ok(all.length >= 16 * 1024 && all.length < 17 * 1024, `${all.length} octets in the first turn`);
  for (let turns = 1; ; turns++) {
    const next = d.session.receive(Buffer.alloc(0));
    all += text(next);
    if (next.at(-1)?.type !== 'more') {
      assert.ok(turns >= 2, `${turns} turns`);
      break;
    }
  }
  const finals = all.split('\r\n').filter((l) => /^\d{3} /.test(l));
  assert.equal(finals.length, 995);
  assert.ok(finals.every((l) => l.startsWith('452 4.5.3 ')));
});

test('a NUL in the data is refused with 550 5.6.0, nothing is delivered, and the session goes on', () => {
  const d = inState('rcpt');
  d.send('DATA\r\n');
  assert.match(d.send('Subject: x\r\n\r\n\0.\r\nMAIL FROM:<x@y>\r\n.\r\n'), /^550 5\.6\.0 Message refused: a NUL octet/);
  assert.equal(d.delivered.length, 0);
  assert.equal(lastCode(d.send('NOOP\r\n')), 250);
});

test('refusals of a message or a recipient are reported for counting, by reason', () => {
  const d = inState('rcpt');
  d.send('RCPT TO:<x@remote.test>\r\n');
  d.send('DATA\r\n');
  d.send('Subject: x\r\n\r\n\0\r\n.\r\n');
  d.send('MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n');
  d.send('Subject: x\r\n\r\nbare\nLF\r\n.\r\n');
  d.send(`MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n${'y'.repeat(100)}\r\n`.repeat(1) + `${'z'.repeat(400)}\r\n`.repeat(30) + '.\r\n');
  const u = new SmtpDriver({ role: 'submission', tls: { protocol: 'TLSv1.3', cipher: 'x' } });
  u.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`);
  assert.match(u.send('MAIL FROM:<bob@example.test>\r\n'), /^553 5\.7\.1/);
  const b = inState('rcpt');
  b.send(`BDAT 20000 LAST\r\n${'x'.repeat(20000)}`);
  const full = inState('ehlo', { roomFor: () => false });
  assert.match(full.send('MAIL FROM:<a@remote.test>\r\n'), /^452 4\.3\.1/);
  // Too big declared at MAIL, as found at the end of the data.
  const declared = inState('ehlo');
  assert.match(declared.send('MAIL FROM:<a@remote.test> SIZE=999999999\r\n'), /^552 5\.3\.4/);
  assert.deepEqual([...d.refusals, ...u.refusals, ...b.refusals, ...full.refusals, ...declared.refusals], ['relay_denied', 'nul', 'bare_line_end', 'too_big', 'foreign_sender', 'too_big', 'storage_full', 'too_big']);
  // With the envelope of the transaction they end, for the log: the recipient refused, or all
  // of the message's; none before a transaction begins.
  const alice = { from: 'sender@remote.test', to: ['alice@example.test'] };
  const a = { from: 'a@remote.test', to: ['alice@example.test'] };
  assert.deepEqual([...d.refusalEnvelopes, ...u.refusalEnvelopes, ...b.refusalEnvelopes, ...full.refusalEnvelopes, ...declared.refusalEnvelopes],
    [{ from: 'sender@remote.test', to: ['x@remote.test'] }, alice, a, a, { from: 'bob@example.test', to: [] }, alice, undefined, undefined]);
  assert.equal(d.delivered.length, 0);
});

test('a header of more than 10,000 lines, or with a field of more than 5,000, is refused 552 5.3.4, and the session\'s log line says so; at the limits it goes through', () => {
  const cases: [header: string, verdict: RegExp][] = [
    [`Subject: a\r\n${' b\r\n'.repeat(5000)}`, /^552 5\.3\.4 Message header too large: a header field of 5001 lines, more than 5000\r\n$/],
    [`Subject: a\r\n${' b\r\n'.repeat(4999)}`, /^250 2\.0\.0 OK queued/],
    ['X-A: b\r\n'.repeat(10_001), /^552 5\.3\.4 Message header too large: more than 10000 header lines\r\n$/],
    [`${'X-A: b\r\n'.repeat(5_000)}To: a\r\n${'\tb\r\n'.repeat(4_999)}`, /^250 2\.0\.0 OK queued/],
    // Lines after the header section are the body's.
    [`Subject: a\r\n\r\n${' b\r\n'.repeat(20_000)}`, /^250 2\.0\.0 OK queued/],
  ];
  for (const [header, verdict] of cases) {
    const d = inState('rcpt', { maxMessageSize: 1_000_000 });
    d.send('DATA\r\n');
    assert.match(d.send(`${header}\r\nbody\r\n.\r\n`), verdict);
    assert.equal(d.delivered.length, verdict.source.startsWith('^250') ? 1 : 0);
    assert.deepEqual(d.refusals, verdict.source.startsWith('^250') ? [] : ['big_header']);
    assert.deepEqual(d.session.summary().refused, verdict.source.startsWith('^250') ? undefined : { big_header: 1 });
  }
});

test('messages arriving hold memory within the server\'s budget and each client\'s share: past it 452 4.3.1, for now; what a session held goes when it ends', () => {
  const budget = new BodyBudget(5000, 3000);
  const users = new BodyBudget(5000, 3000);
  const bodyBudget = { strangers: budget, users };
  const line = (n: number) => `${'x'.repeat(n - 2)}\r\n`;
  const a = inState('rcpt', { bodyBudget });
  const b = inState('rcpt', { bodyBudget });
  a.send('DATA\r\n');
  b.send('DATA\r\n');
  a.send(`Subject: a\r\n\r\n${line(2000)}`);
  assert.ok(budget.inUse >= 2000);
  // The same client (the driver's address) past its share of 3,000: read on, not kept.
  b.send(line(1500));
  assert.ok(budget.inUse < 3000, `${budget.inUse}`);
  assert.match(b.send(`${line(1000)}.\r\n`), /^452 4\.3\.1 Insufficient system storage, try again later\r\n$/);
  assert.deepEqual(b.refusals, ['memory_full']);
  assert.deepEqual(b.session.summary().refused, { memory_full: 1 });
  assert.match(a.send('.\r\n'), /^250 2\.0\.0 OK queued/);
  assert.equal(budget.inUse, 0);
  // A chunk past the share ends the transaction (RFC 3030 §2), and the next message goes through.
  const c = inState('rcpt', { bodyBudget });
  assert.match(c.send(`BDAT 3500\r\n${line(3500)}`), /^452 4\.3\.1/);
  assert.equal(budget.inUse, 0);
  assert.match(c.send('MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 9 LAST\r\nSubject: \r\n'), /250 2\.0\.0 OK queued/);
  // A connection gone in the middle of a message, or a session that ends itself, lets go.
  const d = inState('rcpt', { bodyBudget });
  d.send(`DATA\r\nSubject: d\r\n\r\n${line(1000)}`);
  assert.ok(budget.inUse >= 1000);
  d.session.closed();
  assert.equal(budget.inUse, 0);
  const e = inState('rcpt', { bodyBudget });
  e.send(`DATA\r\nSubject: e\r\n\r\n${line(1000)}`);
  e.session.timeout();
  assert.equal(budget.inUse, 0);
  // Strangers holding theirs full do not stop an authenticated user's message.
  const f = inState('rcpt', { bodyBudget });
  f.send(`DATA\r\nSubject: f\r\n\r\n${line(2900)}`);
  const u = new SmtpDriver({ role: 'submission', allowInsecureAuth: true, bodyBudget });
  u.send(`EHLO c\r\n`);
  u.send(`AUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`);
  u.send('MAIL FROM:<alice@example.test>\r\n');
  u.send('RCPT TO:<x@remote.test>\r\n');
  u.send('DATA\r\n');
  assert.match(u.send(`Subject: u\r\n\r\n${line(2900)}.\r\n`), /^250 2\.0\.0 OK queued/);
  assert.ok(budget.inUse >= 2900);
  assert.equal(users.inUse, 0);
  f.session.closed();
  assert.equal(a.delivered.length + b.delivered.length + c.delivered.length, 2);
});

test('a message that has passed 100 servers is in a loop: 554 5.4.6, nothing delivered; 99 go through (RFC 5321 §6.3)', () => {
  const received = (n: number) => 'Received: from a.test by b.test;\r\n\tSun, 29 Nov 2026 10:00:00 +0000\r\n'.repeat(n);
  const d = inState('rcpt');
  d.send('DATA\r\n');
  assert.match(d.send(`${received(100)}Subject: x\r\n\r\nReceived: in the body is no hop\r\n.\r\n`), /^554 5\.4\.6 Too many hops: the message has passed 100 servers/);
  assert.equal(d.delivered.length, 0);
  assert.deepEqual(d.refusals, ['loop']);
  assert.deepEqual(d.refusalEnvelopes, [{ from: 'sender@remote.test', to: ['alice@example.test'] }]);
  d.send('MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n');
  assert.match(d.send(`${received(99)}Subject: x\r\n\r\n${received(5)}.\r\n`), /^250 2\.0\.0 OK queued/);
  assert.equal(d.delivered.length, 1);
});

test('the local role (sendmail -bs) offers neither AUTH nor STARTTLS, needs no AUTH, and takes any recipient', () => {
  const d = new SmtpDriver({ role: 'local', starttls: false, allowInsecureAuth: true });
  const ehlo = d.send('EHLO php.local\r\n');
  assert.ok(!/AUTH|STARTTLS/.test(ehlo), ehlo);
  assert.match(d.send('AUTH PLAIN AGEAYg==\r\n'), /^503 5\.5\.1 Authentication is not needed/);
  assert.match(d.send('MAIL FROM:<anyone@remote.test>\r\n'), /^250 /);
  assert.match(d.send('RCPT TO:<x@elsewhere.test>\r\n'), /^250 /);
  assert.match(d.send('RCPT TO:<nobody@example.test>\r\n'), /^550 5\.1\.1/);
  assert.match(d.send('DATA\r\nSubject: s\r\n\r\nb\r\n.\r\n'), /250 2\.0\.0 OK queued/);
  assert.deepEqual(d.refusals, ['unknown_recipient']);
});

test('the local role takes a user name alone as a local address, as the sendmail command does; over the network it is bad syntax', () => {
  const d = new SmtpDriver({ role: 'local', starttls: false, allowInsecureAuth: true });
  d.send('EHLO php.local\r\n');
  assert.match(d.send('MAIL FROM:<www-data> SIZE=100\r\n'), /^250 /);
  assert.match(d.send('RCPT TO:<alice>\r\n'), /^250 /);
  assert.match(d.send('RCPT TO:<nobody>\r\n'), /^550 5\.1\.1/);
  assert.match(d.send('DATA\r\nSubject: s\r\n\r\nb\r\n.\r\n'), /250 2\.0\.0 OK queued/);
  assert.equal(d.delivered[0]!.sender, 'www-data@example.test');
  assert.deepEqual(d.delivered[0]!.recipients.map((r) => r.address), ['alice@example.test']);
  // Not a way around the grammar: anything but a plain name stays as it is.
  d.send('MAIL FROM:<>\r\n');
  assert.match(d.send('RCPT TO:<@relay.test:alice>\r\n'), /^501 /);
  assert.match(d.send('RCPT TO:<"a b">\r\n'), /^501 /);

  const net = new SmtpDriver();
  net.send('EHLO c\r\n');
  assert.match(net.send('MAIL FROM:<www-data>\r\n'), /^501 5\.1\.7/);
  net.send('MAIL FROM:<a@remote.test>\r\n');
  assert.match(net.send('RCPT TO:<alice>\r\n'), /^501 5\.1\.3/);
});

test('verbs and parameter names are case-insensitive in the ASCII sense only (RFC 5321 §2.4): a Unicode look-alike is an unknown command', () => {
  const d = new SmtpDriver();
  d.send('EHLO c\r\n');
  // U+0131 (dotless i) upper-cases to I, U+017F (long s) to S, U+FB06 (the st ligature) to ST.
  assert.match(d.send('MA\u0131L FROM:<a@remote.test>\r\n'), /^500 5\.5\.1/);
  assert.match(d.send('R\u017fET\r\n'), /^500 5\.5\.1/);
  assert.match(d.send('\ufb06ARTTLS\r\n'), /^500 5\.5\.1/);
  assert.match(d.send('mail FROM:<a@remote.test> \u017fIZE=10\r\n'), /^501 5\.5\.4 Bad MAIL FROM parameters/);
  assert.match(d.send('mail FROM:<a@remote.test> size=10\r\n'), /^250 /);
  // Parameter values too.
  d.send('RSET\r\n');
  assert.match(d.send('MAIL FROM:<a@remote.test> BODY=8B\u0131TMIME\r\n'), /^501 5\.5\.4 BODY must be/);
  assert.match(d.send('MAIL FROM:<a@remote.test> BODY=8bitmime\r\n'), /^250 /);
  assert.match(d.send('RCPT TO:<alice@example.test> NOTIFY=\u017fUCCESS\r\n'), /^501 5\.5\.4 NOTIFY must be/);
});

test('no reply line is longer than 512 octets with its CRLF (RFC 5321 §4.5.3.1.5), however long what it echoes', () => {
  const d = new SmtpDriver({ maxLineLength: 8192 });
  const lines = (text: string) => text.split('\r\n').filter(Boolean);
  const greeting = d.send(`EHLO ${'h'.repeat(4000)}\r\n`);
  for (const l of lines(greeting)) assert.ok(Buffer.byteLength(l) + 2 <= 512, l.slice(0, 40));
  assert.match(lines(greeting)[0]!, /^250-mx\.example\.test greets h+\.\.\.$/);
  assert.equal(Buffer.byteLength(lines(greeting)[0]!) + 2, 512);
});

test('a BDAT chunk refused for want of recipients ends the transaction: a later BDAT LAST cannot deliver the message without it (RFC 3030 §2)', () => {
  const d = new SmtpDriver();
  d.send('EHLO c\r\nMAIL FROM:<a@remote.test>\r\n');
  assert.match(d.send('RCPT TO:<nobody@example.test>\r\n'), /^550 /);
  assert.match(d.send('BDAT 4\r\nab\r\n'), /^554 5\.5\.1 No valid recipients/);
  assert.match(d.send('RCPT TO:<alice@example.test>\r\n'), /^503 5\.5\.1/);
  assert.match(d.send('BDAT 4 LAST\r\nab\r\n'), /^503 5\.5\.1/);
  assert.equal(d.delivered.length, 0);
  // A new transaction goes through.
  d.send('MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n');
  assert.match(d.send('BDAT 4 LAST\r\nab\r\n'), /^250 2\.0\.0 OK queued/);
});

test('a command that is not UTF-8 gets 500 5.5.2, where its bytes would have become U+FFFD in an address', () => {
  const d = new SmtpDriver();
  d.send('EHLO c\r\n');
  assert.match(d.send(Buffer.from('MAIL FROM:<\xff\xfe@remote.test> SMTPUTF8\r\n', 'latin1')), /^500 5\.5\.2 Syntax error: the command is not ASCII or UTF-8/);
  assert.match(d.send('MAIL FROM:<j\u00f6rg@remote.test> SMTPUTF8\r\n'), /^250 /);
});

test('BDAT after HELO: its chunk is read, not run as commands, and refused with the transaction (RFC 3030 §2)', () => {
  const d = new SmtpDriver();
  d.send('HELO c\r\n');
  d.send('MAIL FROM:<a@remote.test>\r\n');
  d.send('RCPT TO:<alice@example.test>\r\n');
  assert.equal(d.send('BDAT 12 LAST\r\nRSET\r\nQUIT\r\n'), '503 BDAT needs EHLO, which offers CHUNKING (RFC 3030); use DATA\r\n');
  assert.equal(d.delivered.length, 0);
  assert.equal(d.send('DATA\r\n').slice(0, 3), '503', 'the transaction went with it');
});

test('the line limit counts the CRLF, as RFC 5321 §4.5.3.1.4 does: 512 octets in all', () => {
  const d = new SmtpDriver({ maxLineLength: 512 });
  assert.equal(lastCode(d.send(`NOOP ${'a'.repeat(505)}\r\n`)), 250);
  assert.match(d.send(`NOOP ${'a'.repeat(506)}\r\n`), /^500 Line too long \(limit 512 octets\)/);
  assert.equal(lastCode(d.send(`NOOP ${'a'.repeat(506)}\n`)), 250, 'a bare LF is one octet');
});

test('verbs are case-insensitive', () => {
  const d = new SmtpDriver();
  assert.equal(lastCode(d.send('ehlo client.test\r\n')), 250);
  assert.equal(lastCode(d.send('mail from:<a@remote.test>\r\n')), 250);
  assert.equal(lastCode(d.send('rcpt to:<alice@example.test>\r\n')), 250);
  assert.equal(lastCode(d.send('Data\r\n')), 354);
});

test('greeting, EHLO extensions and enhanced codes only after EHLO', () => {
  const d = new SmtpDriver();
  assert.match(d.written, /^220 mx\.example\.test ESMTP/);
  assert.equal(d.send('HELO c\r\n'), '250 mx.example.test\r\n');
  assert.equal(d.send('NOOP\r\n'), '250 Ok\r\n');
  const ehlo = d.send('EHLO c\r\n');
  for (const ext of ['PIPELINING', 'SIZE 10000', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'DSN', 'STARTTLS', 'HELP']) {
    assert.ok(ehlo.includes(`250-${ext}\r\n`) || ehlo.includes(`250 ${ext}\r\n`), ext);
  }
  assert.ok(!ehlo.includes('AUTH'), 'no AUTH before TLS');
  assert.equal(d.send('NOOP\r\n'), '250 2.0.0 Ok\r\n');
});

test('a message through DATA: dot-unstuffing, end of data, queued id, trace details', () => {
  const d = inState('rcpt');
  d.send('DATA\r\n');
  const r = d.send('Subject: t\r\n\r\n..leading dot\r\nline\r\n.\r\n');
  assert.equal(r, '250 2.0.0 OK queued as ID1\r\n');
  assert.equal(d.delivered.length, 1);
  const del = d.delivered[0]!;
  assert.equal(bodyOf(del), 'Subject: t\r\n\r\n.leading dot\r\nline\r\n');
  assert.equal(del.sender, 'sender@remote.test');
  assert.deepEqual(del.recipients.map((x) => x.address), ['alice@example.test']);
  assert.equal(del.protocol, 'ESMTP');
  assert.equal(del.clientIp, '192.0.2.1');
  assert.equal(del.helo, 'client.test');
});

test('DATA split across many small writes, end marker split too', () => {
  const d = inState('rcpt');
  d.send('DATA\r\n');
  const msg = 'Subject: x\r\n\r\nhello\r\n.\r\n';
  let out = '';
  for (const ch of msg) out += d.send(ch);
  assert.equal(out, '250 2.0.0 OK queued as ID1\r\n');
  assert.equal(bodyOf(d.delivered[0]!), 'Subject: x\r\n\r\nhello\r\n');
});

test('an empty message is accepted', () => {
  const d = inState('rcpt');
  d.send('DATA\r\n');
  assert.equal(lastCode(d.send('.\r\n')), 250);
  assert.equal(bodyOf(d.delivered[0]!), '');
});

for (const [name, attack] of [
  ['\\n.\\n', '\n.\n'], ['\\r\\n.\\n', '\r\n.\n'], ['\\n.\\r\\n', '\n.\r\n'], ['\\r.\\r', '\r.\r'], ['\\r.\\r\\n', '\r.\r\n'],
] as const) {
  test(`smuggling ${name} neither ends the data nor runs commands`, () => {
    const d = inState('rcpt');
    d.send('DATA\r\n');
    const smuggled = `Subject: a\r\n\r\nbody${attack}MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nevil\r\n`;
    assert.equal(d.send(smuggled), '', 'nothing is answered inside the data');
    const end = d.send('.\r\n');
    assert.match(end, /^550 5\.6\.0 /, 'the message with a bare line end is refused');
    assert.equal(d.delivered.length, 0);
    assert.equal(lastCode(d.send('NOOP\r\n')), 250, 'the session goes on');
  });
}

test('SIZE: declared over the limit refused at MAIL, actual over the limit refused at the end without buffering', () => {
  const d = inState('ehlo');
  assert.match(d.send('MAIL FROM:<a@remote.test> SIZE=10001\r\n'), /^552 5\.3\.4 /);
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test> SIZE=100\r\n')), 250);
  d.send('RCPT TO:<alice@example.test>\r\n');
  d.send('DATA\r\n');
  const line = `${'x'.repeat(98)}\r\n`;
  assert.equal(d.send(line.repeat(200)), '');
  assert.match(d.send('.\r\n'), /^552 5\.3\.4 /);
  assert.equal(d.delivered.length, 0);
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test>\r\n')), 250, 'the transaction was reset');
});

test('too many recipients: 452 4.5.3 past the limit, the rest are kept', () => {
  const d = inState('mail');
  let out = '';
  for (let i = 0; i < 7; i++) out += d.send('RCPT TO:<alice@example.test>\r\n');
  assert.deepEqual(d.codes(out), [250, 250, 250, 250, 250, 452, 452]);
  assert.match(out, /452 4\.5\.3 /);
});

test('an overlong command line gets 500 5.5.2 and the session goes on', () => {
  const d = inState('ehlo');
  assert.match(d.send(`NOOP ${'x'.repeat(600)}\r\n`), /^500 5\.5\.2 /);
  assert.equal(lastCode(d.send('NOOP\r\n')), 250);
  // Split over several writes, still one reply.
  const out = d.send(`NOOP ${'y'.repeat(300)}`) + d.send('z'.repeat(300)) + d.send('\r\nNOOP\r\n');
  assert.deepEqual(d.codes(out), [500, 250]);
});

test('pipelining: a whole transaction in one write gets its replies in order', () => {
  const d = new SmtpDriver();
  const out = d.send('EHLO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\nSubject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n');
  assert.deepEqual(d.codes(out), [250, 250, 250, 550, 354, 250, 221]);
  assert.ok(d.closed);
});

test('pipelining within RFC 2920 §3.1 is answered in order on a network listener: groups that end with DATA, the next transaction after the message', () => {
  const d = new SmtpDriver({ strictPipelining: true });
  assert.deepEqual(d.codes(d.send('EHLO c\r\n')), [250]);
  assert.deepEqual(d.codes(d.send('MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n')), [250, 250, 550, 354]);
  assert.deepEqual(d.codes(d.send('Subject: p\r\n\r\nhi\r\n.\r\nRSET\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 4 LAST\r\nhi\r\nQUIT\r\n')), [250, 250, 250, 250, 250, 221]);
  assert.equal(d.delivered.length, 2);
  assert.deepEqual(d.refusals, ['unknown_recipient']);
  assert.deepEqual(d.session.summary().refused, { unknown_recipient: 1 });
});

test('a client that sends before the reply it must wait for is hung up on, 554 5.5.0, on a network listener (RFC 2920 §3.1)', () => {
  const cases: [before: string[], unsynchronized: string, codes: number[]][] = [
    // Before EHLO, or after HELO, nothing may be pipelined (RFC 5321 §4.3.1).
    [[], 'EHLO c\r\nMAIL FROM:<a@remote.test>\r\n', [554]],
    [[], 'NOOP\r\nNOOP\r\n', [554]],
    [['HELO c\r\n'], 'MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n', [554]],
    // After EHLO, EHLO, DATA, VRFY, EXPN and NOOP end a group.
    [['EHLO c\r\n'], 'NOOP\r\nMAIL FROM:<a@remote.test>\r\n', [554]],
    [['EHLO c\r\n'], 'VRFY alice\r\nRSET\r\n', [554]],
    [['EHLO c\r\n'], 'EHLO c\r\nRSET\r\n', [554]],
    // The message sent before DATA's 354: what smuggling and bulk-mail engines do.
    [['EHLO c\r\n'], 'MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n', [250, 250, 554]],
  ];
  for (const [before, unsynchronized, codes] of cases) {
    const d = new SmtpDriver({ strictPipelining: true });
    for (const b of before) assert.equal(lastCode(d.send(b)), 250);
    const out = d.send(unsynchronized);
    assert.deepEqual(d.codes(out), codes, unsynchronized);
    // Enhanced status codes only once EHLO has offered them (RFC 2034 §3).
    const code = before.includes('EHLO c\r\n') ? '5\\.5\\.0 ' : '';
    assert.match(out, new RegExp(`554 ${code}mx\\.example\\.test Protocol error: commands sent before the reply they had to wait for \\(RFC 2920 section 3\\.1\\), closing connection\r\n$`));
    assert.ok(d.closed, unsynchronized);
    assert.equal(d.delivered.length, 0);
    assert.deepEqual(d.refusals, ['pipelining']);
    assert.equal(d.session.summary().outcome, 'unsynchronized pipelining');
  }
  // sendmail -bs takes a script's whole dialogue at once.
  const local = new SmtpDriver({ role: 'local' });
  assert.deepEqual(local.codes(local.send('HELO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n')), [250, 250, 250, 354, 250, 221]);
});

test('BDAT: chunks, LAST, byte counts, and DATA after BDAT is out of sequence', () => {
  const d = inState('rcpt');
  assert.equal(d.send('BDAT 12\r\nSubject: b\r\n'), '250 2.0.0 12 octets received\r\n');
  assert.equal(lastCode(d.send('DATA\r\n')), 503);
  assert.equal(d.send('BDAT 8 LAST\r\n\r\nbody\r\n'), '250 2.0.0 OK queued as ID1\r\n');
  assert.equal(bodyOf(d.delivered[0]!), 'Subject: b\r\n\r\nbody\r\n');
});

test('BDAT 0 LAST ends a chunked message; a body without a final CRLF gets one', () => {
  const d = inState('rcpt');
  d.send('BDAT 15\r\nSubject: z\r\n\r\nx');
  assert.equal(lastCode(d.send('BDAT 0 LAST\r\n')), 250);
  assert.equal(bodyOf(d.delivered[0]!), 'Subject: z\r\n\r\nx\r\n');
});

test('BDAT without a transaction: the chunk is consumed, then 503', () => {
  const d = inState('ehlo');
  const out = d.send('BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n');
  assert.deepEqual(d.codes(out), [503, 250]);
  assert.ok(!d.closed);
});

test('BDAT over the size limit: 552 and the transaction ends', () => {
  const d = inState('rcpt');
  const out = d.send(`BDAT 10001\r\n${'x'.repeat(10001)}`);
  assert.match(out, /^552 5\.3\.4 /);
  assert.equal(lastCode(d.send('BDAT 1 LAST\r\nx')), 503);
  assert.equal(d.delivered.length, 0);
});

test('BDAT whose size cannot be read ends the session: its chunk is never read as commands', () => {
  for (const bad of ['BDAT x', 'BDAT', 'BDAT +3 LAST', 'BDAT 9007199254740993', 'BDAT 3 LAST extra']) {
    const d = inState('rcpt');
    const out = d.send(`${bad}\r\nabcRCPT TO:<bob@example.test>\r\n`);
    assert.match(out, /^421 4\.5\.4 mx\.example\.test Syntax: BDAT chunk-size \[LAST\];.*\r\n$/, bad);
    assert.ok(d.closed, bad);
    assert.equal(d.effects.filter((e) => e.kind === 'rcpt').length, 1, `${bad}: only the RCPT before it was looked up`);
  }
});

test('STARTTLS: input pipelined behind it is discarded; state is reset after the handshake', () => {
  const d = inState('ehlo');
  const out = d.send('STARTTLS\r\nMAIL FROM:<a@remote.test>\r\n');
  assert.equal(out, '220 2.0.0 Ready to start TLS\r\n');
  assert.ok(d.tlsRequested);
  assert.equal(d.send('NOOP\r\n'), '', 'plaintext before the handshake is ignored');
  d.startTls();
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test>\r\n')), 503, 'EHLO must be given again');
  const ehlo = d.send('EHLO c\r\n');
  assert.ok(!ehlo.includes('STARTTLS'));
  assert.ok(ehlo.includes('AUTH PLAIN LOGIN'));
  assert.equal(lastCode(d.send('STARTTLS\r\n')), 503);
});

test('submission: AUTH required before MAIL; PLAIN with initial response', () => {
  const d = new SmtpDriver({ role: 'submission', tls: { protocol: 'TLSv1.3', cipher: 'x' } });
  d.send('EHLO c\r\n');
  assert.match(d.send('MAIL FROM:<alice@example.test>\r\n'), /^530 5\.7\.0 /);
  assert.equal(d.send(`AUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`), '235 2.7.0 Authentication successful\r\n');
  assert.equal(lastCode(d.send('AUTH PLAIN\r\n')), 503);
  assert.equal(lastCode(d.send('MAIL FROM:<alice@example.test>\r\n')), 250);
  assert.equal(lastCode(d.send('RCPT TO:<someone@remote.test>\r\n')), 250, 'any recipient once authenticated');
  d.send('DATA\r\nSubject: s\r\n\r\nx\r\n.\r\n');
  assert.equal(d.delivered[0]!.protocol, 'ESMTPSA');
  assert.equal(d.delivered[0]!.user?.address, 'alice@example.test');
  // RFC 6531 §3.7.3: a transaction under SMTPUTF8 is UTF8SMTP…
  d.send('MAIL FROM:<alice@example.test> SMTPUTF8\r\nRCPT TO:<j\u00f6rg@b\u00fccher.test>\r\nDATA\r\nSubject: s\r\n\r\nx\r\n.\r\n');
  assert.equal(d.delivered[1]!.protocol, 'UTF8SMTPSA');
});

test('AUTH PLAIN as another user (an authzid not the login) fails with 535 5.7.8, not a syntax error', () => {
  const d = new SmtpDriver({ role: 'submission', tls: { protocol: 'TLSv1.3', cipher: 'x' } });
  d.send('EHLO c\r\n');
  assert.match(d.send(`AUTH PLAIN ${b64('bob@example.test\0alice@example.test\0secret')}\r\n`), /^535 5\.7\.8 acting as another user is not allowed/);
  assert.equal(d.send(`AUTH PLAIN ${b64('ALICE@example.test\0alice@example.test\0secret')}\r\n`), '235 2.7.0 Authentication successful\r\n');
});

test('AUTH LOGIN exactly as clients expect, and PLAIN without initial response', () => {
  const d = new SmtpDriver({ role: 'submission', allowInsecureAuth: true });
  d.send('EHLO c\r\n');
  assert.equal(d.send('AUTH LOGIN\r\n'), '334 VXNlcm5hbWU6\r\n');
  assert.equal(d.send(`${b64('alice@example.test')}\r\n`), '334 UGFzc3dvcmQ6\r\n');
  assert.equal(d.send(`${b64('secret')}\r\n`), '235 2.7.0 Authentication successful\r\n');
  const e = new SmtpDriver({ role: 'submission', allowInsecureAuth: true });
  e.send('EHLO c\r\n');
  assert.equal(e.send('AUTH PLAIN\r\n'), '334 \r\n');
  assert.equal(lastCode(e.send(`${b64('\0bob@example.test\0hunter2')}\r\n`)), 235);
  const f = new SmtpDriver({ role: 'submission', allowInsecureAuth: true });
  f.send('EHLO c\r\n');
  assert.equal(f.send(`AUTH LOGIN ${b64('alice@example.test')}\r\n`), '334 UGFzc3dvcmQ6\r\n');
  assert.equal(lastCode(f.send(`${b64('secret')}\r\n`)), 235);
});

test('AUTH failures, cancel, bad base64, unknown mechanism, no TLS', () => {
  const d = new SmtpDriver({ role: 'submission', allowInsecureAuth: true });
  d.send('EHLO c\r\n');
  assert.match(d.send(`AUTH PLAIN ${b64('\0alice@example.test\0wrong')}\r\n`), /^535 5\.7\.8 /);
  d.send('AUTH LOGIN\r\n');
  assert.match(d.send('*\r\n'), /^501 5\.0\.0 /);
  assert.match(d.send('AUTH PLAIN !!!\r\n'), /^501 5\.5\.2 /);
  d.send('AUTH LOGIN\r\n');
  assert.match(d.send('not base64\r\n'), /^501 5\.5\.2 /);
  assert.match(d.send('AUTH CRAM-MD5\r\n'), /^504 5\.5\.4 /);
  assert.match(d.send(`AUTH PLAIN ${b64('other@example.test\0alice@example.test\0secret')}\r\n`), /^535 5\.7\.8 /);
  // Base64 that decodes to no PLAIN message fails authentication (535); only what does not
  // decode is a syntax error (RFC 4954 §4). "=" is the empty initial response.
  assert.match(d.send('AUTH PLAIN =\r\n'), /^535 5\.7\.8 PLAIN response must be authzid NUL authcid NUL password/);
  assert.match(d.send(`AUTH PLAIN ${b64('\0\0secret')}\r\n`), /^535 5\.7\.8 PLAIN response has an empty user name/);
  assert.equal(d.send('AUTH PLAIN\r\n'), '334 \r\n');
  assert.match(d.send('\r\n'), /^535 5\.7\.8 /);
  const e = new SmtpDriver({ role: 'submission' });
  e.send('EHLO c\r\n');
  assert.match(e.send('AUTH PLAIN\r\n'), /^538 5\.7\.11 /);
});

test('authenticated senders: own address and aliases only, never the null sender', () => {
  const d = new SmtpDriver({ role: 'submission', allowInsecureAuth: true });
  d.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`);
  assert.match(d.send('MAIL FROM:<bob@example.test>\r\n'), /^553 5\.7\.1 /);
  assert.match(d.send('MAIL FROM:<>\r\n'), /^553 5\.7\.1 /);
  assert.equal(lastCode(d.send('MAIL FROM:<al@example.test>\r\n')), 250);
  d.send('RSET\r\n');
  assert.equal(lastCode(d.send('MAIL FROM:<Alice@Example.Test>\r\n')), 250);
});

test('a stranger\'s recipients are screened by its address: a listing is 554 5.7.1 naming the zone, lists that cannot be asked now 451 4.3.0; a user is not screened', () => {
  const d = inState('mail');
  d.screening = { zone: 'bl.example', reason: 'see https://bl.example/q' };
  assert.equal(d.send('RCPT TO:<alice@example.test>\r\n'), '554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using bl.example; see https://bl.example/q\r\n');
  d.screening = { zone: 'quiet.example' };
  assert.equal(d.send('RCPT TO:<bob@example.test>\r\n'), '554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using quiet.example\r\n');
  d.screening = 'busy';
  assert.equal(d.send('RCPT TO:<bob@example.test>\r\n'), '451 4.3.0 <bob@example.test>: Temporary lookup failure: too many clients are being looked up in the DNS blocklists; try again later\r\n');
  assert.deepEqual(d.refusals, ['dnsbl', 'dnsbl', 'dnsbl_busy']);
  assert.deepEqual(d.effects.filter((e) => e.kind === 'rcpt').map((e) => e.kind === 'rcpt' && e.client), ['192.0.2.1', '192.0.2.1', '192.0.2.1']);
  // Logged in (on the MX too), the session gives no address to screen.
  const user = new SmtpDriver({ allowInsecureAuth: true });
  user.screening = { zone: 'bl.example' };
  user.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\nMAIL FROM:<alice@example.test>\r\n`);
  assert.equal(lastCode(user.send('RCPT TO:<bob@example.test>\r\n')), 250);
});

test('a user who has sent to max_outgoing_per_day recipients at other domains in 24 hours gets 450 4.7.1 for more, this transaction\'s counted; local ones still go', () => {
  const d = new SmtpDriver({ role: 'submission', allowInsecureAuth: true, maxOutgoingPerDay: 4 });
  d.sent.set(1, 2);
  d.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\nMAIL FROM:<alice@example.test>\r\n`);
  assert.equal(lastCode(d.send('RCPT TO:<a@remote.test>\r\n')), 250);
  assert.equal(lastCode(d.send('RCPT TO:<b@remote.test>\r\n')), 250);
  assert.equal(d.send('RCPT TO:<c@remote.test>\r\n'), '450 4.7.1 <c@remote.test>: alice@example.test may send to 4 recipients at other domains in 24 hours (limits.max_outgoing_per_day), and this one would pass that; try again later\r\n');
  // A local alias that sends on to another domain counts as what it sends on to.
  assert.match(d.send('RCPT TO:<fwd@example.test>\r\n'), /^450 4\.7\.1 <fwd@example\.test>: /);
  assert.equal(lastCode(d.send('RCPT TO:<bob@example.test>\r\n')), 250);
  assert.equal(lastCode(d.send('DATA\r\n')), 354);
  assert.equal(lastCode(d.send('Subject: x\r\n\r\nhi\r\n.\r\n')), 250);
  assert.deepEqual(d.delivered[0]!.recipients.map((r) => r.address), ['a@remote.test', 'b@remote.test', 'bob@example.test']);
  assert.deepEqual(d.refusals, ['daily_limit', 'daily_limit']);
  assert.deepEqual(d.effects.filter((e) => e.kind === 'rcpt').map((e) => e.kind === 'rcpt' && e.sentBy), [1, 1, 1, 1, 1]);
  // With one left, the alias goes; then nothing more to another domain.
  const last = new SmtpDriver({ role: 'submission', allowInsecureAuth: true, maxOutgoingPerDay: 4 });
  last.sent.set(1, 3);
  last.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\nMAIL FROM:<alice@example.test>\r\n`);
  assert.equal(lastCode(last.send('RCPT TO:<fwd@example.test>\r\n')), 250);
  assert.equal(lastCode(last.send('RCPT TO:<a@remote.test>\r\n')), 450);
  // Mail from the internet is not counted, nor anything when the limit is 0.
  const mx = inState('mail', { maxOutgoingPerDay: 4 });
  mx.send('RCPT TO:<alice@example.test>\r\n');
  const off = new SmtpDriver({ role: 'submission', allowInsecureAuth: true, maxOutgoingPerDay: 0 });
  off.sent.set(1, 1_000_000);
  off.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\nMAIL FROM:<alice@example.test>\r\n`);
  assert.equal(lastCode(off.send('RCPT TO:<a@remote.test>\r\n')), 250);
  for (const e of [...mx.effects, ...off.effects]) assert.ok(!(e.kind === 'rcpt' && 'sentBy' in e), JSON.stringify(e));
  // One who goes on without end is ended, as one past max_recipients is.
  const endless = new SmtpDriver({ role: 'submission', allowInsecureAuth: true, maxOutgoingPerDay: 4 });
  endless.sent.set(1, 4);
  endless.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\nMAIL FROM:<alice@example.test>\r\n`);
  let replies = '';
  for (let i = 0; i < 1_100 && !endless.closed; i++) replies += endless.send(`RCPT TO:<r${i}@remote.test>\r\n`);
  assert.ok(endless.closed, 'the session was never ended');
  assert.match(replies, /421 4\.7\.0 mx\.example\.test Too many errors, closing connection\r\n$/);
  assert.equal(endless.codes(replies).filter((c) => c === 450).length, 1_000 + 20);
});

test('relay tricks on the MX role are what they really are', () => {
  const d = inState('mail');
  assert.match(d.send('RCPT TO:<u%remote.test@example.test>\r\n'), /^550 5\.1\.1 /);
  assert.match(d.send('RCPT TO:<@example.test:u@remote.test>\r\n'), /^550 5\.7\.1 /);
  assert.match(d.send('RCPT TO:<"u@remote.test"@example.test>\r\n'), /^550 5\.1\.1 /);
  assert.match(d.send('RCPT TO:<u@remote.test.>\r\n'), /^501 /);
  assert.match(d.send('RCPT TO:<u!remote.test@example.test>\r\n'), /^550 5\.1\.1 /);
  assert.match(d.send('RCPT TO:<u@[192.0.2.7]>\r\n'), /^550 5\.7\.1 /);
  assert.equal(lastCode(d.send('DATA\r\n')), 554);
});

test('VRFY and EXPN answer authenticated users from users and aliases', () => {
  const d = new SmtpDriver({ role: 'submission', allowInsecureAuth: true });
  d.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`);
  assert.equal(d.send('VRFY bob@example.test\r\n'), '250 2.1.5 <bob@example.test>\r\n');
  assert.match(d.send('VRFY nobody@example.test\r\n'), /^550 5\.1\.1 /);
  assert.match(d.send('VRFY team@example.test\r\n'), /^553 5\.1\.4 /);
  assert.match(d.send('VRFY fwd@example.test\r\n'), /^251 2\.1\.5 .*<x@remote\.test>/);
  assert.equal(d.send('EXPN team@example.test\r\n'), '250-2.1.5 <alice@example.test>\r\n250 2.1.5 <bob@example.test>\r\n');
  assert.match(d.send('VRFY <not an address>\r\n'), /^501 /);
  // A user name alone is at the first local domain (RFC 5321 §3.5.1: "a string identifying a user").
  assert.equal(d.send('VRFY bob\r\n'), '250 2.1.5 <bob@example.test>\r\n');
  assert.equal(d.send('EXPN team\r\n'), '250-2.1.5 <alice@example.test>\r\n250 2.1.5 <bob@example.test>\r\n');
  assert.match(d.send('VRFY nobody\r\n'), /^550 5\.1\.1 /);
});

test('VRFY and EXPN take SMTPUTF8 (RFC 6531 §3.7.4.2): an address in UTF-8 only to a client that asks with it, others in their ASCII form', () => {
  const world = {
    ...WORLD,
    users: { ...WORLD.users, 'dörte@example.test': { id: 3, password: 'x' } },
    aliases: { ...WORLD.aliases, 'intl@example.test': ['dörte@example.test', 'carol@bücher.example'], 'idn@example.test': ['carol@bücher.example'] },
  };
  const d = new SmtpDriver({ role: 'submission', allowInsecureAuth: true }, world);
  d.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`);
  assert.equal(d.send('VRFY bob@example.test SMTPUTF8\r\n'), '250 2.1.5 <bob@example.test>\r\n');
  assert.equal(d.send('EXPN team smtputf8\r\n'), '250-2.1.5 <alice@example.test>\r\n250 2.1.5 <bob@example.test>\r\n');
  assert.equal(d.send('VRFY dörte@example.test SMTPUTF8\r\n'), '250 2.1.5 <dörte@example.test>\r\n');
  assert.equal(d.send('EXPN intl@example.test SMTPUTF8\r\n'), '250-2.1.5 <dörte@example.test>\r\n250 2.1.5 <carol@bücher.example>\r\n');
  // Without it: an internationalised domain in its A-labels; a local part in UTF-8 has no
  // ASCII form, and is not garbled into one.
  assert.equal(d.send('VRFY idn@example.test\r\n'), '251 2.1.5 User not local; will forward to <carol@xn--bcher-kva.example>\r\n');
  assert.match(d.send('VRFY dörte@example.test\r\n'), /^553 5\.6\.8 The answer is an address in UTF-8; ask with "VRFY <address> SMTPUTF8"\r\n$/);
  assert.match(d.send('EXPN intl@example.test\r\n'), /^553 5\.6\.8 /);
  // Any other parameter is no address.
  assert.match(d.send('VRFY bob@example.test FOO\r\n'), /^501 5\.1\.3 /);
  assert.match(d.send('VRFY SMTPUTF8 SMTPUTF8\r\n'), /^550 5\.1\.1 /);
});

test('MAIL and RCPT parameters: DSN, BODY, SMTPUTF8, unknown ones', () => {
  const d = inState('ehlo');
  assert.match(d.send('MAIL FROM:<a@remote.test> FOO=1\r\n'), /^555 5\.5\.4 /);
  assert.match(d.send('MAIL FROM:<a@remote.test> BODY=BINARYMIME\r\n'), /^555 /);
  assert.match(d.send('MAIL FROM:<a@remote.test> SIZE=abc\r\n'), /^501 /);
  assert.match(d.send('MAIL FROM:<a@remote.test> RET=FULL RET=HDRS\r\n'), /^501 /);
  assert.match(d.send('MAIL FROM:<dörte@remote.test>\r\n'), /^553 5\.6\.7 /);
  // RFC 3461 §4.4: an ENVID is printable US-ASCII once decoded (it goes into a DSN's field).
  for (const envid of ['ab+00cd', 'a+0D+0AX-Injected:+20y', '+C3+A9t', 'a+7Fb']) {
    assert.match(d.send(`MAIL FROM:<a@remote.test> ENVID=${envid}\r\n`), /^501 5\.5\.4 ENVID must be xtext of at most 100 characters, printable US-ASCII once decoded/, envid);
  }
  assert.equal(lastCode(d.send('MAIL FROM:<dörte@remote.test> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef+20g AUTH=<>\r\n')), 250);
  assert.match(d.send('RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS\r\n'), /^501 /);
  assert.match(d.send('RCPT TO:<alice@example.test> ORCPT=bad\r\n'), /^501 /);
  assert.equal(lastCode(d.send('RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40example.test\r\n')), 250);
  d.send('DATA\r\nSubject: u\r\n\r\nx\r\n.\r\n');
  const del = d.delivered[0]!;
  assert.deepEqual(del.dsn, { ret: 'HDRS', envid: 'abc+def g' });
  assert.deepEqual(del.recipients[0]!.notify, ['SUCCESS', 'FAILURE']);
  assert.equal(del.recipients[0]!.orcpt, 'rfc822;alice@example.test');
  assert.equal(del.sender, 'dörte@remote.test');
});

test('ORCPT: xtext octets read as UTF-8; RFC 6533\'s utf-8 type with \\x{HEX} escapes, and as it is under SMTPUTF8', () => {
  const d = inState('ehlo');
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test> SMTPUTF8\r\n')), 250);
  const rcpts = [
    ['rfc822;j+C3+B6rg@example.test', 'rfc822;jörg@example.test'],
    ['utf-8;j\\x{F6}rg\\x{1F600}@example.test', 'utf-8;jörg\u{1F600}@example.test'],
    ['UTF-8;jörg@example.test', 'UTF-8;jörg@example.test'],
  ];
  for (const [orcpt] of rcpts) assert.equal(lastCode(d.send(`RCPT TO:<alice@example.test> ORCPT=${orcpt}\r\n`)), 250, orcpt);
  for (const bad of ['utf-8;a+b@example.test', 'utf-8;a=b@example.test', 'utf-8;a\\b@example.test', 'utf-8;a\\x{D800}@example.test', 'utf-8;', 'rfc822;a+ZZ', 'rfc822;a+0D+0Ab@example.test', 'rfc822;a+00b@example.test', 'rfc822;a+85b@example.test', 'rfc822;a+C2+85b@example.test', 'utf-8;a\\x{0A}b@example.test']) {
    assert.match(d.send(`RCPT TO:<alice@example.test> ORCPT=${bad}\r\n`), /^501 5\.5\.4 /, bad);
  }
  d.send('DATA\r\nSubject: u\r\n\r\nx\r\n.\r\n');
  assert.deepEqual(d.delivered[0]!.recipients.map((r) => r.orcpt), rcpts.map(([, stored]) => stored));
  // Without SMTPUTF8 the utf-8 type takes its escapes only.
  const ascii = inState('mail');
  assert.equal(lastCode(ascii.send('RCPT TO:<alice@example.test> ORCPT=utf-8;j\\x{F6}rg@example.test\r\n')), 250);
  assert.match(ascii.send('RCPT TO:<alice@example.test> ORCPT=utf-8;jörg@example.test\r\n'), /^5\d\d /);
});

test('a UTF-8 recipient needs SMTPUTF8 in MAIL FROM', () => {
  const d = inState('mail');
  assert.match(d.send('RCPT TO:<jürgen@example.test>\r\n'), /^553 5\.6\.7 /);
});

test('a temporary store failure is 451, a full disk 452 4.3.1, and the session goes on', () => {
  const d = inState('rcpt');
  d.failDelivery = 'store-error';
  d.send('DATA\r\n');
  assert.match(d.send('x\r\n.\r\n'), /^451 4\.3\.0 /);
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test>\r\n')), 250);
  d.failDelivery = 'storage-full';
  d.send('RCPT TO:<alice@example.test>\r\nDATA\r\n');
  assert.match(d.send('x\r\n.\r\n'), /^452 4\.3\.1 Insufficient system storage/);
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test>\r\n')), 250);
  // The session's log line says so.
  assert.deepEqual(d.session.summary().refused, { store_error: 1, storage_full: 1 });
  assert.deepEqual(d.refusals, ['store_error', 'storage_full']);
});

test('MAIL is refused with 452 4.3.1 when the store has no room for the declared SIZE (or for any message)', () => {
  const asked: number[] = [];
  let room = true;
  const d = inState('ehlo', { roomFor: (size) => { asked.push(size); return room; }, maxMessageSize: 10 * 1024 * 1024 });
  assert.match(d.send('MAIL FROM:<a@remote.test> SIZE=1048576\r\n'), /^250 /);
  d.send('RSET\r\n');
  room = false;
  assert.match(d.send('MAIL FROM:<a@remote.test> SIZE=1048577\r\n'), /^452 4\.3\.1 Insufficient system storage/);
  assert.match(d.send('MAIL FROM:<a@remote.test>\r\n'), /^452 4\.3\.1 /);
  room = true;
  assert.match(d.send('MAIL FROM:<a@remote.test>\r\n'), /^250 /);
  assert.deepEqual(asked, [1048576, 1048577, 0, 0]);
});

test('too many errors end the session with 421', () => {
  const d = inState('ehlo');
  let out = '';
  for (let i = 0; i < 25; i++) out += d.send('BOGUS\r\n');
  assert.match(out, /421 4\.7\.0 /);
  assert.ok(d.closed);
  assert.equal(d.send('NOOP\r\n'), '');
});

test('the error count starts again after each message delivered: a sender reusing its connection is no prober', () => {
  const d = inState('ehlo');
  let out = '';
  for (let m = 0; m < 4; m++) {
    out += d.send('MAIL FROM:<s@remote.test>\r\n');
    for (let i = 0; i < 6; i++) out += d.send(`RCPT TO:<gone${i}@example.test>\r\n`);
    out += d.send('RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: m\r\n\r\nx\r\n.\r\n');
  }
  assert.equal(d.delivered.length, 4, out);
  assert.ok(!d.closed);
  assert.doesNotMatch(out, /^421 /m);
});

test('past 100 commands that move no mail, each counts as an error: NOOPs do not hold a connection for ever; a message delivered starts the count again', () => {
  const d = inState('ehlo');
  let out = '';
  for (let i = 0; i < 100; i++) out += d.send(['NOOP', 'RSET', 'HELP', 'VRFY x', 'EHLO c.test'][i % 5] + '\r\n');
  out += d.send('MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: m\r\n\r\nx\r\n.\r\n');
  assert.equal(d.delivered.length, 1, out);
  for (let i = 0; i < 119; i++) out += d.send('NOOP\r\n');
  assert.ok(!d.closed, 'closed before its time');
  const last = d.send('NOOP\r\n');
  assert.match(last, /^250 2\.0\.0 Ok\r\n421 4\.7\.0 mx\.example\.test Too many errors, closing connection\r\n$/);
  assert.ok(d.closed);
});

test('empty BDAT chunks move no mail either: past the limit they end the session as NOOPs do', () => {
  const d = inState('ehlo');
  d.send('MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\n');
  // EHLO was one such command already.
  for (let i = 0; i < 118; i++) assert.equal(d.send('BDAT 0\r\n'), '250 2.0.0 0 octets received\r\n');
  assert.ok(!d.closed, 'closed before its time');
  assert.match(d.send('BDAT 0\r\n'), /^250 2\.0\.0 0 octets received\r\n421 4\.7\.0 mx\.example\.test Too many errors, closing connection\r\n$/);
  assert.ok(d.closed);
  // A chunk that carries bytes is no such command.
  const e = inState('ehlo');
  e.send('MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\n');
  for (let i = 0; i < 200; i++) e.send('BDAT 1\r\nx');
  assert.ok(!e.closed);
});

test('past 1,000 recipients over max_recipients, each counts as an error: a list sent all at once passes, one sent without end does not', () => {
  const d = inState('ehlo');
  // The driver's max_recipients is 5.
  let out = d.send('MAIL FROM:<s@remote.test>\r\n');
  for (let i = 0; i < 1005; i++) out += d.send('RCPT TO:<alice@example.test>\r\n');
  assert.ok(!d.closed, 'closed before its time');
  out += d.send('DATA\r\nSubject: m\r\n\r\nx\r\n.\r\n');
  assert.equal(d.delivered.length, 1, out);
  out = d.send('MAIL FROM:<s@remote.test>\r\n');
  for (let i = 0; i < 1024; i++) out += d.send('RCPT TO:<alice@example.test>\r\n');
  assert.ok(!d.closed, 'closed before its time');
  assert.match(d.send('RCPT TO:<alice@example.test>\r\n'), /^452 4\.5\.3 .*\r\n421 4\.7\.0 mx\.example\.test Too many errors, closing connection\r\n$/);
  assert.ok(d.closed);
});

test('NUL or bare CR in a command is a syntax error', () => {
  const d = inState('ehlo');
  assert.match(d.send('NOOP\0\r\n'), /^500 5\.5\.2 /);
  assert.match(d.send('NO\rOP\r\n'), /^500 5\.5\.2 /);
});

test('timeout and shutdown: 421 and close; shutdown waits for an open transaction', () => {
  const d = inState('ehlo');
  d.handle(d.session.timeout());
  assert.match(d.written, /421 4\.4\.2 /);
  assert.ok(d.closed);

  const e = inState('rcpt');
  e.send('DATA\r\nSubject: s\r\n');
  e.handle(e.session.shutdown());
  assert.ok(!e.closed, 'the message in progress may finish');
  const out = e.send('\r\nbody\r\n.\r\n');
  assert.deepEqual(e.codes(out), [250, 421]);
  assert.ok(e.closed);
  assert.equal(e.delivered.length, 1);
});

test('shutdown: a transaction pipelined behind the message that finishes is not begun, but answered 421', () => {
  const e = inState('rcpt');
  e.send('DATA\r\nSubject: s\r\n');
  e.handle(e.session.shutdown());
  const out = e.send('\r\nbody\r\n.\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n');
  assert.deepEqual(e.codes(out), [250, 421]);
  assert.match(out, /^421 4\.3\.2 /m);
  assert.ok(e.closed);
  assert.equal(e.delivered.length, 1);
  // Any other command pipelined behind it too.
  const a = inState('rcpt');
  a.send('DATA\r\n');
  a.handle(a.session.shutdown());
  assert.deepEqual(a.codes(a.send('x\r\n.\r\nNOOP\r\n')), [250, 421]);
});

test('session summary names the user, TLS and queued ids', () => {
  const d = new SmtpDriver({ role: 'submissions', tls: { protocol: 'TLSv1.3', cipher: 'C' } });
  d.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nS: x\r\n\r\nb\r\n.\r\nQUIT\r\n`);
  const s = d.session.summary();
  assert.equal(s.user, 'alice@example.test');
  assert.equal(s.outcome, 'quit');
  assert.deepEqual(s.queued, ['ID1']);
  assert.equal(s.tls, 'TLSv1.3 C');
});

test('EXPN names an alias\'s own targets, lists and remote addresses as they are; a name no alias has, what it reaches', () => {
  const world = { ...WORLD, aliases: { ...WORLD.aliases, 'outer@example.test': ['team@example.test', 'x@remote.test'] } };
  const d = new SmtpDriver({ role: 'submission', allowInsecureAuth: true }, world);
  d.send(`EHLO c\r\nAUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`);
  assert.equal(d.send('EXPN outer@example.test\r\n'), '250-2.1.5 <team@example.test>\r\n250 2.1.5 <x@remote.test>\r\n');
  assert.equal(d.send('EXPN bob@example.test\r\n'), '250 2.1.5 <bob@example.test>\r\n');
});

test('after STARTTLS nothing from before counts: AUTH and MAIL wait for a new EHLO (RFC 3207 §4.2); a listener without a certificate does not offer it', () => {
  const d = new SmtpDriver({ role: 'submission' });
  d.send('EHLO c\r\n');
  assert.equal(d.send('STARTTLS\r\n'), '220 2.0.0 Ready to start TLS\r\n');
  d.startTls();
  assert.match(d.send(`AUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`), /^503 /);
  assert.match(d.send('MAIL FROM:<alice@example.test>\r\n'), /^503 /);
  d.send('EHLO c\r\n');
  assert.equal(d.send(`AUTH PLAIN ${b64('\0alice@example.test\0secret')}\r\n`), '235 2.7.0 Authentication successful\r\n');
  const plain = new SmtpDriver({ starttls: false });
  assert.ok(!plain.send('EHLO c\r\n').includes('STARTTLS'));
  assert.match(plain.send('STARTTLS\r\n'), /^502 5\.5\.1 /);
  assert.ok(!plain.tlsRequested);
});

test('MAIL and RCPT: BODY=7BIT is taken, a space after the colon too (as real clients write it); parameters after HELO are 555', () => {
  const d = inState('ehlo');
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test> BODY=7BIT\r\n')), 250);
  assert.equal(lastCode(d.send('RSET\r\nMAIL FROM: <a@remote.test>\r\n')), 250);
  assert.equal(lastCode(d.send('RCPT TO: <alice@example.test>\r\n')), 250);
  const old = new SmtpDriver();
  old.send('HELO c\r\n');
  assert.match(old.send('MAIL FROM:<a@remote.test> BODY=8BITMIME\r\n'), /^555 /);
  assert.equal(lastCode(old.send('MAIL FROM:<a@remote.test>\r\n')), 250);
  assert.match(old.send('RCPT TO:<alice@example.test> NOTIFY=NEVER\r\n'), /^555 /);
  assert.equal(lastCode(old.send('RCPT TO:<alice@example.test>\r\n')), 250);
});

test('MAIL and RCPT parameters at their bounds: SIZE at the limit and one past, ENVID of 100 characters and 101, NOTIFY naming a value twice, ORCPT\'s type of letters, digits and hyphens', () => {
  const d = inState('ehlo');
  assert.equal(lastCode(d.send('MAIL FROM:<a@remote.test> SIZE=10000\r\n')), 250);
  assert.match(d.send('RSET\r\nMAIL FROM:<a@remote.test> SIZE=10001\r\n'), /\r\n552 5\.3\.4 /);
  assert.equal(lastCode(d.send(`MAIL FROM:<a@remote.test> ENVID=${'e'.repeat(100)}\r\n`)), 250);
  assert.match(d.send(`RSET\r\nMAIL FROM:<a@remote.test> ENVID=${'e'.repeat(101)}\r\n`), /\r\n501 5\.5\.4 ENVID/);
  d.send('MAIL FROM:<a@remote.test>\r\n');
  assert.match(d.send('RCPT TO:<alice@example.test> NOTIFY=SUCCESS,SUCCESS\r\n'), /^501 5\.5\.4 NOTIFY/);
  assert.match(d.send('RCPT TO:<alice@example.test> ORCPT=rfc_822;alice+40example.test\r\n'), /^501 5\.5\.4 ORCPT/);
  assert.equal(lastCode(d.send('RCPT TO:<alice@example.test> ORCPT=x-Type-2;alice+40example.test\r\n')), 250);
});
