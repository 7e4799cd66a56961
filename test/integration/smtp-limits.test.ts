/**
 * Every input is bounded: each limit of [limits] and [auth], set small in the test config,
 * answered with its reply over a real socket, and the server still serves others after it.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { SmtpClient, plain } from '../helpers/smtp-client.ts';
import { cleanup, mailbox, PASSWORD, splitTrace, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';

let f: Fixture | undefined;
afterEach(async () => { await cleanup(f); f = undefined; });

test('max_line_length: an overlong command gets 500 5.5.2 and the session goes on', async () => {
  f = await startFixture({ config: { limits: { max_line_length: 512 } } });
  const c = await f.open('smtp');
  await c.ehlo();
  // A line of exactly the limit (CRLF included or not, it is well within 2x) is fine.
  assert.equal((await c.cmd(`NOOP ${'a'.repeat(400)}`)).code, 250);
  const long = await c.cmd(`NOOP ${'a'.repeat(600)}`);
  assert.equal(long.code, 500);
  assert.equal(long.enhanced, '5.5.2');
  // A very long line sent in pieces: one reply, nothing of it read as commands.
  c.write(`MAIL FROM:<${'b'.repeat(200_000)}\r\nNOOP\r\n`);
  const r = await c.reply();
  assert.equal(r.code, 500, r.raw);
  assert.equal((await c.reply()).raw, '250 2.0.0 Ok\r\n');
  // An overlong RCPT inside a transaction leaves the transaction as it was.
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd(`RCPT TO:<${'c'.repeat(700)}@example.test>`)).code, 500);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  // Message lines are not command lines: a 2000-octet body line is accepted.
  assert.equal((await c.cmd(`Subject: long line\r\n\r\n${'d'.repeat(2000)}\r\n.`)).code, 250);
  c.destroy();
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
});

test('max_line_length: an overlong AUTH response gets 500 and ends the exchange', async () => {
  f = await startFixture({ config: { limits: { max_line_length: 512 }, auth: { allow_insecure: true } } });
  const c = await f.open('submission');
  await c.ehlo();
  assert.equal((await c.cmd('AUTH PLAIN')).code, 334);
  const r = await c.cmd('A'.repeat(4000));
  assert.equal(r.code, 500, r.raw);
  // Back in command mode.
  assert.equal((await c.cmd('NOOP')).code, 250);
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).code, 235);
  c.destroy();
});

function messageOfSize(n: number): string {
  const head = 'Subject: size\r\n\r\n';
  const fill = n - head.length - 2;
  return `${head}${'s'.repeat(fill)}\r\n`;
}

test('max_message_size: advertised, declared SIZE refused at MAIL, actual size at the end', async () => {
  f = await startFixture({ config: { limits: { max_message_size: 1000 } } });
  const c = await f.open('smtp');
  const ehlo = await c.ehlo();
  assert.ok(ehlo.lines.includes('SIZE 1000'), ehlo.raw);
  const declared = await c.cmd('MAIL FROM:<sender@remote.test> SIZE=1001');
  assert.equal(declared.code, 552);
  assert.equal(declared.enhanced, '5.3.4');
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 503, 'no transaction after a refused MAIL');
  // Exactly the limit passes.
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test> SIZE=1000')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd(`${messageOfSize(1000)}.`)).code, 250);
  // One octet more, with a lying SIZE: refused at the end of data.
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test> SIZE=10')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const over = await c.cmd(`${messageOfSize(1001)}.`);
  assert.equal(over.code, 552, over.raw);
  assert.equal(over.enhanced, '5.3.4');
  // Far over the limit (2 MB): still read to its end, still one 552, the session goes on.
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(`${'NOOP\r\n'.repeat(350_000)}.\r\n`);
  assert.equal((await c.reply()).code, 552);
  assert.equal((await c.cmd('NOOP')).raw, '250 2.0.0 Ok\r\n');
  assert.equal(c.pending, '');
  c.destroy();
  const box = await mailbox(f.dataDir, 'alice@example.test');
  assert.equal(box.length, 1);
  assert.equal(splitTrace(box[0]!).body.length, 1000);
});

test('max_recipients: the one past the limit gets 452 4.5.3, the others get the message', async () => {
  f = await startFixture({
    config: { limits: { max_recipients: 3 } },
    users: { 'u1@example.test': PASSWORD, 'u2@example.test': PASSWORD, 'u3@example.test': PASSWORD, 'u4@example.test': PASSWORD },
  });
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  // Refused recipients do not count.
  assert.equal((await c.cmd('RCPT TO:<nobody@example.test>')).code, 550);
  for (const u of ['u1', 'u2', 'u3']) assert.equal((await c.cmd(`RCPT TO:<${u}@example.test>`)).code, 250);
  const r = await c.cmd('RCPT TO:<u4@example.test>');
  assert.equal(r.code, 452);
  assert.equal(r.enhanced, '4.5.3');
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: many\r\n\r\nx\r\n.')).code, 250);
  // The next transaction carries the rest.
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<u4@example.test>')).code, 250);
  c.destroy();
  for (const u of ['u1', 'u2', 'u3']) assert.equal((await mailbox(f.dataDir, `${u}@example.test`)).length, 1, u);
  assert.equal((await mailbox(f.dataDir, 'u4@example.test')).length, 0);
});

/** Opens a connection and says whether it got the greeting (true) or a 421 refusal (false). */
async function tryOpen(port: number, localAddress: string): Promise<{ client: SmtpClient; ok: boolean; raw: string }> {
  const client = await SmtpClient.connect(port, { localAddress });
  const r = await client.reply();
  if (r.code === 220) return { client, ok: true, raw: r.raw };
  await client.closedByServer();
  return { client, ok: false, raw: r.raw };
}

