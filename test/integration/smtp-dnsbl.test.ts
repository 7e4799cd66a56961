/**
 * [checks] dnsbl on the smtp listener of a real mailnest process, against a DNS server of the
 * test's own on 127.0.0.1 that lists 127.0.0.1, the tests' client (nothing leaves the machine).
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { until } from '../helpers/relay.ts';
import { cleanup, mailbox, PASSWORD, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';

let f: Fixture | undefined;
let dns: DnsServer | undefined;
afterEach(async () => {
  await cleanup(f);
  f = undefined;
  await dns?.close();
  dns = undefined;
});

/** A server screening its clients with `zones`, asked of a DNS server that lists 127.0.0.1 in
 *  bl.test (with a reason) and in quiet.test (without), and never answers for slow.test. */
async function screened(zones: string[]): Promise<Fixture> {
  dns = await startDnsServer({
    A: { '1.0.0.127.bl.test': ['127.0.0.2'], '1.0.0.127.quiet.test': ['127.0.0.4'], '1.0.0.127.refusing.test': ['127.255.255.254'] },
    TXT: { '1.0.0.127.bl.test': ['listed\u0007: see https://bl.test/query/127.0.0.1'] },
    silent: ['1.0.0.127.slow.test'],
  });
  return startFixture({ config: { dns_servers: [dns.address], checks: { dnsbl: zones, dns_timeout: '500ms' } } });
}

test('a client a DNS blocklist lists gets 554 5.7.1 at RCPT, naming the list and its reason; its mail to the postmaster is taken', async () => {
  f = await screened(['clean.test', 'bl.test']);
  const c = await f.open('smtp');
  await c.ehlo('relay.remote.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  const refused = await c.cmd('RCPT TO:<alice@example.test>');
  assert.deepEqual([refused.code, refused.enhanced], [554, '5.7.1'], refused.raw);
  // The zone that lists it, with its TXT record, printable only.
  assert.match(refused.raw, /Service unavailable; Client host \[127\.0\.0\.1\] blocked using bl\.test; listed\?: see https:\/\/bl\.test\/query\/127\.0\.0\.1\r\n$/);
  assert.equal((await c.cmd('RCPT TO:<Postmaster@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: I am listed by mistake\r\n\r\nhi\r\n.')).code, 250);
  await c.quit();
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1, 'alice is the postmaster');
  await until('the refusal in the log', () => f!.server.logs.some((l) => l.msg === 'refused'));
  const line = f.server.logs.find((l) => l.msg === 'refused')!;
  assert.deepEqual([line.reason, line.detail, line.to], ['dnsbl', 'bl.test', ['alice@example.test']]);
  // Each zone and the reason were asked once, though the session asked at connection and at RCPT.
  assert.deepEqual(dns!.queries.filter((q) => q.includes('bl.test')).sort(), ['A 1.0.0.127.bl.test', 'TXT 1.0.0.127.bl.test']);
});

test('a listing without a reason refuses too, whatever another zone is slow to say; error codes (127.255.255.x) and silence list nobody, and cost one wait', async () => {
  f = await screened(['slow.test', 'quiet.test']);
  let c = await f.open('smtp');
  await c.ehlo('relay.remote.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  const r = await c.cmd('RCPT TO:<alice@example.test>');
  assert.equal(r.code, 554, r.raw);
  assert.match(r.raw, /blocked using quiet\.test\r\n$/);
  await c.quit();
  await f.stop();
  await cleanup(f);
  await dns!.close();
  // A zone that answers its own error code (Spamhaus's to a public resolver), and one whose
  // DNS never answers: the mail is taken, after the lookup's time at most, which the client
  // waits once, not at each recipient or connection.
  f = await screened(['refusing.test', 'slow.test']);
  const asked = () => dns!.queries.filter((q) => q.includes('slow.test')).length;
  let first = 0;
  for (let i = 0; i < 2; i++) {
    c = await f.open('smtp');
    await c.ehlo('relay.remote.test');
    assert.equal((await c.transaction('<sender@remote.test>', ['<alice@example.test>', '<bob@example.test>'], 'Subject: taken\r\n\r\nhi')).code, 250);
    await c.quit();
    if (i === 0) first = asked();
  }
  // (The resolver may ask again within the lookup's time: the count is the first lookup's.)
  assert.ok(first >= 1);
  assert.equal(asked(), first, 'no lookup after the first');
  // The operator hears that the zone refuses the resolver: it lists nobody until that changes.
  await until('the warning', () => f!.server.logs.some((l) => l.level === 40 && l.zone === 'refusing.test' && l.answer === '127.255.255.254'));
});

test('a session logged in on the MX is not screened: a user at home is in the lists of dynamic addresses', async () => {
  f = await screened(['bl.test']);
  const c = await f.open('smtp');
  await c.ehlo('home.example');
  assert.equal((await c.starttls(f.ca)).code, 220);
  await c.ehlo('home.example');
  assert.equal((await c.cmd(`AUTH PLAIN ${Buffer.from(`\0alice@example.test\0${PASSWORD}`).toString('base64')}`)).code, 235);
  assert.equal((await c.transaction('<alice@example.test>', ['<bob@example.test>'], 'Subject: from home\r\n\r\nhi')).code, 250);
  await c.quit();
});
