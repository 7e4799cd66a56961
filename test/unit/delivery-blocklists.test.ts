/** DNS blocklists (RFC 5782): the names asked, what counts as a listing, one lookup per client. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Blocklists, isListing, listingName, shownZone } from '../../src/delivery/blocklists.ts';

test('the name asked: octets or nibbles in reverse under the zone (RFC 5782 §2.1, §2.4)', () => {
  assert.equal(listingName('192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
  assert.equal(listingName('::ffff:192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
  // RFC 5782 §2.4's own example.
  assert.equal(listingName('2001:db8:1:2:3:4:567:89ab', 'ugly.example.com'), 'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com');
  assert.equal(listingName('2001:db8::1', 'bl.example'), `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.bl.example`);
  assert.equal(listingName('not an address', 'bl.example'), undefined);
});

test('a listing is an address in 127.0.0.0/8, but not one of 127.255.255.0/24 (error codes)', () => {
  for (const a of ['127.0.0.2', '127.0.0.11', '127.1.2.3']) assert.equal(isListing(a), true, a);
  for (const a of ['127.255.255.254', '127.255.255.252', '198.51.100.7', '10.0.0.2']) assert.equal(isListing(a), false, a);
});

test('a zone that lists the client, the first to say so; one lookup while it is under way and for a while after; a failure lists nobody', async () => {
  const asked: string[] = [];
  const answers: Record<string, string[] | Error> = {
    '2.2.0.192.first.example': ['127.0.0.2'],
    '2.2.0.192.second.example': ['127.0.0.3'],
    '3.2.0.192.first.example': new Error('SERVFAIL'),
    '3.2.0.192.second.example': Object.assign(new Error('no such name'), { code: 'ENOTFOUND' }),
  };
  let now = 0;
  const lists = new Blocklists(['first.example', 'second.example', 'silent.example'], async (name, rrtype) => {
    asked.push(`${rrtype} ${name}`);
    // The second zone answers first, and the third never does: neither waits for the others.
    if (name.endsWith('silent.example')) return new Promise<never>(() => {});
    await new Promise((r) => setTimeout(r, name.includes('first') ? 20 : 1));
    if (rrtype === 'TXT') return name.includes('second') ? [['see ', 'https://second.example/\u0000q']] : [];
    const a = answers[name];
    if (a instanceof Error) throw a;
    return a ?? [];
  }, 100, { now: () => now });
  const [one, two] = await Promise.all([lists.screen('192.0.2.2'), lists.screen('192.0.2.2')]);
  // As given: the reply it goes into makes it text (a NUL is a "?" there, see smtp-dnsbl).
  assert.deepEqual(one, { zone: 'second.example', reason: 'see https://second.example/\u0000q' });
  assert.equal(two, one);
  assert.deepEqual(asked.sort(), ['A 2.2.0.192.first.example', 'A 2.2.0.192.second.example', 'A 2.2.0.192.silent.example', 'TXT 2.2.0.192.second.example']);
  // Listed, it is remembered five minutes; not listed (a zone failing, another silent), a minute.
  assert.equal(await lists.screen('192.0.2.3'), 'clear');
  asked.length = 0;
  now += 59_000;
  assert.equal(await lists.screen('192.0.2.3'), 'clear');
  assert.deepEqual(await lists.screen('192.0.2.2'), one);
  assert.equal(asked.length, 0, asked.join());
  now += 2_000;
  assert.equal(await lists.screen('192.0.2.3'), 'clear');
  assert.equal(asked.length, 3, asked.join());
  now += 5 * 60_000;
  assert.deepEqual(await lists.screen('192.0.2.2'), one);
  assert.ok(asked.includes('A 2.2.0.192.first.example'), asked.join());
});

test('past the lookups that may be under way at once, a client cannot be screened: busy, and not remembered', async () => {
  let answer = (): void => {};
  const held = new Promise<void>((r) => { answer = r; });
  const lists = new Blocklists(['bl.example'], async () => {
    await held;
    return [];
  }, 60_000);
  const first = Array.from({ length: 256 }, (_, i) => lists.screen(`10.0.${i >> 8}.${i & 255}`));
  assert.equal(await lists.screen('192.0.2.9'), 'busy');
  answer();
  assert.deepEqual(new Set(await Promise.all(first)), new Set(['clear']));
  assert.equal(await lists.screen('192.0.2.9'), 'clear');
});

test('an access key in a zone\'s name is not shown', () => {
  assert.equal(shownZone('zen.spamhaus.org'), 'zen.spamhaus.org');
  assert.equal(shownZone('abcdefghij0123456789klmnop.zen.dq.spamhaus.net'), '*.zen.dq.spamhaus.net');
  assert.equal(shownZone('averyveryverylonglabel.example'), 'averyveryverylonglabel.example');
});

test('a reason is kept to 200 characters; a zone answering its error code is told once an hour', async () => {
  let now = 0;
  const told: string[] = [];
  const lists = new Blocklists(['bl.example', 'refusing.example'], async (name, rrtype) => {
    if (name.endsWith('refusing.example')) return rrtype === 'A' ? ['127.255.255.254'] : [];
    return rrtype === 'A' ? ['127.0.0.2'] : [['x'.repeat(300)]];
  }, 1000, { now: () => now, onErrorCode: (zone, code) => told.push(`${zone} ${code}`) });
  const listed = await lists.screen('192.0.2.1');
  assert.equal(typeof listed === 'object' && listed.reason, 'x'.repeat(200));
  now += 10 * 60_000;
  await lists.screen('192.0.2.1');
  assert.deepEqual(told, ['refusing.example 127.255.255.254']);
  now += 60 * 60_000;
  await lists.screen('192.0.2.1');
  assert.equal(told.length, 2);
});
