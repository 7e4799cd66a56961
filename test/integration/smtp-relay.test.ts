/**
 * Never an open relay: on the smtp listener (no AUTH) every non-local recipient and every old
 * trick to reach one is refused, and nothing ever reaches the outbound queue.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanup, mailbox, queue, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';

let f: Fixture | undefined;
afterEach(async () => { await cleanup(f); f = undefined; });

/** [recipient, expected code] — each must be refused. */
const TRICKS: [string, number][] = [
  ['u@remote.test', 550],
  ['u%remote.test@example.test', 550],
  ['alice%remote.test@example.test', 550],
  ['@example.test:u@remote.test', 550],
  ['@example.test,@mx.example.test:u@remote.test', 550],
  ['"u@remote.test"@example.test', 550],
  ['"alice@remote.test"@example.test', 550],
  ['u!remote.test@example.test', 550],
  ['remote.test!u@example.test', 550],
  ['u@remote.test.', 501],
  ['alice@example.test.', 501],
  ['u@remote.test@example.test', 501],
  ['u@[127.0.0.1]', 550],
  ['u@[IPv6:::1]', 550],
  ['u@sub.example.test', 550],
  ['u@example.test.remote.test', 550],
  ['postmaster@remote.test', 550],
];

for (const listenerHelo of ['EHLO', 'HELO'] as const) {
  test(`relay tricks are refused on the smtp listener after ${listenerHelo}`, async () => {
    f = await startFixture();
    const c = await f.open('smtp');
    assert.equal((await c.cmd(`${listenerHelo} client.example.net`)).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
    for (const [rcpt, code] of TRICKS) {
      const r = await c.cmd(`RCPT TO:<${rcpt}>`);
      assert.equal(r.code, code, `RCPT TO:<${rcpt}> -> ${r.raw}`);
      if (listenerHelo === 'EHLO' && code === 550) assert.match(r.enhanced ?? '', /^5\.(7\.1|1\.1)$/, r.raw);
    }
    // Nothing accepted: DATA has no recipient.
    assert.equal((await c.cmd('DATA')).code, 554);
    c.destroy();
    assert.deepEqual(await queue(f.dataDir), []);
  });
}

test('a message with a local and several trick recipients reaches only the local user', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  for (const [rcpt] of TRICKS) assert.notEqual((await c.cmd(`RCPT TO:<${rcpt}>`)).code, 250, rcpt);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: x\r\n\r\nx\r\n.')).code, 250);
  await c.quit();
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
  assert.deepEqual(await queue(f.dataDir), [], 'nothing queued for relay');
});

test('the same tricks in a pipelined burst, and a quoted local part that is really local', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  const lines = ['MAIL FROM:<sender@remote.test>', ...TRICKS.map(([r]) => `RCPT TO:<${r}>`), 'RCPT TO:<"alice"@example.test>', 'DATA'];
  c.write(lines.map((l) => `${l}\r\n`).join(''));
  const replies = await c.replies(lines.length);
  assert.deepEqual(replies.slice(1, 1 + TRICKS.length).map((r) => r.code), TRICKS.map(([, code]) => code));
  // "alice"@example.test is alice: a local recipient, accepted.
  assert.equal(replies[1 + TRICKS.length]!.code, 250);
  assert.equal(replies[2 + TRICKS.length]!.code, 354);
  c.write('Subject: quoted\r\n\r\nx\r\n.\r\n');
  assert.equal((await c.reply()).code, 250);
  c.destroy();
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
  assert.deepEqual(await queue(f.dataDir), []);
});

test('without AUTH the submission listeners take no mail at all', async () => {
  f = await startFixture();
  for (const listener of ['submission', 'submissions'] as const) {
    const c = await f.open(listener);
    await c.ehlo();
    const r = await c.cmd('MAIL FROM:<sender@remote.test>');
    assert.equal(r.code, 530, `${listener}: ${r.raw}`);
    assert.equal((await c.cmd('RCPT TO:<u@remote.test>')).code, 503);
    c.destroy();
  }
  assert.deepEqual(await queue(f.dataDir), []);
});