/** The server's sides of the loopback connections from these client ports, as the links of
 *  its descriptors name them (`socket:[INODE]`, from /proc/net/tcp). */
function serverSockets(serverPort: number, clientPorts: number[]): Set<string> {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
  const clients = new Set(clientPorts.map((p) => `0100007F:${hex(p)}`));
  return new Set(fs.readFileSync('/proc/net/tcp', 'utf8').split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => c[1] === `0100007F:${hex(serverPort)}` && clients.has(c[2]!))
    .map((c) => `socket:[${c[9]}]`));
}

/** How many of `sockets` the process still holds. */
function heldBy(pid: number, sockets: Set<string>): number {
  return fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return sockets.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      return false;
    }
  }).length;
}

test('a refused connection is closed: at once when its client closes, after a few seconds when it does not, however much it sends meanwhile', { timeout: 60_000 }, async () => {
  f = await startFixture({ config: { limits: { max_connections_per_ip: 1 } } });
  const held = await f.open('smtp');
  // The client side stays open when the server closes its side, as a client that never closes.
  const refused = () => new Promise<{ socket: net.Socket; closed: Promise<void> }>((resolve) => {
    const socket = net.connect({ port: f!.port('smtp'), host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    const closed = new Promise<void>((res) => socket.on('close', () => res()));
    socket.on('data', () => resolve({ socket, closed }));
  });
  const within = (p: Promise<void>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  // One that writes (what a client after a 421 may still send) and then closes.
  const polite = await refused();
  polite.socket.end('QUIT\r\n');
  assert.ok(await within(polite.closed, 3000), 'not closed after the client closed');
  // One that never closes its side: the server lets go of its socket all the same.
  const silent = await refused();
  const pid = f.server.process.pid!;
  const socket = serverSockets(f.port('smtp'), [silent.socket.localPort!]);
  assert.equal(socket.size, 1, 'the refused connection is not in /proc/net/tcp');
  const holds = () => heldBy(pid, socket) > 0;
  assert.ok(holds(), 'the refused socket is not found');
  let stillHeld = true;
  for (let i = 0; i < 150 && stillHeld; i++) {
    await new Promise((r) => setTimeout(r, 100));
    stillHeld = holds();
  }
  assert.ok(!stillHeld, 'the server still holds the refused connection');
  silent.socket.destroy();
  // One that keeps sending: the server's wait runs from its reply, not from the last input.
  const chatty = await refused();
  const talk = setInterval(() => chatty.socket.write('NOOP\r\n'), 100);
  try {
    assert.ok(await within(chatty.closed, 15_000), 'a refused client that keeps sending is held');
  } finally {
    clearInterval(talk);
    chatty.socket.destroy();
  }
  held.destroy();
});

test('refused connections: a client\'s refusals logged once a minute, and at most 1,000 linger waiting for their client to close', { timeout: 60_000 }, async (t) => {
  f = await startFixture({ config: { limits: { max_connections_per_ip: 1 } } });
  const held = await f.open('smtp');
  const port = f.port('smtp');
  /** A connection that never closes its side; resolves once the server has answered or closed it. */
  const refused = () => new Promise<net.Socket>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => resolve(socket));
    socket.once('data', () => resolve(socket));
    socket.once('close', () => resolve(socket));
  });
  const first = await Promise.all(Array.from({ length: 5 }, refused));
  // A session from another address, logged after the refusals: once its line is in, theirs are.
  const other = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  other.on('error', () => {});
  other.once('data', () => other.end('QUIT\r\n'));
  for (let i = 0; i < 100 && !f.server.logs.some((l) => l.msg === 'session' && l.client === '127.0.0.2'); i++) await new Promise((r) => setTimeout(r, 50));
  const lines = f.server.logs.filter((l) => l.msg === 'connection refused' && l.client === '127.0.0.1');
  assert.equal(lines.length, 1, JSON.stringify(lines));
  for (const s of first) s.destroy();
  const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout);
  if (!(limit >= 4000)) {
    t.diagnostic(`the lingering bound is not tried: ${limit} descriptors per process here`);
  } else {
    const many = await Promise.all(Array.from({ length: 1500 }, refused));
    // Counted exactly: the server's sockets of these connections, not whatever else it has open.
    const most = heldBy(f.server.process.pid!, serverSockets(port, many.map((s) => s.localPort!)));
    for (const s of many) s.destroy();
    assert.ok(most <= 1000, `the server held ${most} refused connections`);
  }
  held.destroy();
});

