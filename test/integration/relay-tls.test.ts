/**
 * relay.tls_verify: an MX host's certificate is checked, and TLS is required of it, so that an
 * attacker who can forge no certificate cannot strip STARTTLS instead and read the mail. A route,
 * the operator's own next hop, gets STARTTLS when it offers it, its certificate unchecked.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { inject, injectAsync, queueJsonAsync, until } from '../helpers/relay.ts';
import { cleanup, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { makeSelfSignedCertificate } from '../../src/net/self-signed-certificate.ts';

let f: Fixture | undefined;
let dns: DnsServer | undefined;
const mx = new SmtpSink();
const route = new SmtpSink();
const selfSigned = new SmtpSink({ tls: await makeSelfSignedCertificate('filter.internal.test') });
after(async () => {
  await cleanup(f);
  await dns?.close();
  await mx.stop();
  await route.stop();
  await selfSigned.stop();
});

test('with tls_verify, a route gets its mail, with STARTTLS when it offers it whatever its certificate, in clear when it does not', async () => {
  await route.start();
  await selfSigned.start();
  f = await startFixture({ config: { relay: { routes: { 'routed.test': `127.0.0.1:${route.port}`, 'filter.test': `127.0.0.1:${selfSigned.port}` }, tls_verify: true }, queue: { poll_interval: '100ms', retry: ['1h'] } } });
  const fixture = f;
  inject(fixture.configFile, 'alice@example.test', ['y@routed.test'], 'From: alice@example.test\r\nSubject: inside\r\n\r\nto the plain filter\r\n');
  inject(fixture.configFile, 'alice@example.test', ['z@filter.test'], 'From: alice@example.test\r\nSubject: inside\r\n\r\nto the TLS filter\r\n');
  await until('both delivered', () => route.messages.length === 1 && selfSigned.messages.length === 1);
  assert.ok(selfSigned.commands.includes('STARTTLS'));
  await cleanup(f);
  f = undefined;
});

/** An MX host answers on port 25: one on 127.0.0.1 needs the port free, and the right to take it. */
const port25 = await mx.start(25).then(() => true, () => false);

test('with tls_verify, an MX host that offers no STARTTLS gets nothing, and the delivery waits, saying why', { skip: port25 ? false : 'needs port 25 of 127.0.0.1' }, async () => {
  dns = await startDnsServer({ MX: { 'plain.test': [{ exchange: 'mx.plain.test', priority: 10 }] }, A: { 'mx.plain.test': ['127.0.0.1'] } });
  f = await startFixture({ config: { dns_servers: [dns.address], relay: { smarthost: undefined, smarthost_tls: undefined, tls_verify: true, dns_timeout: '2s' }, queue: { poll_interval: '100ms', retry: ['1h'] } } });
  const fixture = f;
  // Without blocking this process, whose DNS server must keep answering.
  const id = await injectAsync(fixture.configFile, 'alice@example.test', ['x@plain.test'], 'From: alice@example.test\r\nSubject: secret\r\n\r\nfor TLS only\r\n');
  await until('a deferral', async () => (await queueJsonAsync(fixture.configFile)).find((e) => e.id === id)?.recipients[0]?.status === 'deferred');
  const reply = (await queueJsonAsync(fixture.configFile)).find((e) => e.id === id)!.recipients[0]!.last_reply ?? '';
  assert.equal(reply, 'mx.plain.test[127.0.0.1]:25: does not offer STARTTLS, which is required here');
  assert.deepEqual(mx.messages, []);
  assert.ok(!mx.commands.some((c) => c.startsWith('MAIL')), 'not a word of the envelope in clear');
  // The session ends as RFC 5321 §4.1.1.10 asks, with QUIT, not a dropped connection.
  await until('the QUIT', () => mx.commands.at(-1) === 'QUIT');
});
