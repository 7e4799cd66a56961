/**
 * Many sessions at once, and an orderly stop: 100 concurrent sessions each deliver a message
 * (all stored exactly once); SIGTERM during DATA lets the transaction finish, refuses new
 * connections and exits 0.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { cli } from '../helpers/server.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { cleanup, mailbox, PASSWORD, splitTrace, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';

let f: Fixture | undefined;
afterEach(async () => { await cleanup(f); f = undefined; });

const USERS = ['u0@example.test', 'u1@example.test', 'u2@example.test', 'u3@example.test', 'u4@example.test'];

function bodyFor(id: string): string {
  return `Subject: ${id}\r\nMessage-ID: <${id}@client.test>\r\n\r\n${`${id} `.repeat(50)}\r\n.${id}\r\n`;
}

test('100 concurrent sessions each deliver a message; every one is stored exactly once', async () => {
  f = await startFixture({ users: Object.fromEntries(USERS.map((u) => [u, PASSWORD])) });
  const port = f.port('smtp');
  const sessions = Array.from({ length: 100 }, async (_, i) => {
    // Four client addresses, so the default per-address limit (50) is not what is tested here.
    const c = await SmtpClient.open(port, { localAddress: `127.0.0.${1 + (i % 4)}`, timeoutMs: 60_000 });
    await c.ehlo(`client${i}.example.net`);
    const id = `concurrent-${i}`;
    const rcpt = USERS[i % USERS.length]!;
    c.write(`MAIL FROM:<sender${i}@remote.test>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
    const rs = await c.replies(3);
    assert.deepEqual(rs.map((r) => r.code), [250, 250, 354], rs.map((r) => r.raw).join(''));
    c.write(`${bodyFor(id).replace(/^\./gm, '..')}.\r\n`);
    const done = await c.reply();
    assert.equal(done.code, 250, done.raw);
    assert.equal((await c.quit()).code, 221);
    return { id, rcpt, queueId: /queued as (\S+)/.exec(done.raw)![1]! };
  });
  const results = await Promise.all(sessions);
  assert.equal(new Set(results.map((r) => r.queueId)).size, 100, 'queue ids are unique');

  const seen = new Map<string, number>();
  for (const user of USERS) {
    for (const stored of await mailbox(f.dataDir, user)) {
      const { trace, body } = splitTrace(stored);
      const id = /^Subject: (\S+)/.exec(body.toString())![1]!;
      seen.set(id, (seen.get(id) ?? 0) + 1);
      const expected = results.find((r) => r.id === id)!;
      assert.equal(expected.rcpt, user, `${id} went to the wrong mailbox`);
      assert.equal(body.toString(), bodyFor(id));
      assert.ok(trace.includes(`id ${expected.queueId}`));
    }
  }
  for (const r of results) assert.equal(seen.get(r.id), 1, `${r.id} stored ${seen.get(r.id) ?? 0} times`);
  assert.equal(seen.size, 100);
  // The operator's view agrees.
  const list = cli(f.configFile, ['user', 'list', '--json']);
  assert.equal(list.status, 0, list.stderr);
  const usage = JSON.parse(list.stdout) as { address: string; messages: number }[];
  assert.deepEqual(usage.map((u) => [u.address, u.messages]).sort(), USERS.map((u) => [u, 20]));
});

/** Resolves true when a new TCP connection is refused (or answered with 421 and closed). */
async function refusesNewConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => { s.destroy(); resolve(false); }, 10_000);
    const done = (v: boolean) => { clearTimeout(timer); resolve(v); };
    s.on('data', (d) => { data += d; });
    s.on('error', () => done(true));
    s.on('close', () => done(data === '' || data.startsWith('421')));
  });
}

async function waitForLog(fx: Fixture, msg: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (fx.server.logs.some((l) => l.msg === msg)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no "${msg}" log line`);
}

test('SIGTERM during DATA: the transaction finishes with 250, new connections are refused, exit 0', async () => {
  f = await startFixture();
  const port = f.port('smtp');
  const busy = await f.open('smtp');
  await busy.ehlo();
  assert.equal((await busy.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await busy.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await busy.cmd('DATA')).code, 354);
  busy.write('Subject: in flight\r\n\r\nfirst half\r\n');
  // A session between transactions is told to go at once.
  const idle = await f.open('smtp');
  await idle.ehlo();
  // A session in the middle of its envelope may finish too.
  const envelope = await f.open('smtp');
  await envelope.ehlo();
  assert.equal((await envelope.cmd('MAIL FROM:<other@remote.test>')).code, 250);

  const exited = f.server.stop();
  await waitForLog(f, 'stopping');
  const idleBye = await idle.reply();
  assert.equal(idleBye.code, 421, idleBye.raw);
  assert.equal(idleBye.enhanced, '4.3.2');
  await idle.closedByServer();
  assert.ok(await refusesNewConnections(port), 'a new connection after SIGTERM must be refused');

  busy.write('second half\r\n.\r\n');
  const done = await busy.reply();
  assert.equal(done.code, 250, done.raw);
  // Then the session is ended politely.
  const bye = await busy.reply();
  assert.equal(bye.code, 421, bye.raw);
  await busy.closedByServer();

  assert.equal((await envelope.cmd('RCPT TO:<bob@example.test>')).code, 250);
  assert.equal((await envelope.cmd('DATA')).code, 354);
  assert.equal((await envelope.cmd('Subject: also in flight\r\n\r\nx\r\n.')).code, 250);
  assert.equal((await envelope.reply()).code, 421);
  await envelope.closedByServer();

  assert.equal(await exited, 0);
  assert.deepEqual((await mailbox(f.dataDir, 'alice@example.test')).map((m) => splitTrace(m).body.toString()), ['Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n']);
  assert.equal((await mailbox(f.dataDir, 'bob@example.test')).length, 1);
});

test('SIGTERM during a DATA that never ends: cut at the end of the grace, its log line says shutdown and where, exit 0', { timeout: 30_000 }, async () => {
  f = await startFixture();
  const stuck = await f.open('smtp');
  await stuck.ehlo();
  assert.equal((await stuck.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await stuck.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await stuck.cmd('DATA')).code, 354);
  stuck.write('Subject: never finished\r\n\r\n');
  assert.equal(await f.server.stop(), 0);
  await stuck.closedByServer();
  const fixture = f;
  const cut = () => fixture.server.logs.find((l) => l.msg === 'session' && l.unfinished !== undefined);
  // Its output may still be on its way when the process has exited.
  for (let i = 0; i < 100 && !cut(); i++) await new Promise((r) => setTimeout(r, 20));
  const line = cut();
  assert.equal(line?.outcome, 'shutdown', JSON.stringify(line));
  assert.equal(line?.unfinished, 'DATA');
  assert.deepEqual(await mailbox(f.dataDir, 'alice@example.test'), []);
});

test('SIGTERM with only idle sessions: each gets 421 and the process exits 0', async () => {
  f = await startFixture();
  const clients = await Promise.all([f.open('smtp'), f.open('submission'), f.open('submissions')]);
  await clients[0]!.ehlo();
  const exited = f.server.stop();
  await waitForLog(f, 'stopping');
  for (const c of clients) {
    assert.equal((await c.reply()).code, 421);
    await c.closedByServer();
  }
  assert.equal(await exited, 0);
});

test('SIGTERM as soon as the server says it is listening: an orderly stop, exit 0', async () => {
  f = await startFixture();
  assert.equal(await f.server.stop(), 0);
  assert.equal(f.server.process.signalCode, null);
  assert.ok(f.server.logs.some((l) => l.msg === 'stopping'));
});
