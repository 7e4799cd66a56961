/** Counts per client: an IPv6 client by its /64, an IPv4-mapped one as its IPv4 address. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientCounts } from '../../src/net/client-counts.ts';

test('a count per client key: the addresses of one /64 share one, a mapped IPv4 address is its IPv4 one, and a count back at zero is forgotten', () => {
  const c = new ClientCounts();
  c.add('2001:db8:1:2::1');
  c.add('2001:db8:1:2:ffff::9', 3);
  assert.equal(c.of('2001:db8:1:2::77'), 4);
  assert.equal(c.of('2001:db8:1:3::1'), 0);
  c.add('::ffff:192.0.2.1');
  assert.equal(c.of('192.0.2.1'), 1);
  c.remove('192.0.2.1');
  c.remove('2001:db8:1:2::1', 4);
  assert.equal(c.of('2001:db8:1:2::1'), 0);
  // Nothing is kept for them: removing more than was added leaves no negative count behind.
  c.remove('198.51.100.1');
  c.add('198.51.100.1');
  assert.equal(c.of('198.51.100.1'), 1);
});