test('max_connections_per_ip and max_connections: 421 4.7.0 and close; slots come back', async () => {
  f = await startFixture({ config: { limits: { max_connections: 4, max_connections_per_ip: 2 } } });
  const smtp = f.port('smtp');
  const open: SmtpClient[] = [];
  for (let i = 0; i < 2; i++) {
    const a = await tryOpen(smtp, '127.0.0.1');
    assert.ok(a.ok, a.raw);
    open.push(a.client);
  }
  const third = await tryOpen(smtp, '127.0.0.1');
  assert.equal(third.ok, false);
  assert.match(third.raw, /^421 4\.7\.0 mx\.example\.test too many connections from 127\.0\.0\.1/);
  // Another client address still gets in, on any listener, up to the total.
  const b1 = await tryOpen(smtp, '127.0.0.2');
  assert.ok(b1.ok, b1.raw);
  const b2 = await tryOpen(f.port('submission'), '127.0.0.2');
  assert.ok(b2.ok, b2.raw);
  open.push(b1.client, b2.client);
  const fifth = await tryOpen(smtp, '127.0.0.3');
  assert.equal(fifth.ok, false);
  assert.match(fifth.raw, /^421 4\.7\.0 .*too many connections/);
  // The refused ones did not take a slot; a closed one gives its slot back.
  assert.equal((await open[0]!.quit()).code, 221);
  let again: Awaited<ReturnType<typeof tryOpen>> | undefined;
  for (let i = 0; i < 100 && !again?.ok; i++) {
    again = await tryOpen(smtp, '127.0.0.3');
    if (!again.ok) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(again?.ok, 'a slot freed by QUIT is reused');
  open.push(again!.client);
  // The sessions that were let in work normally.
  assert.equal((await open[1]!.cmd('NOOP')).code, 250);
  for (const c of open) c.destroy();
});

test('the MX takes three quarters of max_connections at most, and an address\'s MX connections do not count against it on the users\' listeners', async () => {
  f = await startFixture({ config: { limits: { max_connections: 4, max_connections_per_ip: 3 } } });
  const smtp = f.port('smtp');
  const open: SmtpClient[] = [];
  for (const ip of ['127.0.0.1', '127.0.0.1', '127.0.0.1']) {
    const a = await tryOpen(smtp, ip);
    assert.ok(a.ok, a.raw);
    open.push(a.client);
  }
  // The internet has taken its three quarters, and this address its three connections.
  const fourth = await tryOpen(smtp, '127.0.0.2');
  assert.equal(fourth.ok, false);
  assert.match(fourth.raw, /^421 4\.7\.0 mx\.example\.test too many connections/);
  // The last quarter is for the users, from the same address too.
  const user = await tryOpen(f.port('submission'), '127.0.0.1');
  assert.ok(user.ok, user.raw);
  open.push(user.client);
  const over = await tryOpen(f.port('submission'), '127.0.0.2');
  assert.equal(over.ok, false, 'the total still holds');
  for (const c of open) c.destroy();
});

test('idle_timeout: 421 4.4.2 and close, also in the middle of DATA (nothing stored)', async () => {
  f = await startFixture({ config: { limits: { idle_timeout: '1s' } } });
  const idle = await f.open('smtp');
  const inData = await f.open('smtp');
  await inData.ehlo();
  assert.equal((await inData.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await inData.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await inData.cmd('DATA')).code, 354);
  inData.write('Subject: never finished\r\n\r\nhalf a message\r\n');
  for (const c of [idle, inData]) {
    const r = await c.reply();
    assert.equal(r.code, 421, r.raw);
    // Only the session that said EHLO gets enhanced status codes.
    assert.equal(r.enhanced, c === inData ? '4.4.2' : undefined, r.raw);
    assert.match(r.raw, /timeout/);
    assert.equal(await c.closedByServer(), '');
  }
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 0);
  // The server itself is fine.
  const c = await f.open('smtp');
  assert.equal((await c.cmd('NOOP')).code, 250);
  c.destroy();
});

