/** Failed-login throttling: attempts count from their start, and a success forgives only its own user's failures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle } from '../../src/auth/throttle.ts';

test('attempts under way count: guesses sent at once on many connections get no more than the limit', () => {
  const t = new AuthThrottle(5);
  const started = Array.from({ length: 30 }, () => t.begin('192.0.2.1', 0));
  assert.equal(started.filter(Boolean).length, 5);
  // Each of the five fails; the address is refused, the right password too.
  let last = { delayMs: 0, disconnect: false };
  for (let i = 0; i < 5; i++) last = t.fail('192.0.2.1', 'bob@example.test', 0);
  assert.equal(last.disconnect, true);
  assert.equal(t.begin('192.0.2.1', 1), false);
  assert.equal(t.blocked('192.0.2.1', 1), true);
  // Another address is not touched; after the quiet window, this one is forgiven.
  assert.equal(t.begin('192.0.2.2', 1), true);
  assert.equal(t.begin('192.0.2.1', 15 * 60_000 + 1), true);
});

test('a success forgives the failures for that user only', () => {
  const t = new AuthThrottle(5);
  for (let i = 0; i < 4; i++) {
    assert.equal(t.begin('192.0.2.1', 0), true);
    t.fail('192.0.2.1', 'bob@example.test', 0);
  }
  // One's own account, between guesses at another's, forgives none of them.
  assert.equal(t.begin('192.0.2.1', 0), true);
  t.succeed('192.0.2.1', 'alice@example.test');
  assert.equal(t.begin('192.0.2.1', 0), true);
  assert.equal(t.fail('192.0.2.1', 'bob@example.test', 0).disconnect, true);
  assert.equal(t.blocked('192.0.2.1', 0), true);
  // Bob's own success forgives his.
  const u = new AuthThrottle(5);
  for (let i = 0; i < 4; i++) {
    u.begin('192.0.2.1', 0);
    u.fail('192.0.2.1', 'Bob@example.test', 0);
  }
  u.begin('192.0.2.1', 0);
  u.succeed('192.0.2.1', 'bob@example.test');
  assert.equal(u.begin('192.0.2.1', 0), true);
  assert.deepEqual(u.fail('192.0.2.1', 'bob@example.test', 0), { delayMs: 0, disconnect: false });
});

test('an attempt that ends in an error frees its place', () => {
  const t = new AuthThrottle(2);
  assert.equal(t.begin('192.0.2.1', 0), true);
  assert.equal(t.begin('192.0.2.1', 0), true);
  assert.equal(t.begin('192.0.2.1', 0), false);
  t.abandon('192.0.2.1');
  assert.equal(t.begin('192.0.2.1', 0), true);
});
