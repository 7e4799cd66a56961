/**
 * The outbound client against next hops that lack an extension the message needs, or never
 * answer: each transaction ends with a result per recipient, permanent or not as it should be.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ConnectError, SmtpClient, whereOf, type OutboundMessage } from '../../src/delivery/smtp-client.ts';
import { makeSelfSignedCertificate } from '../../src/net/self-signed-certificate.ts';
import { addUser, baseConfig, cli, startMailnest, tempDir, writeConfig } from '../helpers/server.ts';
import { mailbox } from '../helpers/mailbox.ts';
import { inject, queueJson, until } from '../helpers/relay.ts';
import { SmtpClient as TestClient } from '../helpers/smtp-client.ts';

interface NextHop {
  port: number;
  /** Every command line received (not the message's lines). */
  commands: string[];
  /** The lines of the messages received (their final dots aside). */
  data: string[];
  /** Resolves when the final dot of a message has arrived. */
  dot: Promise<void>;
}

/**
 * A scripted next hop: EHLO offers `extensions`; `rcpt` answers RCPT for an address (250 when it
 * gives nothing), DATA with no recipient taken 554, `afterDot` the final dot (250); with
 * `silent`, the final dot gets no reply; AUTH gets `auth` (235); a
 * STARTTLS is answered 220 (or `starttls`; 502 when not offered), and the handshake with bytes
 * that are no TLS; `name` begins the EHLO
 * reply; `trickle` answers EHLO, the final dot or RSET with a reply that never ends. It closes when the
 * test `t` ends.
 */
