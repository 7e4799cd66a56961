/** DNS blocklists (RFC 5782): the names asked, what counts as a listing, one lookup per client. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Blocklists, isListing, listingName } from '../../src/delivery/blocklists.ts';

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

test('the first zone in their order that lists the client, asked once while a lookup is under way; a failure lists nobody', async () => {
  const asked: string[] = [];
  const answers: Record<string, string[] | Error> = {
    '2.2.0.192.first.example': ['127.0.0.2'],
    '2.2.0.192.second.example': ['127.0.0.3'],
    '3.2.0.192.first.example': new Error('SERVFAIL'),
    '3.2.0.192.second.example': Object.assign(new Error('no such name'), { code: 'ENOTFOUND' }),
  };
  const lists = new Blocklists(['first.example', 'second.example'], async (name, rrtype) => {
    asked.push(`${rrtype} ${name}`);
    // The first zone answers last: the order of the zones decides, not that of the answers.
    await new Promise((r) => setTimeout(r, name.includes('first') ? 20 : 1));
    if (rrtype === 'TXT') return name.includes('first') ? [['see ', 'https://first.example/\u0000q']] : [];
    const a = answers[name];
    if (a instanceof Error) throw a;
    return a ?? [];
  }, 1000);
  const [one, two] = await Promise.all([lists.listing('192.0.2.2'), lists.listing('192.0.2.2')]);
  assert.deepEqual(one, { zone: 'first.example', reason: 'see https://first.example/?q' });
  assert.equal(two, one);
  assert.deepEqual(asked.sort(), ['A 2.2.0.192.first.example', 'A 2.2.0.192.second.example', 'TXT 2.2.0.192.first.example']);
  assert.equal(await lists.listing('192.0.2.3'), undefined);
});
