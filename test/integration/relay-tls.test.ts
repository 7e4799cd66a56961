/**
 * relay.tls_verify: a route or MX host's certificate is checked, and TLS is required, so that
 * an attacker who can forge no certificate cannot strip STARTTLS instead and read the mail.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { inject, queueJson, until } from '../helpers/relay.ts';
import { cleanup, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

let f: Fixture | undefined;
const plain = new SmtpSink();
after(async () => {
  await cleanup(f);
  await plain.stop();
});

test('with tls_verify, a next hop that offers no STARTTLS gets nothing: the delivery waits, saying why', async () => {
  await plain.start();
  f = await startFixture({ config: { relay: { routes: { 'plain.test': `127.0.0.1:${plain.port}` }, tls_verify: true }, queue: { poll_interval: '100ms', retry: ['1h'] } } });
  const id = inject(f.configFile, 'alice@example.test', ['x@plain.test'], 'From: alice@example.test\r\nSubject: secret\r\n\r\nfor TLS only\r\n');
  const fixture = f;
  await until('a deferral', () => queueJson(fixture.configFile).find((e) => e.id === id)?.recipients[0]?.status === 'deferred');
  const reply = queueJson(fixture.configFile).find((e) => e.id === id)!.recipients[0]!.last_reply ?? '';
  assert.match(reply, /^127\.0\.0\.1:\d+: STARTTLS, which is required here, failed: 502 5\.5\.2 /, reply);
  assert.deepEqual(plain.messages, []);
  assert.ok(!plain.commands.some((c) => c.startsWith('MAIL')), 'not a word of the envelope in clear');
});
