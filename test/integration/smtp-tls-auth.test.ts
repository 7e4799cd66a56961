/**
 * STARTTLS (RFC 3207), implicit TLS on submissions, AUTH PLAIN/LOGIN (RFC 4954) and what an
 * authenticated session may do: send as its own addresses only, relay, VRFY/EXPN.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { leaves, parseMail } from '../helpers/parse-mail.ts';
import { cli, python } from '../helpers/server.ts';
import { b64, plain, SmtpClient } from '../helpers/smtp-client.ts';
import { cleanup, mailbox, PASSWORD, queue, splitTrace, startFixture, withStore, type Fixture } from '../helpers/smtp-fixture.ts';
import { until } from '../helpers/relay.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

let f: Fixture | undefined;
afterEach(async () => { await cleanup(f); f = undefined; });

const BODY = 'Subject: authenticated\r\n\r\nhello\r\n';

test('STARTTLS: AUTH only after TLS, EHLO needed again, no second STARTTLS', async () => {
  f = await startFixture();
  const c = await f.open('submission');
  const before = await c.ehlo();
  assert.ok(before.lines.includes('STARTTLS'));
  assert.ok(!before.lines.some((l) => l.startsWith('AUTH')), before.raw);
  // Submission wants AUTH before MAIL, and AUTH wants TLS.
  const mail = await c.cmd('MAIL FROM:<alice@example.test>');
  assert.equal(mail.code, 530);
  assert.equal(mail.enhanced, '5.7.0');
  const auth = await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`);
  assert.equal(auth.code, 538);
  assert.equal(auth.enhanced, '5.7.11');
  const tls = await c.starttls(f.ca);
  assert.equal(tls.raw, '220 2.0.0 Ready to start TLS\r\n');
  // RFC 3207 §4.2: the session starts over; EHLO is needed again.
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).code, 503);
  const after = await c.ehlo();
  assert.ok(!after.lines.includes('STARTTLS'), after.raw);
  assert.ok(after.lines.includes('AUTH PLAIN LOGIN'), after.raw);
  const again = await c.cmd('STARTTLS');
  assert.equal(again.code, 503);
  assert.equal(again.enhanced, '5.5.1');
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).raw, '235 2.7.0 Authentication successful\r\n');
  // AUTH is no longer offered once authenticated, and a second AUTH is out of order.
  assert.ok(!(await c.ehlo()).lines.some((l) => l.startsWith('AUTH')));
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).code, 503);
  c.destroy();
});

test('STARTTLS: commands pipelined behind STARTTLS in the same write are discarded', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  c.write('STARTTLS\r\nNOOP\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.test>\r\n');
  const r = await c.reply();
  assert.equal(r.code, 220);
  await c.upgrade(f.ca);
  // Had NOOP/MAIL/RCPT been kept, their replies would come before the EHLO reply.
  c.write('EHLO client.example.net\r\n');
  const ehlo = await c.reply();
  assert.equal(ehlo.code, 250);
  assert.equal(ehlo.lines[0], 'mx.example.test greets client.example.net', ehlo.raw);
  assert.equal(c.pending, '');
  // And no transaction survived the upgrade.
  const data = await c.cmd('DATA');
  assert.equal(data.code, 503, data.raw);
  assert.equal((await c.cmd('NOOP')).code, 250);
  c.destroy();
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 0);
});

test('STARTTLS: a transaction started before TLS does not survive it', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.starttls(f.ca)).code, 220);
  await c.ehlo();
  assert.equal((await c.cmd('DATA')).code, 503);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 503);
  c.destroy();
});

test('implicit TLS on submissions: no STARTTLS, AUTH offered, mail relayed and delivered', async () => {
  f = await startFixture();
  const c = await f.open('submissions');
  assert.ok(c.socket.constructor.name === 'TLSSocket');
  const ehlo = await c.ehlo();
  assert.ok(!ehlo.lines.includes('STARTTLS'), ehlo.raw);
  assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), ehlo.raw);
  assert.equal((await c.cmd('STARTTLS')).code, 503);
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).code, 530);
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).code, 235);
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<friend@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const done = await c.cmd(`${BODY}.`);
  assert.equal(done.code, 250, done.raw);
  const id = /queued as (\S+)/.exec(done.raw)![1]!;
  await c.quit();
  const bob = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(bob.length, 1);
  const { trace, body } = splitTrace(bob[0]!);
  // Completed as a submission agent does: the fields it lacked come after its own.
  assert.match(body.toString(), /^Subject: authenticated\r\nFrom: alice@example\.test\r\nDate: .+\r\nMessage-ID: <.+@mx\.example\.test>\r\n\r\nhello\r\n$/);
  assert.match(trace, /^Return-Path: <alice@example\.test>\r\n/);
  assert.match(trace, /with ESMTPSA id /);
  assert.match(trace, /using TLSv1\.[23] with cipher \S+/);
  assert.match(trace, /authenticated as alice@example\.test/);
  const q = await queue(f.dataDir);
  const entry = q.find((e) => e.id === id);
  assert.ok(entry, `queue entry ${id} missing: ${JSON.stringify(q)}`);
  assert.deepEqual(entry.recipients.map((r) => r.address), ['friend@remote.test']);
  assert.equal(entry.sender, 'alice@example.test');
  // The copy that leaves says how it was sent, not which login sent it.
  const leaving = await withStore(f.dataDir, async (store) => Buffer.concat(await Array.fromAsync(store.readQueued(id))).toString());
  assert.match(leaving, /^Received: from client\.example\.net \(\[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(mailnest\) with ESMTPSA id \S+ \(using TLSv1\.[23] with cipher \S+\);/);
  assert.doesNotMatch(leaving, /authenticated as|alice@example\.test\)/);
});

test('python smtplib: STARTTLS + AUTH PLAIN and LOGIN on submission, SMTP_SSL on submissions', async () => {
  f = await startFixture();
  const caFile = `${f.dir}/ca.pem`;
  fs.writeFileSync(caFile, f.ca);
  const script = `
import json, smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
ctx.check_hostname = False
out = {}
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='client.example.net', timeout=20)
s.ehlo()
out['auth_before_tls'] = s.has_extn('auth')
out['starttls'] = s.starttls(context=ctx)[0]
s.ehlo()
out['auth_after_tls'] = s.esmtp_features.get('auth', '').strip()
try:
    s.login('alice@example.test', 'wrong password')
except smtplib.SMTPAuthenticationError as e:
    out['bad'] = [e.smtp_code, e.smtp_error.decode()]
s.user, s.password = 'alice@example.test', sys.argv[4]
out['login'] = s.auth('LOGIN', s.auth_login, initial_response_ok=False)[0]
out['send'] = s.sendmail('alice@example.test', ['bob@example.test'], 'Subject: via LOGIN\\r\\n\\r\\nhi\\r\\n')
out['quit'] = s.quit()[0]
s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[2]), local_hostname='client.example.net', timeout=20, context=ctx)
s.ehlo()
s.user, s.password = 'bob@example.test', sys.argv[4]
out['plain'] = s.auth('PLAIN', s.auth_plain, initial_response_ok=True)[0]
out['send2'] = s.sendmail('bob@example.test', ['alice@example.test'], 'Subject: via PLAIN\\r\\n\\r\\nhi\\r\\n')
s.quit()
print(json.dumps(out))
`;
  const r = python(script, [String(f.port('submission')), String(f.port('submissions')), caFile, PASSWORD]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.auth_before_tls, false);
  assert.equal(out.starttls, 220);
  assert.equal(out.auth_after_tls, 'PLAIN LOGIN');
  assert.deepEqual(out.bad, [535, '5.7.8 Authentication credentials invalid']);
  assert.equal(out.login, 235);
  assert.deepEqual(out.send, {});
  assert.equal(out.quit, 221);
  assert.equal(out.plain, 235);
  assert.deepEqual(out.send2, {});
  assert.equal((await mailbox(f.dataDir, 'bob@example.test')).length, 1);
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
});

test('python smtplib: past limits.max_outgoing_per_day a user\'s recipients at other domains get 450 4.7.1, across a restart; mail to local users still goes', async () => {
  const hop = new SmtpSink();
  await hop.start();
  f = await startFixture({ config: { limits: { max_outgoing_per_day: 3 }, relay: { routes: { 'remote.test': `127.0.0.1:${hop.port}` } } }, aliases: { 'fwd@example.test': ['e@remote.test'] } });
  const caFile = `${f.dir}/ca.pem`;
  fs.writeFileSync(caFile, f.ca);
  const script = `
import json, smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.starttls(context=ctx)
s.login('alice@example.test', sys.argv[3])
out = []
for rcpts in json.loads(sys.argv[4]):
    try:
        refused = s.sendmail('alice@example.test', rcpts, 'Subject: news\\r\\n\\r\\nhi\\r\\n')
    except smtplib.SMTPRecipientsRefused as e:
        refused = e.recipients
    out.append({k: [v[0], v[1].decode()] for k, v in refused.items()})
s.quit()
print(json.dumps(out))
`;
  const send = (batches: string[][]) => {
    const r = python(script, [String(f!.port('submission')), caFile, PASSWORD, JSON.stringify(batches)]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const over = (to: string) => [450, `4.7.1 <${to}>: alice@example.test may send to 3 recipients at other domains in 24 hours (limits.max_outgoing_per_day), and this one would pass that; try again later`];
  try {
    const first = send([['a@remote.test', 'b@remote.test'], ['c@remote.test', 'd@remote.test', 'bob@example.test'], ['d@remote.test']]);
    assert.deepEqual(first, [{}, { 'd@remote.test': over('d@remote.test') }, { 'd@remote.test': over('d@remote.test') }]);
    await f.stop();
    await f.restart();
    // A local alias that sends on to another domain is held to it too.
    assert.deepEqual(send([['d@remote.test'], ['fwd@example.test'], ['bob@example.test']]), [{ 'd@remote.test': over('d@remote.test') }, { 'fwd@example.test': over('fwd@example.test') }, {}]);
    assert.equal((await mailbox(f.dataDir, 'bob@example.test')).length, 2);
    assert.deepEqual((await hop.waitFor(2)).flatMap((m) => m.to).sort(), ['a@remote.test', 'b@remote.test', 'c@remote.test']);
    await until('the refusal logged', () => f!.server.logs.some((l) => l.msg === 'refused' && l.reason === 'daily_limit'));
    // A warning: the user may be someone with its password.
    const line = f.server.logs.find((l) => l.msg === 'refused' && l.reason === 'daily_limit')!;
    assert.deepEqual([line.level, line.from, line.to], [40, 'alice@example.test', ['d@remote.test']]);
  } finally {
    await hop.stop();
  }
});

async function tlsSession(fx: Fixture): Promise<SmtpClient> {
  const c = await fx.open('submission');
  await c.ehlo();
  assert.equal((await c.starttls(fx.ca)).code, 220);
  await c.ehlo();
  return c;
}

test('AUTH PLAIN with and without initial response; LOGIN exactly as clients expect', async () => {
  f = await startFixture();
  // PLAIN with an initial response.
  let c = await tlsSession(f);
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).raw, '235 2.7.0 Authentication successful\r\n');
  c.destroy();
  // PLAIN without: an empty challenge, then the response.
  c = await tlsSession(f);
  assert.equal((await c.cmd('AUTH PLAIN')).raw, '334 \r\n');
  assert.equal((await c.cmd(plain('alice@example.test', PASSWORD))).code, 235);
  c.destroy();
  // PLAIN with an authorization identity equal to the login, and a mechanism name in lower case.
  c = await tlsSession(f);
  assert.equal((await c.cmd(`auth plain ${b64(`alice@example.test\0alice@example.test\0${PASSWORD}`)}`)).code, 235);
  c.destroy();
  // LOGIN: Username:, Password:, success.
  c = await tlsSession(f);
  assert.equal((await c.cmd('AUTH LOGIN')).raw, '334 VXNlcm5hbWU6\r\n');
  assert.equal((await c.cmd(b64('bob@example.test'))).raw, '334 UGFzc3dvcmQ6\r\n');
  assert.equal((await c.cmd(b64(PASSWORD))).raw, '235 2.7.0 Authentication successful\r\n');
  // Authenticated as bob: bob may send as bob.
  assert.equal((await c.cmd('MAIL FROM:<bob@example.test>')).code, 250);
  c.destroy();
  // LOGIN with the user name as initial response.
  c = await tlsSession(f);
  assert.equal((await c.cmd(`AUTH LOGIN ${b64('bob@example.test')}`)).raw, '334 UGFzc3dvcmQ6\r\n');
  assert.equal((await c.cmd(b64(PASSWORD))).code, 235);
  c.destroy();
});

test('AUTH failures and cancels: 535 5.7.8, 501 on "*", bad base64, acting as another user', async () => {
  f = await startFixture();
  const c = await tlsSession(f);
  // Cancel at each step.
  assert.equal((await c.cmd('AUTH PLAIN')).code, 334);
  const cancel = await c.cmd('*');
  assert.equal(cancel.code, 501);
  assert.equal(cancel.enhanced, '5.0.0');
  assert.equal((await c.cmd('AUTH LOGIN')).code, 334);
  assert.equal((await c.cmd(b64('alice@example.test'))).code, 334);
  assert.equal((await c.cmd('*')).code, 501);
  // Not base64.
  assert.equal((await c.cmd('AUTH PLAIN !!!')).code, 501);
  assert.equal((await c.cmd('AUTH LOGIN')).code, 334);
  assert.equal((await c.cmd('not base64 at all')).code, 501);
  // PLAIN acting as someone else, and a malformed PLAIN message: both fail authentication.
  assert.equal((await c.cmd(`AUTH PLAIN ${b64(`bob@example.test\0alice@example.test\0${PASSWORD}`)}`)).code, 535);
  assert.equal((await c.cmd(`AUTH PLAIN ${b64('alice@example.test')}`)).code, 535);
  // The session is still in command mode after all that.
  assert.equal((await c.cmd('NOOP')).code, 250);
  // Wrong password, then unknown user: the same answer.
  const wrong = await c.cmd(`AUTH PLAIN ${plain('alice@example.test', 'nope')}`);
  assert.equal(wrong.raw, '535 5.7.8 Authentication credentials invalid\r\n');
  const unknown = await c.cmd(`AUTH PLAIN ${plain('nobody@example.test', PASSWORD)}`);
  assert.equal(unknown.raw, wrong.raw);
  // Still unauthenticated: MAIL wants AUTH; then a good AUTH works.
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).code, 530);
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).code, 235);
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).code, 250);
  c.destroy();
});

test('AUTH without TLS: 538 5.7.11 on smtp and submission, unless allow_insecure', async () => {
  f = await startFixture();
  for (const listener of ['smtp', 'submission'] as const) {
    const c = await f.open(listener);
    const ehlo = await c.ehlo();
    assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')), ehlo.raw);
    const r = await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`);
    assert.equal(r.raw, '538 5.7.11 Encryption required for requested authentication mechanism\r\n');
    assert.equal((await c.cmd('AUTH LOGIN')).code, 538);
    // AUTH before EHLO is out of order whatever the transport.
    c.destroy();
  }
  const h = await f.open('smtp');
  assert.equal((await h.cmd('HELO client.example.net')).code, 250);
  assert.equal((await h.cmd('AUTH LOGIN')).code, 503);
  h.destroy();
  await cleanup(f);

  f = await startFixture({ config: { auth: { allow_insecure: true } } });
  const c = await f.open('submission');
  const ehlo = await c.ehlo();
  assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), ehlo.raw);
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).code, 235);
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd(`${BODY}.`)).code, 250);
  await c.quit();
  const bob = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(bob.length, 1);
  assert.match(splitTrace(bob[0]!).trace, /with ESMTPA id /);
});

test('the authenticated user sends only as itself or an alias that delivers to it', async () => {
  f = await startFixture({
    aliases: {
      'al@example.test': ['alice@example.test'],
      'team@example.test': ['alice@example.test', 'bob@example.test'],
      'bobby@example.test': ['bob@example.test'],
    },
  });
  const c = await f.openAuthenticated('alice@example.test');
  const tryFrom = async (sender: string) => {
    const r = await c.cmd(`MAIL FROM:${sender}`);
    if (r.code === 250) assert.equal((await c.cmd('RSET')).code, 250);
    return r;
  };
  assert.equal((await tryFrom('<alice@example.test>')).code, 250);
  assert.equal((await tryFrom('<ALICE@Example.Test>')).code, 250);
  assert.equal((await tryFrom('<al@example.test>')).code, 250);
  assert.equal((await tryFrom('<team@example.test>')).code, 250);
  for (const other of ['<bob@example.test>', '<bobby@example.test>', '<someone@remote.test>', '<nobody@example.test>', '<>']) {
    const r = await tryFrom(other);
    assert.equal(r.code, 553, `${other} -> ${r.raw}`);
    assert.equal(r.enhanced, '5.7.1');
  }
  // A refused sender leaves no transaction behind.
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 503);
  // Sending as the alias works end to end.
  assert.equal((await c.cmd('MAIL FROM:<al@example.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd(`${BODY}.`)).code, 250);
  await c.quit();
  const bob = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(bob.length, 1);
  assert.match(bob[0]!.toString(), /^Return-Path: <al@example\.test>\r\n/);
  // The header From is held to the same rule: the message is refused at its end.
  const d = await f.openAuthenticated('alice@example.test');
  for (const [from, code] of [['Bob <bob@example.test>', 550], ['alice@example.test, bobby@example.test', 550], ['x@remote.test', 550], ['victim', 550], ['undisclosed:;', 550], ['"Team" <team@example.test>', 250], ['A <al@example.test>', 250],
    // A quoted local part that needs no quotes is the same mailbox (RFC 5321 §4.1.2), in either form.
    ['"alice"@example.test', 250], ['Alice <"alice"@example.test>', 250], ['Bob <"bob"@example.test>', 550], ['Bob <"bo\\b"@example.test>', 550],
    // Read one way by the check and another by readers: refused (RFC 5322 §3.4).
    ['bob@example.test <alice@example.test>', 550], ['<alice@example.test>bob@example.test', 550], ['<alice@example.test> <bob@example.test>', 550], ['alice@example.test bob@example.test', 550]] as const) {
    assert.equal((await d.cmd('MAIL FROM:<alice@example.test>')).code, 250);
    assert.equal((await d.cmd('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await d.cmd('DATA')).code, 354);
    const r = await d.cmd(`From: ${from}\r\n${BODY}.`);
    assert.equal(r.code, code, `${from}: ${r.raw}`);
    if (code === 550) assert.match(r.raw, /^550 5\.7\.1 From: (<[^>]+> is not one of your addresses|names no address that reads one way only; it must name one of yours)\r\n$/);
  }
  // So are the other fields that name who wrote or sent it (RFC 5322 §3.6.2, §3.6.6).
  for (const [field, code] of [['Sender: Bob <bob@example.test>', 550], ['Resent-From: bob@example.test', 550], ['Resent-Sender: x@remote.test', 550], ['Sender: A <al@example.test>', 250]] as const) {
    assert.equal((await d.cmd('MAIL FROM:<alice@example.test>')).code, 250);
    assert.equal((await d.cmd('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await d.cmd('DATA')).code, 354);
    const r = await d.cmd(`From: alice@example.test\r\n${field}\r\n${BODY}.`);
    assert.equal(r.code, code, `${field}: ${r.raw}`);
    if (code === 550) assert.equal(r.raw, `550 5.7.1 ${field.slice(0, field.indexOf(':'))}: <${/<?([^<>\s]+@[^<>\s]+)>?$/.exec(field)![1]}> is not one of your addresses\r\n`);
  }
  // A From too long to be read is refused as such.
  assert.equal((await d.cmd('MAIL FROM:<alice@example.test>')).code, 250);
  assert.equal((await d.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await d.cmd('DATA')).code, 354);
  const long = await d.cmd(`From: alice@example.test${',\r\n alice@example.test'.repeat(1000)}\r\n${BODY}.`);
  assert.equal(long.raw, '550 5.7.1 From: over 16384 octets, too long to be checked; it must name one of your addresses\r\n');
  await d.quit();
  assert.equal((await mailbox(f.dataDir, 'bob@example.test')).length, 6);
});

test('a session whose account was removed, or removed and made again under its address, sends nothing more: 421, and the connection closes', async () => {
  f = await startFixture();
  const before = await f.openAuthenticated('alice@example.test');
  const midway = await f.openAuthenticated('alice@example.test');
  assert.equal((await midway.cmd('MAIL FROM:<alice@example.test>')).code, 250);
  assert.equal((await midway.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await midway.cmd('DATA')).code, 354);
  assert.equal(cli(f.configFile, ['user', 'remove', 'alice@example.test']).status, 0);
  assert.equal(cli(f.configFile, ['user', 'add', 'alice@example.test', '--password-stdin'], 'a new password\n').status, 0);
  const gone = '421 4.7.0 mx.example.test The account alice@example.test no longer exists, closing connection\r\n';
  assert.equal((await midway.cmd(`${BODY}.`)).raw, gone);
  assert.equal((await before.cmd('MAIL FROM:<alice@example.test>')).raw, gone);
  assert.equal((await mailbox(f.dataDir, 'bob@example.test')).length, 0);
  // The new account's own login works.
  const fresh = await f.openAuthenticated('alice@example.test', 'a new password');
  assert.equal((await fresh.cmd('MAIL FROM:<alice@example.test>')).code, 250);
  await fresh.quit();
});

test('VRFY and EXPN answer from users and aliases once authenticated', async () => {
  f = await startFixture({ aliases: { 'fwd@example.test': ['someone@remote.test'], 'al@example.test': ['alice@example.test'] } });
  // The operator's way, on the running server.
  const added = cli(f.configFile, ['alias', 'add', 'team@example.test', 'alice@example.test', 'bob@example.test']);
  assert.equal(added.status, 0, added.stderr);
  const c = await f.openAuthenticated('bob@example.test');
  const expect = async (line: string, raw: string) => assert.equal((await c.cmd(line)).raw, raw, line);
  await expect('VRFY alice@example.test', '250 2.1.5 <alice@example.test>\r\n');
  await expect('VRFY <Alice@example.test>', '250 2.1.5 <alice@example.test>\r\n');
  await expect('VRFY al@example.test', '250 2.1.5 <alice@example.test>\r\n');
  assert.equal((await c.cmd('VRFY nobody@example.test')).code, 550);
  assert.equal((await c.cmd('VRFY team@example.test')).code, 553);
  assert.equal((await c.cmd('VRFY fwd@example.test')).code, 251);
  assert.equal((await c.cmd('VRFY someone@remote.test')).code, 252);
  await expect('EXPN team@example.test', '250-2.1.5 <alice@example.test>\r\n250 2.1.5 <bob@example.test>\r\n');
  await expect('EXPN bob@example.test', '250 2.1.5 <bob@example.test>\r\n');
  assert.equal((await c.cmd('EXPN nobody@example.test')).code, 550);
  assert.equal((await c.cmd('VRFY not an address')).code, 501);
  c.destroy();
  // curl asks with SMTPUTF8 whenever it is offered (RFC 6531 §3.7.4.2).
  const caFile = `${f.dir}/ca.pem`;
  fs.writeFileSync(caFile, f.ca);
  const port = f.port('submission');
  for (const [verb, rcpt, answer] of [['VRFY', 'al@example.test', '250 2.1.5 <alice@example.test>'], ['EXPN', 'team@example.test', '250-2.1.5 <alice@example.test>\n250 2.1.5 <bob@example.test>']] as const) {
    const r = spawnSync('curl', ['-sS', '--max-time', '30', '--ssl-reqd', '--cacert', caFile, '--resolve', `mx.example.test:${port}:127.0.0.1`,
      '-u', `bob@example.test:${PASSWORD}`, '--mail-rcpt', rcpt, '-X', verb, `smtp://mx.example.test:${port}`], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `curl ${verb}: ${r.stderr}`);
    assert.equal(r.stdout.replace(/\r/g, '').trim(), answer, verb);
  }
});

test('submission: DSN parameters (RFC 3461) are stored with the queued message', async () => {
  f = await startFixture();
  const c = await f.openAuthenticated('alice@example.test');
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test> RET=HDRS ENVID=env+2B42')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<one@remote.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;one+40remote.test')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<two@remote.test> NOTIFY=NEVER')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<three@remote.test>')).code, 250);
  // The same mailbox again, in another case: the first naming stands, with its parameters.
  assert.equal((await c.cmd('RCPT TO:<One@REMOTE.test> NOTIFY=NEVER')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const done = await c.cmd(`${BODY}.`);
  assert.equal(done.code, 250);
  const id = /queued as (\S+)/.exec(done.raw)![1]!;
  await c.quit();
  const entry = (await queue(f.dataDir)).find((e) => e.id === id);
  assert.ok(entry);
  assert.deepEqual(entry.dsn, { ret: 'HDRS', envid: 'env+42' });
  const byAddress = Object.fromEntries(entry.recipients.map((r) => [r.address, { notify: r.notify, orcpt: r.orcpt }]));
  assert.deepEqual(byAddress, {
    'one@remote.test': { notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;one@remote.test' },
    'two@remote.test': { notify: ['NEVER'], orcpt: undefined },
    'three@remote.test': { notify: undefined, orcpt: undefined },
  });
});

test('submission: Bcc, Resent-Bcc and Return-Path go, From, Date and Message-ID are added when missing (RFC 6409 §8)', async () => {
  f = await startFixture();
  const c = await f.openAuthenticated('alice@example.test');
  const send = async (message: string) => {
    assert.equal((await c.cmd('MAIL FROM:<alice@example.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<hidden@remote.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const done = await c.cmd(`${message}.`);
    assert.equal(done.code, 250, done.raw);
    return /queued as (\S+)/.exec(done.raw)![1]!;
  };
  const complete = 'From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\nSubject: kept\r\n\r\nBcc: this is the body\r\n';
  const ids = [
    await send('To: bob@example.test\r\nBcc: hidden@remote.test,\r\n  other@remote.test\r\nReturn-Path: <forged@bank.test>\r\nResent-Bcc: x@remote.test\r\nSubject: trimmed\r\n\r\nhello\r\n'),
    await send(complete),
  ];
  await c.quit();
  const bob = await mailbox(f.dataDir, 'bob@example.test');
  // The queued copy is our Received field and the message.
  const afterReceived = (text: string) => {
    assert.match(text, /^Received: /);
    let pos = text.indexOf('\r\n') + 2;
    while (text[pos] === ' ' || text[pos] === '\t') pos = text.indexOf('\r\n', pos) + 2;
    return text.slice(pos);
  };
  const queued = await withStore(f.dataDir, async (store) => Promise.all(ids.map(async (id) => afterReceived(Buffer.concat(await Array.fromAsync(store.readQueued(id))).toString()))));
  for (const copy of [splitTrace(bob[0]!).body.toString(), queued[0]!]) {
    // (field names only: a random Message-ID may hold "bcc")
    assert.doesNotMatch(copy, /^(Resent-)?Bcc:|hidden@remote|other@remote|x@remote|forged/im, copy);
    // Its Resent-Bcc made it a message resent (RFC 5322 §3.6.6): the rest of that block is added.
    assert.match(copy, /^To: bob@example\.test\r\nSubject: trimmed\r\nFrom: alice@example\.test\r\nDate: [A-Z][a-z]{2}, \d+ [A-Z][a-z]{2} \d{4} [\d:]{8} [+-]\d{4}\r\nMessage-ID: <[^@>]+@mx\.example\.test>\r\nResent-From: alice@example\.test\r\nResent-Date: [^\r]+\r\nResent-Message-ID: <[^@>]+@mx\.example\.test>\r\n\r\nhello\r\n$/, copy);
  }
  // A message that lacks nothing keeps its bytes (a "Bcc:" line in the body is no field).
  assert.equal(splitTrace(bob[1]!).body.toString(), complete);
  assert.equal(queued[1], complete);
});

test('submission: a header line over 998 octets is folded, a body line made quoted-printable before signing, in a multipart\'s part too, or refused when it cannot be (RFC 5322 §2.1.1)', async () => {
  f = await startFixture();
  const c = await f.openAuthenticated('alice@example.test');
  const long = `${'L'.repeat(3000)} Köln`;
  const head = 'From: alice@example.test\r\nTo: bob@example.test\r\nSubject: long\r\n';
  // Not MIME; one text part in 8bit; a multipart whose part has the long line.
  const plain = await c.transaction('<alice@example.test>', ['<bob@example.test>'], `${head}\r\nshort\r\n${long}`);
  assert.equal(plain.code, 250, plain.raw);
  const single = await c.transaction('<alice@example.test>', ['<bob@example.test>'], `${head}MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<p>${long}</p>`);
  assert.equal(single.code, 250, single.raw);
  const multi = await c.transaction('<alice@example.test>', ['<bob@example.test>'], `${head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${long}\r\n--b--`);
  assert.equal(multi.code, 250, multi.raw);
  // A message inside the message cannot be re-encoded without changing what it says.
  const inner = await c.transaction('<alice@example.test>', ['<bob@example.test>'], `${head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n${long}\r\n--b--`);
  assert.equal(inner.code, 554);
  assert.equal(inner.raw, '554 5.6.0 body line 6 is 3006 octets; lines are limited to 998 (RFC 5322 section 2.1.1): encode the message it holds, or attach it as a file (base64)\r\n');
  // A header line is folded before white space; the body, short, stays as it was.
  const subject = 'word '.repeat(400).trim();
  const folded = await c.transaction('<alice@example.test>', ['<bob@example.test>'], `From: alice@example.test\r\nSubject: ${subject}\r\n\r\nshort`);
  assert.equal(folded.code, 250, folded.raw);
  await c.quit();
  const got = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(got.length, 4);
  const header = parseMail(got[3]!);
  assert.equal(header.headers.subject, subject);
  assert.ok(header.longestLine <= 998, `${header.longestLine}`);
  assert.equal(header.root.text, 'short\n');
  got.pop();
  const parsed = got.map((m) => parseMail(m));
  for (const p of parsed) assert.ok(p.longestLine <= 998, `${p.longestLine}`);
  assert.deepEqual(parsed.map((p) => [p.root.contentType, p.root.cte, p.root.charset, p.root.text]), [
    ['text/plain', 'quoted-printable', 'utf-8', `short\n${long}\n`],
    ['text/html', 'quoted-printable', 'utf-8', `<p>${long}</p>\n`],
    ['multipart/mixed', '', null, undefined],
  ]);
  assert.deepEqual(leaves(parsed[2]!.root).map((p) => [p.contentType, p.cte, p.charset, p.text]), [['text/plain', 'quoted-printable', 'utf-8', long]]);
});

test('submission: a message that its long lines\' encoding takes over limits.max_message_size gets 552 5.3.4, saying so', async () => {
  f = await startFixture({ config: { limits: { max_message_size: 60_000 } } });
  const c = await f.openAuthenticated('alice@example.test');
  // 40,000 octets of 8-bit text in long lines: about three times as much as quoted-printable.
  const text = 'é'.repeat(1000);
  const r = await c.transaction('<alice@example.test>', ['<bob@example.test>'], `From: alice@example.test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${`${text}\r\n`.repeat(20)}`);
  assert.equal(r.code, 552, r.raw);
  assert.match(r.raw, /^552 5\.3\.4 the message is \d+ bytes once re-encoded \(quoted-printable, for lines over 998 octets or 8-bit text outside MIME\); at most 60000 are allowed\r\n$/);
  // The fields the server adds to a message that lacks them (Date, Message-ID) are its own, as
  // its trace fields are: a message of the largest size, with nothing to re-encode, is taken.
  const head = 'From: alice@example.test\r\nSubject: at the limit\r\n\r\n';
  const line = `${'x'.repeat(98)}\r\n`;
  const body = line.repeat(Math.floor((60_000 - head.length) / line.length));
  const exact = `${head}${body}${'y'.repeat(60_000 - head.length - body.length - 2)}\r\n`;
  assert.equal(exact.length, 60_000);
  // (The line end before the final dot is the message's last.)
  const taken = await c.transaction('<alice@example.test>', ['<bob@example.test>'], exact.slice(0, -2));
  assert.equal(taken.code, 250, taken.raw);
  await c.quit();
  const got = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(got.length, 1);
  assert.match(got[0]!.toString('latin1'), /\r\nDate: .*\r\nMessage-ID: /);
  // Its log line gives the size as it came (docs/SMTP.md).
  const { logs } = f.server;
  await until('the log line', () => logs.some((l) => l.msg === 'message accepted'));
  assert.deepEqual(logs.filter((l) => l.msg === 'message accepted').map((l) => l.size), [60_000]);
});

test('STARTTLS on the smtp listener: mail is received as ESMTPS with the TLS noted', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.starttls(f.ca)).code, 220);
  const ehlo = await c.ehlo('tls.client.example.net');
  // The MX offers AUTH once encrypted, but needs none for local mail.
  assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), ehlo.raw);
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<x@remote.test>')).code, 550, 'still no relay without AUTH');
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd(`${BODY}.`)).code, 250);
  await c.quit();
  const [stored] = await mailbox(f.dataDir, 'alice@example.test');
  const { trace, body } = splitTrace(stored!);
  assert.equal(body.toString(), BODY);
  assert.match(trace, /from tls\.client\.example\.net \(\[127\.0\.0\.1\]\)/);
  assert.match(trace, /with ESMTPS id /);
  assert.match(trace, /using TLSv1\.[23] with cipher /);
  assert.doesNotMatch(trace, /authenticated/);
});

test('a failed STARTTLS handshake closes the connection and frees its slot', async () => {
  f = await startFixture({ config: { limits: { max_connections_per_ip: 1 } } });
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('STARTTLS')).code, 220);
  c.write('this is not a TLS ClientHello\r\n\r\n');
  await c.closedByServer();
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    const d = await SmtpClient.connect(f.port('smtp'));
    const r = await d.reply();
    ok = r.code === 220;
    d.destroy();
    if (!ok) await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(ok, 'the slot of the failed connection was never released');
  // The log line travels through the server's stdout: it may come a little after the slot.
  const failed = () => f!.server.logs.some((l) => l.msg === 'session' && l.listener === 'smtp' && l.outcome === 'TLS handshake failed' && l.helo);
  for (let i = 0; i < 100 && !failed(); i++) await new Promise((res) => setTimeout(res, 20));
  assert.ok(failed(), JSON.stringify(f.server.logs.filter((l) => l.msg === 'session')));
});

test('implicit TLS and STARTTLS: a client that ends its side during the handshake is let go at once, not at the idle limit', { timeout: 60_000 }, async () => {
  f = await startFixture();
  const quit = await SmtpClient.connect(f.port('submissions'));
  quit.socket.end();
  await quit.closedByServer();
  const upgrading = await f.open('submission');
  await upgrading.ehlo();
  assert.equal((await upgrading.cmd('STARTTLS')).code, 220);
  upgrading.socket.end();
  await upgrading.closedByServer();
  // The idle limit is five minutes here: the test's own time limit ends a wait for it.
  const outcomes = () => f!.server.logs.filter((l) => l.msg === 'session' && (l.listener === 'submissions' || l.listener === 'submission')).map((l) => l.outcome);
  for (let i = 0; i < 100 && outcomes().length < 2; i++) await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(outcomes(), ['TLS handshake failed', 'TLS handshake failed']);
});

test('implicit TLS: a client that never completes the handshake still gets its session log line', async () => {
  f = await startFixture({ config: { limits: { idle_timeout: '1s' } } });
  const plain = await SmtpClient.connect(f.port('submissions'));
  plain.write('EHLO plaintext.example\r\n');
  await plain.closedByServer();
  const silent = await SmtpClient.connect(f.port('submissions'));
  await silent.closedByServer();
  const outcomes = () => f!.server.logs.filter((l) => l.msg === 'session' && l.listener === 'submissions').map((l) => l.outcome).sort();
  for (let i = 0; i < 100 && outcomes().length < 2; i++) await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(outcomes(), ['TLS handshake failed', 'TLS handshake timed out']);
});

test('TLS: no renegotiation a client asks for, and TLS 1.2 only with forward-secret AEAD suites (RFC 9325 §4.1, §4.2)', async () => {
  f = await startFixture();
  const port = f.port('submissions');
  const connect = (options: tls.ConnectionOptions) => new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => resolve(s));
    s.once('error', reject);
  });
  // RSA key transport, and CBC with SHA-1, are not offered.
  for (const ciphers of ['AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA']) {
    await assert.rejects(connect({ maxVersion: 'TLSv1.2', ciphers }), /handshake failure/, ciphers);
  }
  const good = await connect({ maxVersion: 'TLSv1.2' });
  assert.match(good.getCipher().name, /^ECDHE-RSA-AES\d+-GCM-SHA\d+$/);
  // Asked for, a renegotiation is refused with an alert, which ends the session.
  const refused = new Promise<unknown>((resolve) => good.once('error', resolve));
  good.renegotiate({ rejectUnauthorized: false }, () => {});
  assert.equal((await refused as NodeJS.ErrnoException).code, 'ERR_SSL_NO_RENEGOTIATION');
  good.destroy();
});