test('auth.max_failures: delayed failures, then 421 and disconnect; the address stays blocked', async () => {
  f = await startFixture({ config: { auth: { max_failures: 3, allow_insecure: true } } });
  const c = await f.open('submission');
  await c.ehlo();
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', 'wrong1')}`)).code, 535);
  assert.equal((await c.cmd(`AUTH PLAIN ${plain('alice@example.test', 'wrong2')}`)).code, 535);
  const third = await c.cmd(`AUTH PLAIN ${plain('alice@example.test', 'wrong3')}`);
  assert.equal(third.code, 421, third.raw);
  assert.equal(third.enhanced, '4.7.0');
  assert.equal(await c.closedByServer(), '');
  // A new session from the same address is cut off at its next attempt, even a right one.
  const d = await f.open('smtp');
  await d.ehlo();
  const r = await d.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`);
  assert.equal(r.code, 421, r.raw);
  await d.closedByServer();
  // Other clients are not affected.
  const e = await SmtpClient.open(f.port('submission'), { localAddress: '127.0.0.2' });
  await e.ehlo();
  assert.equal((await e.cmd(`AUTH PLAIN ${plain('alice@example.test', PASSWORD)}`)).code, 235);
  e.destroy();
});

test('20 errors in one session: 421 4.7.0 and close', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  // Address harvesting: unknown recipients count as errors.
  c.write(Array.from({ length: 25 }, (_, i) => `RCPT TO:<guess${i}@example.test>\r\n`).join(''));
  const replies = await c.replies(21);
  assert.deepEqual(replies.slice(0, 20).map((r) => r.code), Array(20).fill(550));
  assert.equal(replies[20]!.code, 421, replies[20]!.raw);
  assert.equal(replies[20]!.enhanced, '4.7.0');
  assert.equal(await c.closedByServer(), '', 'nothing answered after the 421');
  // A fresh session is fine.
  const d = await f.open('smtp');
  assert.equal((await d.cmd('NOOP')).code, 250);
  d.destroy();
});

/** Resolves true when the server closes `socket` within `ms` (a generous bound, not a timing). */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    socket.once('close', () => { clearTimeout(t); resolve(true); });
  });
}

function rawConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', () => { /* seen as close */ });
    s.once('error', reject);
  });
}

/** A raw connection past its greeting and EHLO (answered): from here the client may pipeline. */
async function rawAfterEhlo(port: number): Promise<net.Socket> {
  const s = await rawConnect(port);
  let got = '';
  let greeted = false;
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (!greeted && /^220 /m.test(got)) {
        greeted = true;
        s.write('EHLO c.test\r\n');
      }
      if (/^250 /m.test(got)) {
        s.off('data', onData);
        resolve();
      }
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed before EHLO was answered: ${got}`)));
  });
  return s;
}

