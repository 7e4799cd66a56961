/**
 * relay.tls_verify: an MX host's certificate is checked, and TLS is required of it, so that an
 * attacker who can forge no certificate cannot strip STARTTLS instead and read the mail. A route,
 * the operator's own next hop, gets STARTTLS when it offers it, its certificate unchecked. MTA-STS
 * (RFC 8461) asks the same of the MX hosts of the domains that publish a policy.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import selfsigned from 'selfsigned';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { cliAsync, inject, injectAsync, queueJsonAsync, until } from '../helpers/relay.ts';
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

/** A certificate for several names, as a web server's for many sites. */
async function certificateFor(names: string[]): Promise<{ cert: string; key: string }> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: names[0]! }], {
    keySize: 2048, algorithm: 'sha256', notBeforeDate: new Date(Date.now() - 86_400_000),
    extensions: [{ name: 'basicConstraints', cA: false }, { name: 'subjectAltName', altNames: names.map((value) => ({ type: 2, value })) }],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Policy hosts answer on port 443. */
const policyHost = https.createServer();
const port443 = await new Promise<boolean>((resolve) => {
  policyHost.once('error', () => resolve(false));
  policyHost.listen(443, '127.0.0.1', () => resolve(true));
});
after(() => new Promise<void>((resolve) => policyHost.close(() => resolve())));

test('MTA-STS: a domain whose policy enforces gets its mail from the MX hosts it names, over TLS with a certificate valid for the host, or not at all; the policy holds when its record is gone', { skip: port25 && port443 ? false : 'needs ports 25 and 443 of 127.0.0.1' }, async (t) => {
  // The MX host all these domains name: STARTTLS with a certificate for mx.sts.test alone.
  await mx.stop();
  const mxCert = await certificateFor(['mx.sts.test']);
  const stsMx = new SmtpSink({ tls: mxCert });
  await stsMx.start(25);
  t.after(() => stsMx.stop());
  const domains = ['sts.test', 'badcert-sts.test', 'wrongmx-sts.test', 'testing-sts.test', 'html-sts.test', 'missing-sts.test', 'big-sts.test'];
  const webCert = await certificateFor(domains.map((d) => `mta-sts.${d}`));
  policyHost.setSecureContext({ cert: webCert.cert, key: webCert.key });
  const policies: Record<string, string> = {
    'sts.test': 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n',
    // Its MX host's certificate is not for its name.
    'badcert-sts.test': 'version: STSv1\nmode: enforce\nmx: *.badcert-sts.test\nmax_age: 86400\n',
    // Its MX record names a host its policy does not.
    'wrongmx-sts.test': 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n',
    'testing-sts.test': 'version: STSv1\nmode: testing\nmx: mx.testing-sts.test\nmax_age: 86400\n',
    // Served as a web page, with a 404, or past 64 KiB: no policy (§3.3), though each would be
    // one the MX host's certificate does not meet.
    'html-sts.test': 'version: STSv1\nmode: enforce\nmx: mx.html-sts.test\nmax_age: 86400\n',
    'missing-sts.test': 'version: STSv1\nmode: enforce\nmx: mx.missing-sts.test\nmax_age: 86400\n',
    'big-sts.test': `version: STSv1\nmode: enforce\nmx: mx.big-sts.test\nmax_age: 86400\nx-padding: ${'x'.repeat(65 * 1024)}\n`,
  };
  policyHost.on('request', (req, res) => {
    const policy = policies[String(req.headers.host).replace(/^mta-sts\./, '')];
    if (req.url !== '/.well-known/mta-sts.txt' || !policy) return res.writeHead(404).end();
    res.writeHead(req.headers.host === 'mta-sts.missing-sts.test' ? 404 : 200, { 'content-type': req.headers.host === 'mta-sts.html-sts.test' ? 'text/html' : 'text/plain; charset=utf-8' }).end(policy);
  });
  const zone = {
    MX: Object.fromEntries([...domains, 'nosts.test'].map((d) => [d, [{ exchange: `mx.${d}`, priority: 10 }]])),
    A: Object.fromEntries([...domains, 'nosts.test'].flatMap((d) => [[`mx.${d}`, ['127.0.0.1']], [`mta-sts.${d}`, ['127.0.0.1']]])),
    TXT: Object.fromEntries(domains.map((d) => [`_mta-sts.${d}`, ['v=STSv1; id=1']])),
  };
  await dns?.close();
  dns = await startDnsServer(zone);
  const dir = fs.mkdtempSync('/tmp/mailnest-sts-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const caFile = path.join(dir, 'ca.pem');
  fs.writeFileSync(caFile, `${mxCert.cert}\n${webCert.cert}`);
  await cleanup(f);
  f = await startFixture({ config: { dns_servers: [dns.address], relay: { smarthost: undefined, smarthost_tls: undefined, ca_file: caFile, dns_timeout: '2s' }, queue: { poll_interval: '100ms', retry: ['1h'] } } });
  const fixture = f;
  const ids: Record<string, string> = {};
  for (const d of [...domains, 'nosts.test']) ids[d] = await injectAsync(fixture.configFile, 'alice@example.test', [`x@${d}`], `From: alice@example.test\r\nSubject: to ${d}\r\n\r\nhi\r\n`);
  const replyOf = async (d: string) => (await queueJsonAsync(fixture.configFile)).find((e) => e.id === ids[d])?.recipients[0];
  // Without a policy, or one in testing mode: as ever (STARTTLS taken, its certificate unchecked).
  await until('six delivered', () => stsMx.messages.length === 6);
  assert.deepEqual(stsMx.messages.map((m) => m.to[0]).sort(), ['x@big-sts.test', 'x@html-sts.test', 'x@missing-sts.test', 'x@nosts.test', 'x@sts.test', 'x@testing-sts.test']);
  // Each policy that could not be had is said, with why.
  const unfetched = fixture.server.logs.filter((l) => String(l.msg).startsWith('the MTA-STS policy a domain names could not be fetched'));
  assert.deepEqual(unfetched.map((l) => [l.domain, l.err]).sort(), [
    ['big-sts.test', 'mta-sts.big-sts.test: the policy is over 65536 octets'],
    ['html-sts.test', 'mta-sts.html-sts.test answered with text/html content type, not text/plain (RFC 8461 section 3.3)'],
    ['missing-sts.test', 'mta-sts.missing-sts.test answered 404 (RFC 8461 section 3.3: 200 only, no redirect followed)'],
  ]);
  await until('two deferred', async () => (await replyOf('badcert-sts.test'))?.status === 'deferred' && (await replyOf('wrongmx-sts.test'))?.status === 'deferred');
  assert.match((await replyOf('badcert-sts.test'))!.last_reply!, /^mx\.badcert-sts\.test\[127\.0\.0\.1\]:25: Hostname\/IP does not match certificate's altnames: .*, or set relay\.mta_sts = false$/);
  assert.equal((await replyOf('wrongmx-sts.test'))!.last_reply, '451 4.7.0 no MX host of wrongmx-sts.test (mx.wrongmx-sts.test) is one its MTA-STS policy names (mx.sts.test; RFC 8461 section 4.1)');
  // The record and the policy host gone, as an attacker would have them, after a restart: the
  // policy kept in the store still holds.
  await fixture.stop();
  delete zone.TXT['_mta-sts.badcert-sts.test'];
  delete policies['badcert-sts.test'];
  await fixture.restart();
  assert.equal((await cliAsync(fixture.configFile, ['queue', 'retry', ids['badcert-sts.test']!])).status, 0);
  await until('a second attempt', async () => (await replyOf('badcert-sts.test'))?.attempts === 2);
  assert.match((await replyOf('badcert-sts.test'))!.last_reply!, /does not match certificate's altnames: .*, or set relay\.mta_sts = false$/);
  assert.equal(stsMx.messages.length, 6);
});
