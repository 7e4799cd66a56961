/**
 * The RFC 5321 command table over a real socket, spoken by python3's smtplib and by raw
 * dialogues: every verb, its reply codes, enhanced status codes only after EHLO, bad order
 * (503), bad syntax (501), unknown verbs (500), case-insensitive verbs, and what gets stored.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { cli, python } from '../helpers/server.ts';
import { cleanup, mailbox, PASSWORD, splitTrace, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';
import { until } from '../helpers/relay.ts';
import { startDnsServer } from '../helpers/dns-server.ts';

let f: Fixture | undefined;
afterEach(async () => { await cleanup(f); f = undefined; });

const MESSAGE = 'From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\nHello Alice.\r\n';

test('greeting, EHLO extensions, HELP, NOOP, QUIT', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  const ehlo = await c.ehlo('client.example.net');
  assert.equal(ehlo.lines[0], 'mx.example.test greets client.example.net');
  assert.deepEqual(ehlo.lines.slice(1), [
    'PIPELINING', 'SIZE 26214400', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'DSN', 'STARTTLS', 'HELP',
  ]);
  // No AUTH offered without TLS (allow_insecure is off).
  assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')));
  const help = await c.cmd('HELP');
  assert.equal(help.code, 214);
  assert.equal(help.enhanced, '2.0.0');
  assert.match(help.lines.join('\n'), /HELO EHLO MAIL RCPT DATA/);
  const noop = await c.cmd('NOOP');
  assert.equal(noop.raw, '250 2.0.0 Ok\r\n');
  assert.equal((await c.cmd('NOOP anything goes')).code, 250);
  const quit = await c.cmd('QUIT');
  assert.equal(quit.raw, '221 2.0.0 mx.example.test Bye\r\n');
  assert.equal(await c.closedByServer(), '');
});

test('the greeting names the host; HELO gives replies without enhanced status codes', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  const helo = await c.cmd('HELO client.example.net');
  assert.equal(helo.raw, '250 mx.example.test\r\n');
  const bad = await c.cmd('MAIL FROM:<not an address>');
  assert.equal(bad.code, 501);
  assert.equal(bad.enhanced, undefined, bad.raw);
  const order = await c.cmd('DATA');
  assert.equal(order.code, 503);
  assert.equal(order.enhanced, undefined, order.raw);
  const unknown = await c.cmd('FROB');
  assert.equal(unknown.code, 500);
  assert.equal(unknown.enhanced, undefined, unknown.raw);
  assert.equal((await c.cmd('NOOP')).raw, '250 Ok\r\n');
  // Switching to EHLO turns them on.
  await c.ehlo();
  assert.equal((await c.cmd('NOOP')).raw, '250 2.0.0 Ok\r\n');
  c.destroy();
});

test('after EHLO every reply carries an enhanced status code', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  const dialogue: [string, number, string][] = [
    ['FROB', 500, '5.5.1'],
    ['TURN', 502, '5.5.1'],
    ['RCPT TO:<alice@example.test>', 503, '5.5.1'],
    ['DATA', 503, '5.5.1'],
    ['MAIL FROM:<a@remote.test>', 250, '2.1.0'],
    ['MAIL FROM:<a@remote.test>', 503, '5.5.1'],
    ['RCPT TO:<nobody@example.test>', 550, '5.1.1'],
    ['RCPT TO:<x@remote.test>', 550, '5.7.1'],
    ['DATA', 554, '5.5.1'],
    ['RCPT TO:<alice@example.test>', 250, '2.1.5'],
    ['RSET', 250, '2.0.0'],
    ['VRFY alice@example.test', 252, '2.5.0'],
    ['EXPN alice@example.test', 252, '2.5.0'],
    ['NOOP', 250, '2.0.0'],
    ['HELP', 214, '2.0.0'],
  ];
  for (const [line, code, enhanced] of dialogue) {
    const r = await c.cmd(line);
    assert.equal(r.code, code, `${line} -> ${r.raw}`);
    assert.equal(r.enhanced, enhanced, `${line} -> ${r.raw}`);
  }
  c.destroy();
});

test('commands out of order get 503 and leave the session usable', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  // Before HELO/EHLO.
  assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 503);
  await c.ehlo();
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 503);
  assert.equal((await c.cmd('DATA')).code, 503);
  assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 503, 'nested MAIL');
  // DATA with no accepted recipient: 554 (RFC 5321 §3.3), no 354.
  assert.equal((await c.cmd('DATA')).code, 554);
  // RSET ends the transaction: RCPT is out of order again.
  assert.equal((await c.cmd('RSET')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 503);
  // AUTH during a transaction.
  assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
  assert.equal((await c.cmd('AUTH PLAIN')).code, 503);
  // EHLO resets the transaction (RFC 5321 §4.1.4).
  await c.ehlo();
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 503);
  // Still a working session.
  assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd(`${MESSAGE}.`)).code, 250);
  await c.quit();
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
});

test('bad syntax gets 501 (or 555 for unknown parameters) with a precise enhanced code', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  const after: [string, number, string][] = [
    ['MAIL alice@example.test', 501, '5.5.4'],
    ['MAIL FROM:alice@example.test', 501, '5.1.7'],
    ['MAIL FROM:<alice>', 501, '5.1.7'],
    ['MAIL FROM:<a..b@remote.test>', 501, '5.1.7'],
    ['MAIL FROM:<a@remote.test> SIZE=big', 501, '5.5.4'],
    ['MAIL FROM:<a@remote.test> FROB=1', 555, '5.5.4'],
    ['MAIL FROM:<a@remote.test> BODY=9BIT', 501, '5.5.4'],
    ['MAIL FROM:<a@remote.test> BODY=BINARYMIME', 555, '5.5.4'],
    ['MAIL FROM:<a@remote.test> RET=ALL', 501, '5.5.4'],
    ['MAIL FROM:<a@remote.test> SMTPUTF8=yes', 501, '5.5.4'],
    ['MAIL FROM:<a@remote.test> SIZE=1 SIZE=2', 501, '5.5.4'],
    ['MAIL FROM:<a@remote.test>', 250, '2.1.0'],
    ['RCPT alice@example.test', 501, '5.5.4'],
    ['RCPT TO:<>', 501, '5.1.3'],
    ['RCPT TO:<alice@[300.1.1.1]>', 501, '5.1.3'],
    ['RCPT TO:<alice@example.test> NOTIFY=SOMETIMES', 501, '5.5.4'],
    ['RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS', 501, '5.5.4'],
    ['RCPT TO:<alice@example.test> ORCPT=nonsense', 501, '5.5.4'],
    ['RCPT TO:<alice@example.test> FROB', 555, '5.5.4'],
    ['RCPT TO:<alice@example.test>', 250, '2.1.5'],
  ];
  const beforeMail: [string, number, string][] = [
    ['VRFY', 501, '5.5.4'],
    ['EXPN', 501, '5.5.4'],
    ['STARTTLS please', 501, '5.5.4'],
    ['AUTH', 501, '5.5.4'],
    ['AUTH PLAIN a b', 501, '5.5.4'],
    ['AUTH CRAM-MD5', 504, '5.5.4'],
  ];
  const inTransaction: [string, number, string][] = [
    ['DATA now', 501, '5.5.4'],
    ['RSET everything', 501, '5.5.4'],
  ];
  for (const [line, code, enhanced] of after) {
    const r = await c.cmd(line);
    assert.equal(r.code, code, `${line} -> ${r.raw}`);
    assert.equal(r.enhanced, enhanced, `${line} -> ${r.raw}`);
  }
  // The transaction survived all that: the message still goes through.
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd(`${MESSAGE}.`)).code, 250);
  c.destroy();
  // A second session (the first has used up most of its 20 tolerated errors).
  const d = await f.open('smtp');
  // Before any EHLO succeeded: no enhanced status codes yet.
  for (const line of ['HELO', 'EHLO', 'EHLO two words', 'HELO a b']) {
    const r = await d.cmd(line);
    assert.equal(r.code, 501, `${line} -> ${r.raw}`);
    assert.equal(r.enhanced, undefined, `${line} -> ${r.raw}`);
  }
  await d.ehlo();
  const check = async ([line, code, enhanced]: [string, number, string]) => {
    const r = await d.cmd(line);
    assert.equal(r.code, code, `${line} -> ${r.raw}`);
    assert.equal(r.enhanced, enhanced, `${line} -> ${r.raw}`);
  };
  for (const c of beforeMail) await check(c);
  assert.equal((await d.cmd('MAIL FROM:<a@remote.test>')).code, 250);
  assert.equal((await d.cmd('RCPT TO:<alice@example.test>')).code, 250);
  for (const c of inTransaction) await check(c);
  // A BDAT without a size it can read ends the session: its chunk would be read as commands.
  const bdat = await d.cmd('BDAT ten');
  assert.equal(bdat.code, 421, bdat.raw);
  assert.equal(bdat.enhanced, '4.5.4', bdat.raw);
  assert.equal(await d.closedByServer(), '');
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
});

test('unknown verbs get 500 5.5.1, known but unimplemented ones 502', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  for (const line of ['FROB', 'XYZZY arg', 'MAILFROM:<a@b.test>', 'GET / HTTP/1.1', 'EHL0 x']) {
    const r = await c.cmd(line);
    assert.equal(r.code, 500, `${line} -> ${r.raw}`);
    assert.equal(r.enhanced, '5.5.1');
  }
  for (const verb of ['TURN', 'ETRN example.test', 'SEND FROM:<a@b.test>', 'VERB']) {
    const r = await c.cmd(verb);
    assert.equal(r.code, 502, `${verb} -> ${r.raw}`);
  }
  assert.equal((await c.cmd('NOOP')).code, 250);
  c.destroy();
});

test('verbs are case-insensitive: a lower/mixed-case transaction is delivered', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  assert.equal((await c.cmd('eHlO client.example.net')).code, 250);
  assert.equal((await c.cmd('mail from:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('Rcpt To:<Alice@EXAMPLE.test>')).code, 250);
  assert.equal((await c.cmd('noop')).code, 250);
  assert.equal((await c.cmd('vrfy alice@example.test')).code, 252);
  assert.equal((await c.cmd('help')).code, 214);
  assert.equal((await c.cmd('data')).code, 354);
  const done = await c.cmd(`${MESSAGE}.`);
  assert.match(done.raw, /^250 2\.0\.0 OK queued as \S+\r\n$/);
  assert.equal((await c.cmd('rset')).code, 250);
  assert.equal((await c.cmd('qUiT')).code, 221);
  await c.closedByServer();
  const box = await mailbox(f.dataDir, 'alice@example.test');
  assert.equal(box.length, 1);
  assert.deepEqual(splitTrace(box[0]!).body, Buffer.from(MESSAGE));
});

test('VRFY and EXPN answer 252 to strangers, whatever the address', async () => {
  f = await startFixture({ aliases: { 'team@example.test': ['alice@example.test', 'bob@example.test'] } });
  const c = await f.open('smtp');
  await c.ehlo();
  const answers = [];
  for (const line of ['VRFY alice@example.test', 'VRFY nobody@example.test', 'VRFY <bob@example.test>', 'EXPN team@example.test', 'EXPN nobody@example.test', 'VRFY alice']) {
    answers.push((await c.cmd(line)).raw);
  }
  // The same answer for existing and unknown addresses: nothing to enumerate.
  assert.equal(new Set(answers).size, 1, answers.join(''));
  assert.match(answers[0]!, /^252 2\.5\.0 /);
  c.destroy();
});

test('a catch-all takes what nobody has at its domain, not what a user, an alias, a sub-address or the postmaster has; its user may send as what it catches', async () => {
  f = await startFixture({
    config: { domains: ['example.test', 'other.test'] },
    users: { 'alice@example.test': PASSWORD, 'bob@example.test': PASSWORD },
    aliases: { '@example.test': ['bob@example.test'], 'team@example.test': ['alice@example.test'] },
  });
  const c = await f.open('smtp');
  await c.ehlo('relay.remote.test');
  // Caught: names nobody has, with or without a tag.
  const caught = await c.transaction('<sender@remote.test>', ['<nobody@example.test>', '<Nobody+x@example.test>'], 'Subject: caught\r\n\r\nhi');
  assert.equal(caught.code, 250, caught.raw);
  // Not caught: a user, its sub-address, an alias, the postmaster (alice, the first user).
  const own = await c.transaction('<sender@remote.test>', ['<alice+x@example.test>', '<team@example.test>', '<postmaster@example.test>'], 'Subject: own\r\n\r\nhi');
  assert.equal(own.code, 250, own.raw);
  // A domain without one still refuses an unknown name.
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<nobody@other.test>')).enhanced, '5.1.1');
  await c.quit();
  const subjects = async (user: string) => (await mailbox(f!.dataDir, user)).map((m) => /Subject: (\w+)/.exec(splitTrace(m).body.toString())![1]);
  assert.deepEqual(await subjects('bob@example.test'), ['caught']);
  assert.deepEqual(await subjects('alice@example.test'), ['own']);
  // bob may send as an address the catch-all gives him, not as alice's or the alias's.
  const bob = await f.openAuthenticated('bob@example.test');
  assert.equal((await bob.cmd('MAIL FROM:<shop@example.test>')).code, 250);
  assert.equal((await bob.cmd('RSET')).code, 250);
  for (const other of ['<alice@example.test>', '<team@example.test>']) {
    const r = await bob.cmd(`MAIL FROM:${other}`);
    assert.deepEqual([r.code, r.enhanced], [553, '5.7.1'], `${other}: ${r.raw}`);
  }
  await bob.quit();
  const alice = await f.openAuthenticated('alice@example.test');
  assert.equal((await alice.cmd('MAIL FROM:<shop@example.test>')).code, 553);
  await alice.quit();
});

test('a message is stored once per user with Return-Path and Received, aliases expanded', async () => {
  f = await startFixture({ aliases: { 'team@example.test': ['alice@example.test', 'bob@example.test'] } });
  const c = await f.open('smtp');
  await c.ehlo('relay.remote.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<team@example.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<ALICE@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const body = 'Subject: to the team\r\n\r\n..a line that began with a dot\r\nlast line\r\n';
  const done = await c.cmd(`${body}.`);
  const id = /queued as (\S+)/.exec(done.lines[0]!)?.[1];
  assert.ok(id, done.raw);
  await c.quit();
  const alice = await mailbox(f.dataDir, 'alice@example.test');
  const bob = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(alice.length, 1, 'alice once, though named three times');
  assert.equal(bob.length, 1);
  for (const stored of [alice[0]!, bob[0]!]) {
    const { trace, body: got } = splitTrace(stored);
    assert.equal(got.toString('latin1'), 'Subject: to the team\r\n\r\n.a line that began with a dot\r\nlast line\r\n');
    assert.match(trace, /^Return-Path: <sender@remote\.test>\r\n/);
    assert.match(trace, /Received: from relay\.remote\.test \(\[127\.0\.0\.1\]\)/);
    assert.match(trace, /by mx\.example\.test \(mailnest\) with ESMTP id /);
    assert.ok(trace.includes(`id ${id}`), trace);
    // Several recipients: no "for" clause (it would disclose them).
    assert.doesNotMatch(trace, /\bfor </);
  }
});

test('the log has a line for each message taken, and for each refusal in a transaction: whose mail, to whom, why', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo('relay.remote.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<nobody@example.test>')).code, 550);
  assert.equal((await c.cmd('RCPT TO:<someone@elsewhere.test>')).code, 550);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const done = await c.cmd('Subject: logged\r\n\r\nhi\r\n.');
  const id = /queued as (\S+)/.exec(done.raw)![1]!;
  // A message the store refuses at its end: a bare LF (the reply comes once its end is read).
  assert.equal((await c.transaction('<other@remote.test>', ['<alice@example.test>'], 'Subject: bare\nLF')).code, 550);
  // A sender that would turn the line around on a terminal is logged with escapes.
  assert.equal((await c.cmd('MAIL FROM:<a\u202eb@remote.test> SMTPUTF8')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<nobody@example.test>')).code, 550);
  await c.quit();
  // So is a HELO name in the session's line.
  const d = await f.open('smtp');
  assert.equal((await d.cmd('EHLO ev\u202eil.test')).code, 250);
  await d.quit();
  await until('the session lines', () => f!.server.logs.filter((l) => l.msg === 'session').length === 2);
  assert.deepEqual(f.server.logs.filter((l) => l.msg === 'session').map((l) => l.helo), ['relay.remote.test', 'ev\\u{202e}il.test']);
  const pick = (l: Record<string, unknown>) => ({ listener: l.listener, client: l.client, reason: l.reason, from: l.from, to: l.to });
  assert.deepEqual(f.server.logs.filter((l) => l.msg === 'refused').map(pick), [
    { listener: 'smtp', client: '127.0.0.1', reason: 'unknown_recipient', from: 'sender@remote.test', to: ['nobody@example.test'] },
    { listener: 'smtp', client: '127.0.0.1', reason: 'relay_denied', from: 'sender@remote.test', to: ['someone@elsewhere.test'] },
    { listener: 'smtp', client: '127.0.0.1', reason: 'bare_line_end', from: 'other@remote.test', to: ['alice@example.test'] },
    { listener: 'smtp', client: '127.0.0.1', reason: 'unknown_recipient', from: 'a\\u{202e}b@remote.test', to: ['nobody@example.test'] },
  ]);
  const accepted = f.server.logs.filter((l) => l.msg === 'message accepted');
  assert.deepEqual(accepted.map((l) => ({ id: l.id, listener: l.listener, client: l.client, from: l.from, to: l.to })), [
    { id, listener: 'smtp', client: '127.0.0.1', from: 'sender@remote.test', to: ['alice@example.test', 'bob@example.test'] },
  ]);
  // The message as it came, without the trace fields added here.
  assert.equal(accepted[0]!.size, 'Subject: logged\r\n\r\nhi\r\n'.length);
});

test('Return-Path fields in a message from the internet go; the one final delivery adds is the envelope\'s (RFC 5321 §4.4)', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo('relay.remote.test');
  const header = 'Subject: pay now\r\nreturn-path : <ceo@bank.test>\r\nX-Note: kept\r\nReturn-Path:\r\n <ceo@bank.test>\r\n';
  const rest = '\r\nReturn-Path: <in the body, kept@remote.test>';
  assert.equal((await c.transaction('<sender@remote.test>', ['<alice@example.test>'], header + rest)).code, 250);
  await c.quit();
  const [stored] = await mailbox(f.dataDir, 'alice@example.test');
  const { trace, body } = splitTrace(stored!);
  assert.match(trace, /^Return-Path: <sender@remote\.test>\r\n/);
  assert.equal(body.toString('latin1'), `Subject: pay now\r\nX-Note: kept\r\n${rest}\r\n`);
});

test('postmaster (bare and in every local domain), sub-addresses, and aliases that loop', async () => {
  f = await startFixture({
    config: { domains: ['example.test', 'other.test', 'empty.test'] },
    // bob was created after alice, carol is other.test's only user.
    users: { 'alice@example.test': PASSWORD, 'bob@example.test': PASSWORD, 'carol@other.test': PASSWORD },
    aliases: {
      'loop1@example.test': ['loop2@example.test'],
      'loop2@example.test': ['loop1@example.test'],
      'self@example.test': ['self@example.test'],
      'half@example.test': ['half@example.test', 'bob@example.test'],
      'list@example.test': ['bob@example.test'],
      // Two lists naming one missing address: nobody to reach, but no loop either.
      'all@example.test': ['team1@example.test', 'team2@example.test'],
      'team1@example.test': ['carol@example.test'],
      'team2@example.test': ['carol@example.test'],
      // A chain of 10 aliases to bob: no loop, but deeper than aliases are followed.
      ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`chain${i}@example.test`, [i === 9 ? 'bob@example.test' : `chain${i + 1}@example.test`]])),
    },
  });
  const c = await f.open('smtp');
  await c.ehlo('relay.remote.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  // RFC 5321 §4.5.1 and §4.1.1.3: postmaster, with or without a domain, in any case.
  // A domain without users has one all the same: the first user of all. MAILER-DAEMON, the
  // sender of reports, is the postmaster too. The machine's names, the host name and localhost,
  // are no mail domains: an address at them is the same name at the first domain.
  for (const rcpt of ['<Postmaster>', '<postmaster@example.test>', '<POSTMASTER@other.test>', '<postmaster@empty.test>', '<alice+news@example.test>', '<list+x@example.test>', '<postmaster@mx.example.test>', '<MAILER-DAEMON@MX.example.test>', '<mailer-daemon@other.test>', '<alice@mx.example.test>', '<Alice+x@LOCALHOST>']) {
    const r = await c.cmd(`RCPT TO:${rcpt}`);
    assert.equal(r.code, 250, `${rcpt}: ${r.raw}`);
  }
  // A name the first domain does not have is unknown here, not someone else's to relay to.
  for (const rcpt of ['<root@mx.example.test>', '<root@localhost>']) {
    const atHost = await c.cmd(`RCPT TO:${rcpt}`);
    assert.equal(atHost.code, 550, atHost.raw);
    assert.equal(atHost.enhanced, '5.1.1', atHost.raw);
  }
  for (const rcpt of ['<loop1@example.test>', '<self@example.test>']) {
    const r = await c.cmd(`RCPT TO:${rcpt}`);
    assert.equal(r.code, 550, r.raw);
    assert.equal(r.enhanced, '5.4.6', r.raw);
    assert.match(r.lines[0]!, /aliases lead back to themselves/);
  }
  const deep = await c.cmd('RCPT TO:<chain0@example.test>');
  assert.equal(deep.enhanced, '5.4.6', deep.raw);
  assert.match(deep.lines[0]!, /its aliases lead through more than 8 others, and no more are followed$/);
  assert.equal((await c.cmd('RCPT TO:<chain2@example.test>')).code, 250, 'eight deep is followed');
  // A loop that also reaches someone delivers to that someone.
  assert.equal((await c.cmd('RCPT TO:<half@example.test>')).code, 250);
  // A tag does not make an unknown address known, nor a bare Postmaster with parameters break.
  assert.equal((await c.cmd('RCPT TO:<nobody+x@example.test>')).enhanced, '5.1.1');
  assert.equal((await c.cmd('RCPT TO:<all@example.test>')).enhanced, '5.1.1');
  assert.equal((await c.cmd('RCPT TO:<postmasterx>')).code, 501);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: to the postmaster\r\n\r\nhi\r\n.')).code, 250);
  await c.quit();
  // alice: Postmaster, postmaster@example.test (the domain's first user) and alice+news, once.
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
  assert.equal((await mailbox(f.dataDir, 'carol@other.test')).length, 1);
  assert.equal((await mailbox(f.dataDir, 'bob@example.test')).length, 1);
});

test('NOTIFY=SUCCESS from a sender whose SPF authorizes the client: delivery into a local mailbox is reported to the sender as "delivered"', async (t) => {
  // (Mail from others gets failures reported only: smtp-checks.test.ts.)
  const dns = await startDnsServer({ TXT: { 'example.test': ['v=spf1 ip4:127.0.0.1 -all'] } });
  t.after(() => dns.close());
  f = await startFixture({ config: { dns_servers: [dns.address], checks: { enabled: true, dns_timeout: '5s', timeout: '20s' } } });
  const c = await f.open('smtp');
  await c.ehlo();
  // First a message that asks only for failures: it is reported nowhere.
  assert.equal((await c.transaction('<bob@example.test>', ['<alice@example.test> NOTIFY=FAILURE'], 'Subject: quiet\r\n\r\nx')).code, 250);
  const told = await c.transaction('<bob@example.test> ENVID=env+2B1', ['<alice@example.test> NOTIFY=SUCCESS ORCPT=rfc822;Alice+40example.test'], 'Return-Path: <forged@elsewhere.test>\r\nSubject: tell me\r\n\r\nx');
  assert.equal(told.code, 250);
  const id = /queued as (\S+)/.exec(told.raw)![1]!;
  await c.quit();
  let box: Buffer[] = [];
  for (let i = 0; i < 200 && box.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 25));
    box = await mailbox(f.dataDir, 'bob@example.test');
  }
  assert.equal(box.length, 1, 'one report, for the message that asked for it');
  const report = box[0]!.toString('utf8');
  assert.match(report, /^Return-Path: <>\r\n/);
  assert.match(report, /Content-Type: multipart\/report; report-type=delivery-status/i);
  assert.match(report, /Original-Envelope-Id: env\+1\r\n/);
  assert.match(report, /Final-Recipient: rfc822; ?alice@example\.test\r\n/);
  assert.match(report, /Original-Recipient: rfc822; ?Alice@example\.test\r\n/);
  assert.match(report, /Action: delivered\r\n/);
  assert.match(report, /Status: 2\.0\.0\r\n/);
  // The header as alice's copy has it: our Return-Path and Received, not the client's.
  const headers = /Content-Description: Message Headers\r\n\r\n([^]*?)\r\n\r\n/.exec(report)![1]!;
  assert.match(headers, new RegExp(`^Return-Path: <bob@example\\.test>\\r\\nReceived-SPF: pass [^]*\\r\\nAuthentication-Results: [^]*\\r\\nReceived: from [^]*\\bid ${id}\\b[^]*\\r\\nSubject: tell me$`));
  assert.doesNotMatch(headers, /forged/);
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 2);
});

test('a recipient removed while the message is under way is let go; the others get it', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<x@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal(cli(f.configFile, ['user', 'remove', 'bob@example.test']).status, 0);
  assert.match((await c.cmd('Subject: meanwhile\r\n\r\nx\r\n.')).raw, /^250 2\.0\.0 OK queued as /);
  await c.quit();
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
  assert.deepEqual(f.server.logs.filter((l) => l.msg === 'cannot store message'), []);
});

test('null sender, DSN parameters, SIZE, BODY and SMTPUTF8 are accepted', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<> RET=HDRS ENVID=abc+2Bdef SIZE=100 BODY=8BITMIME')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40example.test')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: bounce\r\n\r\n\u00e9t\u00e9 8bit\r\n.')).code, 250);
  // SMTPUTF8: a UTF-8 sender needs the parameter.
  const no = await c.cmd('MAIL FROM:<j\u00f6rg@b\u00fccher.test>');
  assert.equal(no.code, 553);
  assert.equal(no.enhanced, '5.6.7');
  assert.equal((await c.cmd('MAIL FROM:<j\u00f6rg@b\u00fccher.test> SMTPUTF8')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: utf8\r\n\r\nhi\r\n.')).code, 250);
  // Quoted local parts and IP literals parse (they just are not local users here).
  assert.equal((await c.cmd('MAIL FROM:<"john smith"@[192.0.2.1]>')).code, 250);
  assert.equal((await c.cmd('RSET')).code, 250);
  await c.quit();
  const alice = await mailbox(f.dataDir, 'alice@example.test');
  assert.equal(alice.length, 1);
  assert.match(alice[0]!.toString('utf8'), /^Return-Path: <>\r\n/);
  assert.ok(alice[0]!.toString('utf8').endsWith('\u00e9t\u00e9 8bit\r\n'));
  // A single recipient is named in Received.
  assert.match(splitTrace(alice[0]!).trace, /for <alice@example\.test>/);
  const bob = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(bob.length, 1);
  assert.match(bob[0]!.toString('utf8'), /^Return-Path: <j\u00f6rg@b\u00fccher\.test>\r\n/);
});

test('python smtplib walks the whole command table', async () => {
  f = await startFixture({ aliases: { 'team@example.test': ['alice@example.test', 'bob@example.test'] } });
  const script = `
import json, smtplib, sys
out = {}
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='client.example.net', timeout=20)
out['ehlo'] = s.ehlo()[0]
out['features'] = sorted(s.esmtp_features.keys())
out['size'] = s.esmtp_features.get('size')
out['helo'] = s.helo()[0]
out['noop'] = s.noop()[0]
out['help'] = s.help().decode()[:4]
out['vrfy'] = s.verify('alice@example.test')[0]
out['expn'] = s.expn('team@example.test')[0]
out['rset'] = s.rset()[0]
s.ehlo()
out['mail'] = s.mail('sender@remote.test', ['SIZE=50'])[0]
out['rcpt_unknown'] = s.rcpt('nobody@example.test')[0]
out['rcpt_remote'] = s.rcpt('x@remote.test')[0]
out['rcpt'] = s.rcpt('team@example.test', ['NOTIFY=NEVER'])[0]
code, msg = s.data('Subject: smtplib\\r\\n\\r\\n.leading dot\\nsecond line\\n')
out['data'] = [code, msg.decode()]
s.mail('sender@remote.test'); s.rcpt('alice@example.test')
code, msg = s.data(b'Subject: bytes are sent as they are\\n\\nbare LF\\n')
out['bare_lf'] = [code, msg.decode()]
out['docmd'] = s.docmd('FROB')[0]
try:
    s.sendmail('sender@remote.test', ['nobody@example.test'], b'Subject: x\\r\\n\\r\\nx\\r\\n')
except smtplib.SMTPRecipientsRefused as e:
    out['refused'] = {k: v[0] for k, v in e.recipients.items()}
out['sendmail'] = s.sendmail('sender@remote.test', ['bob@example.test', 'nobody@example.test'], b'Subject: partial\\r\\n\\r\\nhi\\r\\n')
out['sendmail'] = {k: v[0] for k, v in out['sendmail'].items()}
out['quit'] = s.quit()[0]
print(json.dumps(out))
`;
  const r = python(script, [String(f.port('smtp'))]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.ehlo, 250);
  for (const ext of ['8bitmime', 'chunking', 'dsn', 'enhancedstatuscodes', 'help', 'pipelining', 'size', 'smtputf8', 'starttls']) {
    assert.ok(out.features.includes(ext), `EHLO lacks ${ext}: ${out.features}`);
  }
  assert.ok(!out.features.includes('auth'));
  assert.equal(out.size, '26214400');
  assert.equal(out.helo, 250);
  assert.equal(out.noop, 250);
  assert.equal(out.help, 'mail');
  assert.equal(out.vrfy, 252);
  assert.equal(out.expn, 252);
  assert.equal(out.rset, 250);
  assert.equal(out.mail, 250);
  assert.equal(out.rcpt_unknown, 550);
  assert.equal(out.rcpt_remote, 550);
  assert.equal(out.rcpt, 250);
  assert.equal(out.data[0], 250);
  assert.match(out.data[1], /^2\.0\.0 OK queued as \S+$/);
  assert.equal(out.docmd, 500);
  assert.equal(out.bare_lf[0], 550);
  assert.match(out.bare_lf[1], /^5\.6\.0 /);
  assert.deepEqual(out.refused, { 'nobody@example.test': 550 });
  assert.deepEqual(out.sendmail, { 'nobody@example.test': 550 });
  assert.equal(out.quit, 221);
  const alice = await mailbox(f.dataDir, 'alice@example.test');
  const bob = await mailbox(f.dataDir, 'bob@example.test');
  assert.equal(alice.length, 1);
  assert.equal(bob.length, 2);
  // smtplib turns bare LF of a str into CRLF and dot-stuffs; the server undoes the stuffing.
  assert.equal(splitTrace(alice[0]!).body.toString(), 'Subject: smtplib\r\n\r\n.leading dot\r\nsecond line\r\n');
});

test('SMTPUTF8: a UTF-8 mailbox receives mail only when the client says SMTPUTF8', async () => {
  f = await startFixture({ users: { 'j\u00f6rg@example.test': 'pw' } });
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  const no = await c.cmd('RCPT TO:<j\u00f6rg@example.test>');
  assert.equal(no.code, 553, no.raw);
  assert.equal(no.enhanced, '5.6.7');
  assert.equal((await c.cmd('RSET')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test> SMTPUTF8')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<J\u00f6rg@EXAMPLE.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: gr\u00fc\u00dfe\r\n\r\nhallo\r\n.')).code, 250);
  // Under HELO there is no SMTPUTF8 at all, nor any other parameter (RFC 5321 §4.1.1.11).
  assert.equal((await c.cmd('HELO client.example.net')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test> SMTPUTF8')).code, 555);
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test> SIZE=100')).code, 555);
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<postmaster@example.test> NOTIFY=NEVER')).code, 555);
  c.destroy();
  const box = await mailbox(f.dataDir, 'j\u00f6rg@example.test');
  assert.equal(box.length, 1);
  assert.equal(splitTrace(box[0]!).body.toString('utf8'), 'Subject: gr\u00fc\u00dfe\r\n\r\nhallo\r\n');
});

test('a client that pipelines its last commands and half-closes gets every reply, the 250 once the message is on disk, then the close', async () => {
  f = await startFixture();
  const socket = net.connect(f.port('smtp'), '127.0.0.1');
  let got = '';
  socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  const closed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`not closed; got ${got}`)); }, 20_000);
    socket.on('close', () => { clearTimeout(timer); resolve(); });
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  /** Resolves once `seen` has come, in `text()`; the groups RFC 2920 §3.1 allows wait so. */
  const until = async (text: () => string, seen: RegExp) => {
    while (!seen.test(text())) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  socket.write('EHLO c\r\n');
  await until(() => got, /^250 /m);
  socket.write('MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n');
  await until(() => got, /^354 /m);
  socket.end(`${MESSAGE}.\r\nQUIT\r\n`);
  await closed;
  const codes = got.split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3));
  assert.deepEqual(codes, ['220', '250', '250', '250', '354', '250', '221'], got);
  assert.match(got, /250 2\.0\.0 OK queued as \S+\r\n221 /);
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
  // Half-closed without QUIT, in the middle of a message: answered, nothing stored, closed.
  const other = net.connect(f.port('smtp'), '127.0.0.1');
  let more = '';
  other.on('data', (d: Buffer) => { more += d.toString('latin1'); });
  await new Promise<void>((resolve) => other.once('connect', resolve));
  other.write('EHLO c\r\n');
  await until(() => more, /^250 /m);
  other.write('MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n');
  await until(() => more, /^354 /m);
  other.end('Subject: cut\r\n');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { other.destroy(); reject(new Error(`not closed; got ${more}`)); }, 20_000);
    other.on('close', () => { clearTimeout(timer); resolve(); });
  });
  assert.match(more, /354 [^\r]*\r\n$/);
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
});