test('idle_timeout also bounds TLS handshakes (after STARTTLS and on submissions)', async () => {
  f = await startFixture({ config: { limits: { idle_timeout: '1s' } } });
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('STARTTLS')).code, 220);
  // ... and no ClientHello ever comes; nor to the implicit-TLS port.
  const implicit = await rawConnect(f.port('submissions'));
  const [afterStarttls, onSubmissions] = await Promise.all([closedWithin(c.socket, 8000), closedWithin(implicit, 8000)]);
  c.destroy();
  implicit.destroy();
  assert.ok(afterStarttls, 'a stalled STARTTLS handshake outlives idle_timeout');
  assert.ok(onSubmissions, 'a stalled implicit-TLS handshake outlives idle_timeout');
});

test('connection limits count implicit-TLS connections still in the handshake', async () => {
  f = await startFixture({ config: { limits: { max_connections_per_ip: 2 } } });
  const sockets = await Promise.all(Array.from({ length: 5 }, () => rawConnect(f!.port('submissions'))));
  const closed = await Promise.all(sockets.map((s) => closedWithin(s, 8000)));
  for (const s of sockets) s.destroy();
  assert.ok(closed.filter(Boolean).length >= 3, `only ${closed.filter(Boolean).length} of 5 refused with a limit of 2`);
});

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

test('thousands of commands pipelined in one write are all answered, in order, a turn\'s worth at a time; the session goes on', async () => {
  f = await startFixture();
  const s = await rawAfterEhlo(f.port('smtp'));
  let text = '';
  s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
  // Recipients past limits.max_recipients (100) are answered 452 and the session goes on, up to
  // 1,000 of them (NOOP, RSET or HELP would be cut off after 100): 1,100 recipients make about
  // 50 KB of replies.
  s.write(`MAIL FROM:<s@remote.test>\r\n${'RCPT TO:<alice@example.test>\r\n'.repeat(1100)}RSET\r\nQUIT\r\n`);
  await new Promise((resolve) => s.once('close', resolve));
  const finals = text.split('\r\n').filter((l) => /^\d{3} /.test(l));
  assert.equal(finals.length, 1 + 1100 + 2);
  assert.ok(finals.slice(1, 101).every((l) => l.startsWith('250 ')));
  assert.ok(finals.slice(101, 1101).every((l) => l.startsWith('452 4.5.3 ')));
  assert.deepEqual(finals.slice(1101).map((l) => l.slice(0, 3)), ['250', '221']);
});

test('a client that never reads its replies cannot make the server buffer without bound', async (t) => {
  f = await startFixture();
  const pid = f.server.process.pid!;
  const before = rssMb(pid);
  const s = await rawAfterEhlo(f.port('smtp'));
  s.pause(); // never read a reply
  // Recipients past the limit, each answered 452, the command a session takes longest (past
  // 1,000 of them it is closed, as after 100 NOOPs or RSETs): what the server holds meanwhile is
  // bounded by its not reading what the client sends while its replies wait.
  s.write('MAIL FROM:<s@remote.test>\r\n');
  const chunk = Buffer.from('RCPT TO:<alice@example.test>\r\n'.repeat(10_000));
  let sent = 0;
  while (sent < 24e6) {
    if (!s.write(chunk)) {
      // The server stopped reading (what back-pressure looks like): stop sending.
      const drained = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 2000);
        s.once('drain', () => { clearTimeout(t); resolve(true); });
      });
      if (!drained) break;
    }
    sent += chunk.length;
  }
  const growth = rssMb(pid) - before;
  s.destroy();
  t.diagnostic(`server RSS +${growth.toFixed(0)} MB after ${(sent / 1e6).toFixed(1)} MB of unread commands`);
  // Without back-pressure 24 MB of such commands cost the server hundreds of MB of queued replies; with it,
  // the server stops reading after a few MB (kernel buffers) and grows by well under 150 MB.
  assert.ok(growth < 150, `server RSS grew by ${growth.toFixed(0)} MB for ${(sent / 1e6).toFixed(0)} MB of unread pipelined commands`);
});
