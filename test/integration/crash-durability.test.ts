/**
 * What the server has acknowledged survives SIGKILL, past SMTP's 250 (smtp-crash.test.ts): a
 * POP3 QUIT's +OK, an HTTP 202, a message the next hop took but never acknowledged, which
 * the queue still holds and delivers after the restart, and the report a recorded failure owes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addUser, baseConfig, cli, startMailnest, tempDir, writeConfig } from '../helpers/server.ts';
import { dataDirOf, mailbox } from '../helpers/mailbox.ts';
import { RawPop3 } from '../helpers/pop3.ts';
import { inject, queueJson, until } from '../helpers/relay.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

test('SIGKILL after a POP3 QUIT\'s +OK: the deletions stay; after DELE without QUIT, nothing is deleted', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, { auth: { allow_insecure: true } }));
  addUser(cfg, 'alice@example.test', 'pw-alice-1');
  for (const n of [1, 2, 3]) inject(cfg, 'x@example.test', ['alice@example.test'], `Subject: message ${n}\r\n\r\nbody ${n}\r\n`);

  const login = async (port: number): Promise<RawPop3> => {
    const { client } = await RawPop3.connect(port);
    assert.match(await client.command('USER alice@example.test'), /^\+OK/);
    assert.match(await client.command('PASS pw-alice-1'), /^\+OK maildrop has 3 messages|^\+OK maildrop has 1 message /);
    return client;
  };
  const first = await startMailnest(dir, cfg);
  try {
    const pop = await login(first.port('pop3'));
    assert.match(await pop.command('DELE 1'), /^\+OK/);
    assert.match(await pop.command('DELE 3'), /^\+OK/);
    assert.match(await pop.command('QUIT'), /^\+OK .*\(1 message left\)/);
  } finally {
    await first.kill();
  }
  const subjects = async () => (await mailbox(dataDirOf(dir), 'alice@example.test')).map((m) => /Subject: (.*)\r\n/.exec(m.toString())![1]);
  assert.deepEqual(await subjects(), ['message 2']);

  const second = await startMailnest(dir, cfg);
  try {
    const pop = await login(second.port('pop3'));
    assert.match(await pop.command('DELE 1'), /^\+OK/);
  } finally {
    // Killed in the TRANSACTION state: RFC 1939 §6 deletes only in UPDATE.
    await second.kill();
  }
  assert.deepEqual(await subjects(), ['message 2']);
  const third = await startMailnest(dir, cfg);
  try {
    const pop = await login(third.port('pop3'));
    assert.equal(await pop.command('STAT'), `+OK 1 ${(await mailbox(dataDirOf(dir), 'alice@example.test'))[0]!.length}`);
    await pop.command('QUIT');
  } finally {
    assert.equal(await third.stop(), 0);
  }
});

test('SIGKILL after an HTTP 202: the message is there after the restart', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  addUser(cfg, 'alice@example.test', 'pw-alice-1');
  const token = cli(cfg, ['token', 'create', 'cron']).stdout.trim().split(/\s+/).pop()!;
  const server = await startMailnest(dir, cfg);
  try {
    const res = await fetch(`http://127.0.0.1:${server.port('http')}/api/v1/send`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ to: 'alice@example.test', subject: 'kept', text: 'accepted, then the server was killed' }),
    });
    assert.equal(res.status, 202, await res.text());
  } finally {
    await server.kill();
  }
  const again = await startMailnest(dir, cfg);
  try {
    const [m] = await mailbox(dataDirOf(dir), 'alice@example.test');
    assert.match(m!.toString(), /Subject: kept\r\n[\s\S]*accepted, then the server was killed/);
  } finally {
    assert.equal(await again.stop(), 0);
  }
});

test('SIGKILL while the next hop holds a message it has read but not acknowledged: after the restart it is delivered, not lost', async (t) => {
  let reached!: () => void;
  const dot = new Promise<void>((r) => { reached = r; });
  // The first delivery's reply after the data never comes.
  const sink = new SmtpSink({ dataGate: () => { reached(); return new Promise<void>(() => {}); } });
  await sink.start();
  t.after(() => sink.stop());
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, {
    relay: { routes: { 'hop.test': `127.0.0.1:${sink.port}` } },
    queue: { retry: ['1s'], poll_interval: '200ms' },
  }));
  addUser(cfg, 'a@example.test', 'pw-a-1');
  const first = await startMailnest(dir, cfg);
  let id: string;
  try {
    id = inject(cfg, 'a@example.test', ['b@hop.test'], 'Subject: in flight\r\n\r\nstill ours\r\n');
    // Bounded: a delivery that never comes fails the test rather than holding the run.
    await Promise.race([dot, new Promise((_, reject) => setTimeout(() => reject(new Error('the next hop never got the message')), 30_000).unref())]);
  } finally {
    await first.kill();
  }
  assert.deepEqual(queueJson(cfg).find((e) => e.id === id)?.recipients.map((r) => r.address), ['b@hop.test']);
  // The next hop answers from now on.
  delete sink.opts.dataGate;
  const second = await startMailnest(dir, cfg);
  try {
    const [m] = await sink.waitFor(1);
    assert.deepEqual(m!.to, ['b@hop.test']);
    assert.match(m!.data.toString(), /Subject: in flight\r\n[\s\S]*still ours\r\n$/);
    await until('the message out of the queue', () => queueJson(cfg).every((e) => e.id !== id));
  } finally {
    assert.equal(await second.stop(), 0);
  }
});

test('SIGKILL with one destination\'s failure recorded and another\'s transfer under way: after the restart the sender gets one report naming both', async (t) => {
  let reached!: () => void;
  const dot = new Promise<void>((r) => { reached = r; });
  const refusing = new SmtpSink({ rcptReply: () => '550 5.1.1 no such user' });
  // Its first reply after the data never comes; from the restart on it refuses the message.
  const held = new SmtpSink({ dataGate: () => { reached(); return new Promise<void>(() => {}); }, dataReply: () => '554 5.7.1 refused' });
  await refusing.start();
  await held.start();
  t.after(async () => { await refusing.stop(); await held.stop(); });
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, {
    relay: { routes: { 'no.test': `127.0.0.1:${refusing.port}`, 'held.test': `127.0.0.1:${held.port}` } },
    queue: { retry: ['1s'], poll_interval: '200ms' },
  }));
  addUser(cfg, 'a@example.test', 'pw-a-1');
  const reports = async () => (await mailbox(dataDirOf(dir), 'a@example.test')).map((m) => m.toString());
  const first = await startMailnest(dir, cfg);
  let id: string;
  try {
    id = inject(cfg, 'a@example.test', ['x@no.test', 'y@held.test'], 'Subject: two ways\r\n\r\nboth fail\r\n');
    await Promise.race([dot, new Promise((_, reject) => setTimeout(() => reject(new Error('the held hop never got the message')), 30_000).unref())]);
    await until('x@no.test failed', () => queueJson(cfg).find((e) => e.id === id)?.recipients.find((r) => r.address === 'x@no.test')?.status === 'failed');
    // Recorded, its report waits for the other destination's outcome.
    assert.deepEqual(await reports(), []);
  } finally {
    await first.kill();
  }
  delete held.opts.dataGate;
  const second = await startMailnest(dir, cfg);
  try {
    await until('a report after the restart', async () => (await reports()).length > 0);
    await new Promise((r) => setTimeout(r, 1000));
    const [report, ...more] = await reports();
    assert.deepEqual(more, [], 'one report');
    assert.deepEqual([...report!.matchAll(/^Final-Recipient: (.*)\r$/gm)].map((m) => m[1]).sort(), ['rfc822; x@no.test', 'rfc822; y@held.test']);
    assert.match(report!, /^Diagnostic-Code: smtp; 550 5\.1\.1 no such user\r$/m);
    assert.match(report!, /^Diagnostic-Code: smtp; 554 5\.7\.1 refused\r$/m);
  } finally {
    assert.equal(await second.stop(), 0);
  }
});