async function nextHop(t: TestContext, extensions: string[], o: { silent?: boolean; rcpt?: (address: string) => string | undefined; afterDot?: string; greeting?: string; resetAtDot?: boolean; closeAfterDot?: 'after its line end' | 'before its line end'; auth?: string; name?: string; trickle?: 'ehlo' | 'dot' | 'rset'; starttls?: string } = {}): Promise<NextHop> {
  const silent = o.silent ?? false;
  let sawDot!: () => void;
  const hop = { commands: [] as string[], data: [] as string[], dot: new Promise<void>((r) => { sawDot = r; }) };
  const server = net.createServer((s) => {
    /** A reply that never ends, a byte every 100 ms: never silent long enough for an idle limit. */
    const trickle = () => {
      const timer = setInterval(() => s.write('x'), 100);
      s.write('250-');
      s.on('close', () => clearInterval(timer));
    };
    s.write(`${o.greeting ?? '220 hop.test ESMTP'}\r\n`);
    let data = false;
    let taken = 0;
    let mute = false;
    let tls = false;
    let text = '';
    s.on('data', (chunk) => {
      // The client's TLS hello gets an answer that is no TLS.
      if (tls) return void s.end('this is not TLS\r\n');
      text += chunk.toString('utf8');
      for (let nl = text.indexOf('\r\n'); nl >= 0 && !mute; nl = text.indexOf('\r\n')) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 2);
        if (data) {
          if (line !== '.') {
            hop.data.push(line);
            continue;
          }
          data = false;
          sawDot();
          if (o.resetAtDot) return void s.resetAndDestroy();
          mute = silent || o.trickle === 'dot';
          if (o.trickle === 'dot') return trickle();
          if (o.closeAfterDot === 'before its line end') return void s.end(o.afterDot ?? '250 ok');
          if (!silent) s.write(`${o.afterDot ?? '250 ok'}\r\n`);
          if (o.closeAfterDot) return void s.end();
          continue;
        }
        hop.commands.push(line);
        const ehlo = [o.name ?? 'hop.test', ...extensions];
        if (/^EHLO/i.test(line) && o.trickle === 'ehlo') trickle();
        else if (/^RSET/i.test(line) && o.trickle === 'rset') trickle();
        else if (/^EHLO/i.test(line)) s.write(ehlo.map((l, i) => `250${i === ehlo.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
        else if (/^AUTH/i.test(line)) s.write(`${o.auth ?? '235 2.7.0 ok'}\r\n`);
        else if (/^STARTTLS/i.test(line) && !extensions.includes('STARTTLS')) s.write('502 5.5.1 not offered\r\n');
        else if (/^STARTTLS/i.test(line) && o.starttls) s.write(`${o.starttls}\r\n`);
        else if (/^STARTTLS/i.test(line)) {
          tls = true;
          s.write('220 go ahead\r\n');
        } else if (/^RCPT TO:<([^>]*)>/i.test(line)) {
          const reply = o.rcpt?.(/^RCPT TO:<([^>]*)>/i.exec(line)![1]!) ?? '250 ok';
          if (reply.startsWith('2')) taken++;
          s.write(`${reply}\r\n`);
        } else if (/^DATA/i.test(line)) {
          data = taken > 0;
          s.write(data ? '354 go on\r\n' : '554 5.5.1 no valid recipients\r\n');
        } else {
          if (/^(MAIL|RSET)/i.test(line)) taken = 0;
          s.write('250 ok\r\n');
        }
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { server.close(); server.unref(); });
  return { ...hop, port: (server.address() as net.AddressInfo).port };
}

function connect(port: number, tls: 'none' | 'opportunistic' = 'none', verify = false, auth?: { user: string; pass: string }): Promise<SmtpClient> {
  return SmtpClient.connect({ host: '127.0.0.1', port, tls, verify, ...(auth ? { auth } : {}) },
    { name: 'mx.example.test', connectTimeout: 5000, greetingTimeout: 5000, commandTimeout: 600_000 });
}

function message(body: string, over: Partial<OutboundMessage> = {}): OutboundMessage {
  const bytes = Buffer.from(body, 'utf8');
  return { sender: 'a@example.test', recipients: ['b@hop.test'], size: bytes.length, eightBit: bytes.some((b) => b > 127), content: () => Readable.from([bytes]), ...over };
}

test('a connection the next hop breaks during the data is named, with the failure, for queue list and the report', async (t) => {
  const hop = await nextHop(t, ['8BITMIME'], { resetAtDot: true });
  const client = await connect(hop.port);
  const [r] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
  assert.equal(r!.ok, false);
  assert.equal(r!.permanent, false);
  assert.match(r!.reply, new RegExp(`^127\\.0\\.0\\.1:${hop.port}: connection reset by peer$`));
  // mailnest's own words, not the next hop's: the report names no Remote-MTA for it.
  assert.equal(r!.ownReply, true);
});

test('a transaction whose reply never comes is settled as a temporary failure when its connection is closed', async (t) => {
  const hop = await nextHop(t, ['8BITMIME'], { silent: true });
  const client = await connect(hop.port);
  const sending = client.send(message('Subject: s\r\n\r\nx\r\n'));
  await hop.dot;
  client.close();
  const results = await Promise.race([sending, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000).unref())]);
  assert.notEqual(results, 'hung', 'the transaction never settled');
  assert.deepEqual(results, [{ address: 'b@hop.test', ok: false, permanent: false, reply: `127.0.0.1:${hop.port}: connection closed before the reply`, ownReply: true }]);
});

test('8-bit data without 8BITMIME, and a UTF-8 address without SMTPUTF8, fail for good before MAIL', async (t) => {
  const hop = await nextHop(t, []);
  const client = await connect(hop.port);
  t.after(() => client.close());
  const [eight] = await client.send(message('Subject: s\r\n\r\n\u00e9t\u00e9\r\n'));
  assert.deepEqual(eight, { address: 'b@hop.test', ok: false, permanent: true, reply: '554 5.6.3 the message has 8-bit data and the next hop does not offer 8BITMIME (RFC 6152)', ownReply: true });
  const [utf8] = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['j\u00f6rg@hop.test'] }));
  assert.equal(utf8!.permanent, true);
  assert.match(utf8!.reply, /^553 5\.6\.7 /);
  // An address that needs SMTPUTF8 is the reason, also when the message is 8-bit too (our
  // Received header names the address).
  const [both] = await client.send(message('Subject: s\r\n\r\n\u00e9t\u00e9\r\n', { recipients: ['j\u00f6rg@hop.test'] }));
  assert.match(both!.reply, /^553 5\.6\.7 /);
  const [plain] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
  assert.equal(plain!.ok, true, plain!.reply);
  assert.deepEqual(hop.commands.filter((c) => /^MAIL/.test(c)), ['MAIL FROM:<a@example.test>'], 'nothing was sent for the first two');
  // The ASCII recipients of a message that also goes to a non-ASCII one are sent to.
  const mixed = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['j\u00f6rg@hop.test', 'plain@hop.test'] }));
  assert.deepEqual(mixed.map((r) => [r.address, r.ok, r.reply.slice(0, 3)]), [['plain@hop.test', true, '250'], ['j\u00f6rg@hop.test', false, '553']]);
  assert.deepEqual(hop.commands.filter((c) => /^RCPT/.test(c)).slice(-1), ['RCPT TO:<plain@hop.test>']);
});

test('an internationalised domain after an ASCII local part goes to a hop without SMTPUTF8 in its A-labels, and its result under the address as queued', async (t) => {
  const hop = await nextHop(t, ['8BITMIME']);
  const client = await connect(hop.port);
  t.after(() => client.close());
  const results = await client.send(message('Subject: s\r\n\r\nx\r\n', { sender: 'me@b\u00fccher.example', recipients: ['jo@b\u00fccher.test', 'j\u00f6rg@hop.test', 'plain@hop.test'] }));
  assert.deepEqual(results.map((r) => [r.address, r.ok, r.reply.slice(0, 3)]), [['jo@b\u00fccher.test', true, '250'], ['plain@hop.test', true, '250'], ['j\u00f6rg@hop.test', false, '553']]);
  assert.deepEqual(hop.commands.filter((c) => /^(MAIL|RCPT)/.test(c)), ['MAIL FROM:<me@xn--bcher-kva.example>', 'RCPT TO:<jo@xn--bcher-kva.test>', 'RCPT TO:<plain@hop.test>']);
  // A sender whose local part is not ASCII still needs SMTPUTF8.
  const [r] = await client.send(message('Subject: s\r\n\r\nx\r\n', { sender: 'j\u00f6rg@example.test', recipients: ['jo@b\u00fccher.test'] }));
  assert.equal(r!.ok, false);
  assert.match(r!.reply, /^553 5\.6\.7 a non-ASCII local part/);
  // A domain that maps to an empty label (U+200B) has no ASCII form, and is not sent as one.
  const [empty] = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['jo@\u200b.test'] }));
  assert.equal(empty!.ok, false);
  assert.match(empty!.reply, /^553 5\.6\.7 a domain with no ASCII form \(A-labels\)/);
  assert.ok(!hop.commands.some((c) => c.includes('jo@.test')));
});

test('an address with "<" or ">" in its quoted local part fails alone and for good, a recipient or the sender, and the connection carries on', async (t) => {
  const hop = await nextHop(t, ['8BITMIME']);
  const client = await connect(hop.port);
  t.after(() => client.close());
  const results = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['"a>b"@hop.test', 'plain@hop.test'] }));
  assert.deepEqual(results, [
    { address: 'plain@hop.test', ok: true, permanent: false, reply: results[0]!.reply },
    { address: '"a>b"@hop.test', ok: false, permanent: true, reply: '553 5.1.3 mailnest cannot send to an address with "<" or ">" in it', ownReply: true },
  ]);
  assert.equal(results[0]!.reply.slice(0, 3), '250');
  const [fromAngled] = await client.send(message('Subject: s\r\n\r\nx\r\n', { sender: '"x<y"@example.test' }));
  assert.deepEqual(fromAngled, { address: 'b@hop.test', ok: false, permanent: true, reply: '553 5.1.7 mailnest cannot send from an address with "<" or ">" in it', ownReply: true });
  const [after] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
  assert.equal(after!.ok, true, after!.reply);
  assert.deepEqual(hop.commands.filter((c) => /^(MAIL|RCPT)/.test(c)), ['MAIL FROM:<a@example.test>', 'RCPT TO:<plain@hop.test>', 'MAIL FROM:<a@example.test>', 'RCPT TO:<b@hop.test>']);
});

test('a login goes only to a next hop that offers AUTH; a 5xx to it is a refused login, a 4xx the server\'s trouble for now', async (t) => {
  const auth = { user: 'me@provider.test', pass: 'secret' };
  const plain = await nextHop(t, ['8BITMIME']);
  const client = await connect(plain.port, 'none', false, auth);
  t.after(() => client.close());
  const [r] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
  assert.equal(r!.ok, true, r!.reply);
  assert.ok(!plain.commands.some((c) => /^AUTH/i.test(c)), 'the password went to a server that did not ask for it');
  const offering = await nextHop(t, ['AUTH PLAIN LOGIN']);
  const logged = await connect(offering.port, 'none', false, auth);
  t.after(() => logged.close());
  assert.ok(offering.commands.some((c) => /^AUTH PLAIN /i.test(c)));
  for (const [reply, refused] of [['535 5.7.8 bad credentials', true], ['454 4.7.0 temporary authentication failure', false]] as const) {
    const hop = await nextHop(t, ['AUTH PLAIN LOGIN'], { auth: reply });
    const err = await connect(hop.port, 'none', false, auth).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.loginRefused, refused, reply);
    assert.equal(err.permanent, false, 'either way the mail waits');
    assert.match(err.reply, new RegExp(`^${reply.slice(0, 3)} `));
  }
});

test('a 421 the next hop gives as it closes stays its reply, not a broken connection, so the next message may go on a new one', async (t) => {
  for (const closeAfterDot of ['after its line end', 'before its line end'] as const) {
    const hop = await nextHop(t, ['8BITMIME'], { afterDot: '421 4.3.2 shutting down', closeAfterDot });
    const client = await connect(hop.port);
    const [r] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
    assert.equal(r!.ok, false);
    assert.equal(r!.permanent, false);
    assert.match(r!.reply, /^421 4\.3\.2 shutting down/, closeAfterDot);
  }
});

test('a recipient refused at RCPT keeps its own reply when the message is refused too', async (t) => {
  const rcpt = (a: string) => (a.startsWith('temp') ? '450 4.2.1 try later' : a.startsWith('gone') ? '550 5.1.1 no such user' : undefined);
  for (const [afterDot, permanent] of [['554 5.6.0 content refused', true], ['451 4.3.0 try again', false]] as const) {
    const hop = await nextHop(t, ['PIPELINING'], { rcpt, afterDot });
    const client = await connect(hop.port);
    const results = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['ok@hop.test', 'temp@hop.test', 'gone@hop.test'] }));
    assert.deepEqual(results.map((r) => [r.address, r.permanent, r.reply.slice(0, 9)]), [
      ['ok@hop.test', permanent, afterDot.slice(0, 9)],
      ['temp@hop.test', false, '450 4.2.1'],
      ['gone@hop.test', true, '550 5.1.1'],
    ], afterDot);
    client.close();
  }
});

test('after a transaction whose recipients were all refused, the connection carries the next one: the RSET between them is answered first', async (t) => {
  // With PIPELINING, MAIL, RCPT and DATA go together; the next MAIL went out while RSET's reply
  // was still to come, and nodemailer threw on it, out of reach of any caller.
  const hop = await nextHop(t, ['PIPELINING'], { rcpt: (a) => (a.startsWith('temp') ? '451 4.3.0 try later' : undefined) });
  const client = await connect(hop.port);
  for (let i = 0; i < 3; i++) {
    const refused = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['temp@hop.test'] }));
    assert.deepEqual(refused.map((r) => [r.ok, r.permanent, r.reply]), [[false, false, '451 4.3.0 try later']]);
  }
  const taken = await client.send(message('Subject: s\r\n\r\ny\r\n', { recipients: ['ok@hop.test'] }));
  assert.deepEqual(taken.map((r) => r.ok), [true]);
  assert.deepEqual(hop.commands.filter((c) => /^(MAIL|RSET|DATA)/.test(c)).map((c) => c.slice(0, 4)),
    ['MAIL', 'DATA', 'RSET', 'MAIL', 'DATA', 'RSET', 'MAIL', 'DATA', 'RSET', 'MAIL', 'DATA']);
  assert.deepEqual(hop.data, ['Subject: s', '', 'y']);
  client.close();
});

test('a greeting may take greeting_timeout after the connection, whatever connect_timeout is (RFC 5321 §4.5.3.2.1)', async (t) => {
  const slow = net.createServer((s) => {
    s.on('error', () => {});
    const timer = setTimeout(() => s.write('220 slow.test ESMTP\r\n'), 1500);
    s.on('close', () => clearTimeout(timer));
    s.on('data', (d) => {
      if (/^EHLO/i.test(d.toString())) s.write('250 slow.test\r\n');
      else if (/^QUIT/i.test(d.toString())) s.end('221 bye\r\n');
    });
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  t.after(() => { slow.close(); slow.unref(); });
  const port = (slow.address() as net.AddressInfo).port;
  const options = (greetingTimeout: number) => ({ name: 'mx.example.test', connectTimeout: 500, greetingTimeout, commandTimeout: 5000 });
  const client = await SmtpClient.connect({ host: '127.0.0.1', port, tls: 'none', verify: false }, options(5000));
  assert.ok(client.usable);
  client.close();
  await assert.rejects(SmtpClient.connect({ host: '127.0.0.1', port, tls: 'none', verify: false }, options(1000)),
    (err: ConnectError) => /Greeting never received/.test(err.reply));
  // Nor does command_timeout cut the greeting short, however near it is; it holds once the
  // session is made.
  await assert.rejects(SmtpClient.connect({ host: '127.0.0.1', port, tls: 'none', verify: false }, { name: 'mx.example.test', connectTimeout: 500, greetingTimeout: 1000, commandTimeout: 1000 }),
    (err: ConnectError) => /Greeting never received/.test(err.reply));
  const shortCommands = { name: 'mx.example.test', connectTimeout: 500, greetingTimeout: 5000, commandTimeout: 700 };
  const patient = await SmtpClient.connect({ host: '127.0.0.1', port, tls: 'none', verify: false }, shortCommands);
  assert.ok(patient.usable);
  // The server answers no MAIL: the command's reply is waited for command_timeout, not the
  // greeting's, as the reply says.
  const results = await patient.send(message('Subject: s\r\n\r\ny\r\n', { recipients: ['ok@hop.test'] }));
  assert.deepEqual(results.map((r) => r.ok), [false]);
  assert.match(results[0]!.reply, /^127\.0\.0\.1:\d+: no reply within relay\.command_timeout$/);
  patient.close();
});

test('a next hop that greets and then never answers EHLO fails at the setup\'s idle limit, said as such', async (t) => {
  const mute = net.createServer((s) => { s.on('error', () => {}); s.write('220 mute.test ESMTP\r\n'); });
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  t.after(() => { mute.close(); mute.unref(); });
  const port = (mute.address() as net.AddressInfo).port;
  const err = await SmtpClient.connect({ host: '127.0.0.1', port, tls: 'none', verify: false },
    { name: 'mx.example.test', connectTimeout: 500, greetingTimeout: 500, commandTimeout: 500 }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ConnectError, String(err));
  assert.equal(err.reply, `127.0.0.1:${port}: no reply to EHLO, STARTTLS or AUTH within relay.command_timeout, or relay.connect_timeout + relay.greeting_timeout when longer`);
  assert.equal(err.permanent, false);
});

test('a connection not made within connect_timeout fails then, however long the greeting may take', { timeout: 30_000 }, async (t) => {
  // A listener whose queue of connections is full and that takes none: the next SYN goes
  // unanswered, so the connection is never made.
  const held = spawn('python3', ['-c', [
    'import socket, sys, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'port = s.getsockname()[1]',
    'fill = [socket.socket() for _ in range(3)]',
    'for c in fill: c.setblocking(False); c.connect_ex(("127.0.0.1", port))',
    'print(port, flush=True)',
    'sys.stdin.read()',
  ].join('\n')], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => held.kill());
  const port = Number(await new Promise<string>((resolve) => held.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()))));
  await assert.rejects(SmtpClient.connect({ host: '127.0.0.1', port, tls: 'none', verify: false },
    { name: 'mx.example.test', connectTimeout: 1000, greetingTimeout: 120_000, commandTimeout: 5000 }),
  (err: ConnectError) => /\d: Connection timeout$/.test(err.reply));
});

test('a refused greeting is the server\'s reply, with the server named; a refused connection names where', async (t) => {
  const hop = await nextHop(t, [], { greeting: '554 5.7.1 go away' });
  const refused = await connect(hop.port).then(() => undefined, (err: unknown) => err);
  assert.ok(refused instanceof ConnectError, String(refused));
  assert.equal(refused.reply, '554 5.7.1 go away');
  assert.equal(refused.remoteMta, '127.0.0.1');
  assert.equal(refused.permanent, false);
  const nobody = await connect(1).then(() => undefined, (err: unknown) => err);
  assert.ok(nobody instanceof ConnectError, String(nobody));
  assert.match(nobody.reply, /^127\.0\.0\.1:1: /);
  assert.equal(nobody.remoteMta, undefined);
});

test('a message over the SIZE the next hop declares fails for good, without being sent', async (t) => {
  const hop = await nextHop(t, ['SIZE 300']);
  const client = await connect(hop.port);
  const [big] = await client.send(message(`Subject: s\r\n\r\n${'a'.repeat(600)}\r\n`));
  assert.deepEqual(big, { address: 'b@hop.test', ok: false, permanent: true, reply: '552 5.3.4 the message is 616 octets and the next hop takes at most 300 (RFC 1870)', ownReply: true });
  const [small] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
  assert.equal(small!.ok, true, small!.reply);
  assert.equal(hop.commands.filter((c) => /^MAIL/.test(c)).length, 1, 'only the small one was sent');
  client.close();
});

test('with the extensions offered, the parameters go with MAIL', async (t) => {
  const hop = await nextHop(t, ['8BITMIME', 'SMTPUTF8']);
  const client = await connect(hop.port);
  const [r] = await client.send(message('Subject: s\r\n\r\n\u00e9t\u00e9\r\n', { recipients: ['j\u00f6rg@hop.test'] }));
  assert.equal(r!.ok, true, r!.reply);
  assert.deepEqual(hop.commands.filter((c) => /^(MAIL|RCPT)/.test(c)), ['MAIL FROM:<a@example.test> SMTPUTF8 BODY=8BITMIME', 'RCPT TO:<j\u00f6rg@hop.test>']);
  client.close();
});

test('opportunistic TLS: a STARTTLS handshake that fails is followed by a plaintext session, unless certificates are checked', async (t) => {
  const hop = await nextHop(t, ['STARTTLS', '8BITMIME']);
  const client = await connect(hop.port, 'opportunistic');
  const [r] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
  assert.equal(r!.ok, true, r!.reply);
  assert.deepEqual(hop.commands.filter((c) => !/^(RCPT|DATA|QUIT)/.test(c)), ['EHLO mx.example.test', 'STARTTLS', 'EHLO mx.example.test', 'MAIL FROM:<a@example.test>']);
  client.close();
  // OpenSSL's reason alone, not its line of codes and source file names.
  await assert.rejects(connect(hop.port, 'opportunistic', true), { message: `127.0.0.1:${hop.port}: TLS failed: wrong version number` });
});

test('closing a connection while a message streams cuts it off: no QUIT inside the message, and a temporary failure', async (t) => {
  const hop = await nextHop(t, ['8BITMIME']);
  const client = await connect(hop.port);
  const slow = async function* () {
    yield Buffer.from('Subject: t\r\n\r\nline one\r\n');
    await new Promise((r) => setTimeout(r, 300));
    yield Buffer.from('line two\r\n');
  };
  const sending = client.send(message('', { size: 40, content: () => Readable.from(slow()) }));
  await new Promise((r) => setTimeout(r, 150));
  client.close();
  const [r] = await sending;
  assert.deepEqual(r, { address: 'b@hop.test', ok: false, permanent: false, reply: `127.0.0.1:${hop.port}: connection closed before the reply`, ownReply: true });
  assert.ok(!hop.data.includes('QUIT'), `QUIT went into the message: ${JSON.stringify(hop.data)}`);
});

test('SIGTERM while a next hop sits on a message: the server exits 0 within its grace period and the message stays queued', { timeout: 60_000 }, async (t) => {
  const hop = await nextHop(t, ['8BITMIME'], { silent: true });
  const dir = tempDir();
  // A smarthost without TLS that would get the password: said at start (the route wins here).
  const configFile = writeConfig(dir, baseConfig(dir, {
    relay: { routes: { 'hop.test': `127.0.0.1:${hop.port}` }, smarthost: '127.0.0.1:1', smarthost_tls: 'none', username: 'u', password: 'p' },
    queue: { poll_interval: '200ms' },
  }));
  addUser(configFile, 'a@example.test', 'pw-a-123');
  const server = await startMailnest(dir, configFile);
  try {
    assert.ok(server.logs.some((l) => l.level === 40 && /relay\.password goes to the smarthost unencrypted/.test(String(l.msg))), 'no warning');
    const id = inject(configFile, 'a@example.test', ['b@hop.test'], 'Subject: s\r\n\r\nx\r\n');
    await hop.dot;
    // (A stop that waited for the next hop, which never answers, would outlast the test's time.)
    assert.equal(await server.stop(), 0);
    assert.ok(server.logs.some((l) => l.msg === 'stopped'));
    assert.equal(queueJson(configFile).find((e) => e.id === id)?.recipients[0]?.status, 'deferred');
  } finally {
    await server.kill();
  }
});

test('SIGTERM while a client is still sending a message: the queue starts no transfer during its grace, not even one that falls due', async (t) => {
  // The first attempt is deferred for an hour; while the server waits for the client's message
  // after SIGTERM, `queue retry` makes it due, and the queue, which looks every 200 ms, must not
  // try again (a transfer begun then would be cut off at the deadline and sent once more after
  // the restart).
  const hop = await nextHop(t, ['8BITMIME'], { rcpt: () => '451 4.3.0 later' });
  const dir = tempDir();
  const configFile = writeConfig(dir, baseConfig(dir, {
    relay: { routes: { 'hop.test': `127.0.0.1:${hop.port}` } },
    queue: { poll_interval: '200ms', retry: ['1h'] },
  }));
  addUser(configFile, 'a@example.test', 'pw-a-123');
  const server = await startMailnest(dir, configFile);
  try {
    inject(configFile, 'a@example.test', ['b@hop.test'], 'Subject: s\r\n\r\nx\r\n');
    const rcpts = () => hop.commands.filter((c) => c.startsWith('RCPT')).length;
    await until('the first attempt', () => queueJson(configFile)[0]?.recipients[0]?.status === 'deferred');
    const client = await TestClient.open(server.port('smtp'));
    await client.ehlo();
    assert.equal((await client.cmd('MAIL FROM:<x@remote.test>')).code, 250);
    assert.equal((await client.cmd('RCPT TO:<a@example.test>')).code, 250);
    assert.equal((await client.cmd('DATA')).code, 354);
    const exited = server.stop();
    await until('the server stopping', () => server.logs.some((l) => l.msg === 'stopping'));
    assert.equal(cli(configFile, ['queue', 'retry', '--all']).status, 0);
    // Several of the queue's looks later, the client still writing its message.
    for (let i = 0; i < 5; i++) {
      client.write(`line ${i}\r\n`);
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal((await client.cmd('.')).code, 250, 'the open transaction finishes');
    await client.quit();
    assert.equal(await exited, 0);
    assert.equal(rcpts(), 1, 'no second attempt after SIGTERM');
  } finally {
    await server.kill();
  }
});

test('SIGTERM while a connection is being made (a next hop that never greets): it is ended at once, and the message stays queued, uncharged', { timeout: 60_000 }, async (t) => {
  let connected!: () => void;
  const reached = new Promise<void>((r) => { connected = r; });
  const mute = net.createServer((s) => { s.on('error', () => {}); connected(); });
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  t.after(() => { mute.close(); mute.unref(); });
  const dir = tempDir();
  const configFile = writeConfig(dir, baseConfig(dir, {
    relay: { routes: { 'mute.test': `127.0.0.1:${(mute.address() as net.AddressInfo).port}` }, connect_timeout: '120s', greeting_timeout: '5m' },
    queue: { poll_interval: '200ms' },
  }));
  addUser(configFile, 'a@example.test', 'pw-a-123');
  const server = await startMailnest(dir, configFile);
  try {
    const id = inject(configFile, 'a@example.test', ['b@mute.test'], 'Subject: s\r\n\r\nx\r\n');
    await reached;
    // Ended, not cut at the end of the grace (which would charge it an attempt), nor waited for
    // the 120 s the greeting may take (past the test's time).
    assert.equal(await server.stop(), 0);
    assert.deepEqual(queueJson(configFile).find((e) => e.id === id)?.recipients.map((r) => [r.status, r.attempts]), [['queued', 0]]);
  } finally {
    await server.kill();
  }
});

test('reports name the server whose reply they give: none for mailnest\'s own refusal, the next hop for its refused greeting', async (t) => {
  const plain = await nextHop(t, []);
  const refusing = await nextHop(t, [], { greeting: '554 5.7.1 go away' });
  const dir = tempDir();
  const configFile = writeConfig(dir, baseConfig(dir, {
    relay: { routes: { 'plain.test': `127.0.0.1:${plain.port}`, 'refusing.test': `127.0.0.1:${refusing.port}` } },
    queue: { retry: ['1s'], poll_interval: '200ms', delay_warning: '1s' },
  }));
  addUser(configFile, 'a@example.test', 'pw-a-123');
  const server = await startMailnest(dir, configFile);
  t.after(() => server.kill());
  inject(configFile, 'a@example.test', ['x@plain.test'], 'Subject: eight\r\n\r\n\u00e9t\u00e9\r\n');
  const id = inject(configFile, 'a@example.test', ['y@refusing.test'], 'Subject: refused\r\n\r\nx\r\n');
  let reports: string[] = [];
  for (let i = 0; i < 200 && reports.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
    reports = (await mailbox(path.join(dir, 'data'), 'a@example.test')).map((m) => m.toString('utf8'));
  }
  const failed = reports.find((r) => /Action: failed/.test(r));
  const delayed = reports.find((r) => /Action: delayed/.test(r));
  assert.ok(failed && delayed, `reports: ${reports.length}`);
  // The next hop was never asked: no Remote-MTA, and no smtp diagnostic it did not send.
  assert.doesNotMatch(failed, /Remote-MTA/);
  assert.match(failed, /Diagnostic-Code: X-mailnest; 554 5\.6\.3 /);
  // A refused greeting is the next hop's reply, and the recipient waits (a transient status).
  assert.match(delayed, /Remote-MTA: dns; 127\.0\.0\.1\r\n/);
  assert.match(delayed, /Diagnostic-Code: smtp; 554 5\.7\.1 go away\r\n/);
  assert.match(delayed, /Status: 4\.7\.1\r\n/);
  assert.equal(queueJson(configFile).find((e) => e.id === id)?.recipients[0]?.last_reply, '554 5.7.1 go away');
});

test('a certificate the check refuses is named with what to do about it: relay.ca_file, or the setting that asks for the check', async (t) => {
  const { cert, key } = await makeSelfSignedCertificate('smarthost.test');
  const server = tls.createServer({ cert, key }, (s) => s.end('220 smarthost.test ESMTP\r\n'));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const refused = SmtpClient.connect({ host: '127.0.0.1', port, servername: 'smarthost.test', tls: 'implicit', verify: true, verifyKey: 'relay.smarthost_tls_verify' },
    { name: 'mx.example.test', connectTimeout: 5000, greetingTimeout: 5000, commandTimeout: 5000 });
  await assert.rejects(refused, (err: unknown) => err instanceof ConnectError
    && /^smarthost\.test\[127\.0\.0\.1\]:\d+: self-signed certificate; give the CA that signed it in relay\.ca_file, or set relay\.smarthost_tls_verify = false$/.test(err.reply));
  // Trusted, but for another name than the one asked for: no CA helps.
  const misnamed = SmtpClient.connect({ host: '127.0.0.1', port, servername: 'other.test', secureContext: tls.createSecureContext({ ca: cert }), tls: 'implicit', verify: true, verifyKey: 'relay.tls_verify' },
    { name: 'mx.example.test', connectTimeout: 5000, greetingTimeout: 5000, commandTimeout: 5000 });
  await assert.rejects(misnamed, (err: unknown) => err instanceof ConnectError
    && /^other\.test\[127\.0\.0\.1\]:\d+: Hostname\/IP does not match certificate's altnames: .*; name the host as its certificate does, or set relay\.tls_verify = false$/.test(err.reply));
});

test('TLS from the first byte to a port that begins in plain text is named so, with the setting to change', async (t) => {
  const server = net.createServer((s) => { s.on('error', () => undefined); s.write('220 plain.test ESMTP\r\n'); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const refused = SmtpClient.connect({ host: '127.0.0.1', port, servername: 'smarthost.test', tls: 'implicit', verify: false },
    { name: 'mx.example.test', connectTimeout: 5000, greetingTimeout: 5000, commandTimeout: 5000 });
  await assert.rejects(refused, (err: unknown) => err instanceof ConnectError
    && err.reply === `smarthost.test[127.0.0.1]:${port}: no TLS from the first byte on port ${port} (the server answered in plain text): set relay.smarthost_tls = "starttls" for a port that offers STARTTLS, such as 587`);
});

test('a failed connection names its host as Postfix does: name[address]:port, or the address alone (an IPv6 one in brackets)', () => {
  assert.equal(whereOf({ host: '192.0.2.1', port: 25, servername: 'mx.example.org' }), 'mx.example.org[192.0.2.1]:25');
  assert.equal(whereOf({ host: '2001:db8::1', port: 25, servername: 'mx.example.org' }), 'mx.example.org[2001:db8::1]:25');
  assert.equal(whereOf({ host: '2001:db8::1', port: 587 }), '[2001:db8::1]:587');
  assert.equal(whereOf({ host: '192.0.2.1', port: 465 }), '192.0.2.1:465');
});

test('a reply that trickles in a byte at a time, never silent for long, is cut off: during the setup and during a transaction', async (t) => {
  const slowHello = await nextHop(t, ['8BITMIME'], { trickle: 'ehlo' });
  // The trickle's 100 ms is far inside every limit on silence (1 s), so only the deadlines end it.
  const timeouts = { name: 'mx.example.test', connectTimeout: 500, greetingTimeout: 500, commandTimeout: 1000 };
  const err = await SmtpClient.connect({ host: '127.0.0.1', port: slowHello.port, tls: 'none', verify: false }, timeouts).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ConnectError, String(err));
  assert.equal(err.message, `127.0.0.1:${slowHello.port}: the session was not set up (greeting, EHLO, STARTTLS, AUTH) within relay.connect_timeout + greeting_timeout and 4 replies' time (command_timeout, or connect_timeout + greeting_timeout when longer)`);
  const slowEnd = await nextHop(t, ['8BITMIME'], { trickle: 'dot' });
  const client = await SmtpClient.connect({ host: '127.0.0.1', port: slowEnd.port, tls: 'none', verify: false }, timeouts);
  t.after(() => client.close());
  const [r] = await client.send(message('Subject: s\r\n\r\nx\r\n'));
  assert.deepEqual(r, { address: 'b@hop.test', ok: false, permanent: false, ownReply: true,
    reply: `127.0.0.1:${slowEnd.port}: the transaction did not end within relay.command_timeout for each of its replies and the time to send the message at 500 octets a second` });
  assert.equal(client.usable, false);
});

test('a reply over 16 KiB gives the connection up, a temporary failure: a refusal of 100 recipients is not kept at a MiB each', async (t) => {
  const huge = `550-${'A'.repeat(996)}\r\n`.repeat(20) + '550 5.1.1 no';
  const hop = await nextHop(t, ['8BITMIME', 'PIPELINING'], { rcpt: (a) => (a === 'big@hop.test' ? huge : undefined) });
  const client = await connect(hop.port);
  t.after(() => client.close());
  const results = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['big@hop.test', 'b@hop.test'] }));
  for (const r of results) {
    assert.equal(r.ok, false);
    assert.equal(r.permanent, false, r.reply);
    assert.match(r.reply, /^127\.0\.0\.1:\d+: Server response exceeds maximum allowed size$/);
  }
});

test('extensions are the keywords of the EHLO reply\'s lines after the first, not words of the server\'s name or greeting (RFC 5321 §4.1.1.1)', async (t) => {
  const hop = await nextHop(t, ['8BITMIME', 'PIPELINING'], { name: 'mail-dsn.example.net greets you, max SIZE 10, SMTPUTF8 soon' });
  const client = await connect(hop.port);
  t.after(() => client.close());
  assert.equal(client.offersDsn, false);
  const [r] = await client.send(message('Subject: a message over ten octets\r\n\r\nx\r\n', { dsn: { notify: ['FAILURE'] }, recipients: ['b@hop.test'] }));
  assert.equal(r!.ok, true, r!.reply);
  assert.deepEqual(hop.commands.filter((c) => /^(MAIL|RCPT)/.test(c)), ['MAIL FROM:<a@example.test>', 'RCPT TO:<b@hop.test>']);
  // A UTF-8 recipient is not sent to a hop that only names SMTPUTF8 in its greeting.
  const [utf8] = await client.send(message('Subject: s\r\n\r\nx\r\n', { recipients: ['j\u00f6rg@hop.test'] }));
  assert.match(utf8!.reply, /^553 5\.6\.7 /);
});

test('an RSET whose reply trickles in is cut off at command_timeout: the refused transaction before it is settled, and the connection not used again', async (t) => {
  const hop = await nextHop(t, ['8BITMIME'], { trickle: 'rset', rcpt: () => '550 5.1.1 no such user' });
  const client = await SmtpClient.connect({ host: '127.0.0.1', port: hop.port, tls: 'none', verify: false },
    { name: 'mx.example.test', connectTimeout: 500, greetingTimeout: 500, commandTimeout: 1000 });
  t.after(() => client.close());
  const sending = client.send(message('Subject: s\r\n\r\nx\r\n'));
  const results = await Promise.race([sending, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000).unref())]);
  assert.notEqual(results, 'hung', 'the transaction never settled');
  assert.deepEqual(results, [{ address: 'b@hop.test', ok: false, permanent: true, reply: '550 5.1.1 no such user' }]);
  assert.ok(hop.commands.includes('RSET'));
  assert.equal(client.usable, false);
});

test('TLS required: a hop whose EHLO offers no STARTTLS is said to offer none, whatever its name says; one that offers it and then refuses it, with its reply', async (t) => {
  const named = await nextHop(t, ['8BITMIME'], { name: 'mx-starttls.example' });
  const offering = await nextHop(t, ['STARTTLS', '8BITMIME'], { starttls: '454 4.7.0 TLS not available due to temporary reason' });
  const attempt = (port: number) => SmtpClient.connect({ host: '127.0.0.1', port, tls: 'starttls', verify: false },
    { name: 'mx.example.test', connectTimeout: 5000, greetingTimeout: 5000, commandTimeout: 5000 }).then(() => undefined, (e: unknown) => e);
  const none = await attempt(named.port);
  assert.ok(none instanceof ConnectError, String(none));
  assert.equal(none.message, `127.0.0.1:${named.port}: does not offer STARTTLS, which is required here`);
  const failed = await attempt(offering.port);
  assert.ok(failed instanceof ConnectError, String(failed));
  assert.equal(failed.message, `127.0.0.1:${offering.port}: STARTTLS, which is required here, failed: 454 4.7.0 TLS not available due to temporary reason`);
});
