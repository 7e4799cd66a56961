/** Failed-login throttling: attempts count from their start, and a success forgives only its own user's failures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle } from '../../src/auth/throttle.ts';
import { clientAddress, clientKey } from '../../src/net/client-key.ts';
import { ConnectionLimits } from '../../src/net/listener.ts';
import { BodyBudget } from '../../src/smtp/body-budget.ts';

const tick = () => new Promise((r) => setImmediate(r));

test('guesses sent at once on many connections: no more are checked than failures are left, the rest wait and are refused', async () => {
  const t = new AuthThrottle(5);
  const verdicts: (boolean | undefined)[] = Array.from({ length: 30 }, () => undefined);
  const started = verdicts.map((_, i) => t.begin('192.0.2.1', 0).then((ok) => { verdicts[i] = ok; }));
  await tick();
  assert.equal(verdicts.filter((v) => v === true).length, 5, 'five checked at once');
  assert.equal(verdicts.filter((v) => v === undefined).length, 25, 'the others wait');
  // The five fail: the address is refused, the right password too.
  let last = { delayMs: 0, disconnect: false };
  for (let i = 0; i < 5; i++) last = t.fail('192.0.2.1', 'bob@example.test', 0);
  assert.equal(last.disconnect, true);
  await Promise.all(started);
  assert.equal(verdicts.filter((v) => v === false).length, 25);
  assert.equal(await t.begin('192.0.2.1', 1), false);
  // Another address is not touched; after the quiet window, this one is forgiven.
  assert.equal(await t.begin('192.0.2.2', 1), true);
  assert.equal(await t.begin('192.0.2.1', 15 * 60_000 + 1), true);
});

test('logins that succeed at once from one address (a client\'s parallel connections) all go through, in turn', async () => {
  const t = new AuthThrottle(5);
  const all = Array.from({ length: 50 }, async () => {
    assert.equal(await t.begin('192.0.2.1', 0), true);
    await tick();
    t.succeed('192.0.2.1', 'alice@example.test');
  });
  await Promise.all(all);
  assert.equal(await t.begin('192.0.2.1', 0), true);
});

test('a success forgives the failures for that user only', async () => {
  const t = new AuthThrottle(5);
  for (let i = 0; i < 4; i++) {
    assert.equal(await t.begin('192.0.2.1', 0), true);
    t.fail('192.0.2.1', 'bob@example.test', 0);
  }
  // One's own account, between guesses at another's, forgives none of them.
  assert.equal(await t.begin('192.0.2.1', 0), true);
  t.succeed('192.0.2.1', 'alice@example.test');
  assert.equal(await t.begin('192.0.2.1', 0), true);
  assert.equal(t.fail('192.0.2.1', 'bob@example.test', 0).disconnect, true);
  assert.equal(await t.begin('192.0.2.1', 0), false);
  // Bob's own success forgives his.
  const u = new AuthThrottle(5);
  for (let i = 0; i < 4; i++) {
    await u.begin('192.0.2.1', 0);
    u.fail('192.0.2.1', 'Bob@example.test', 0);
  }
  await u.begin('192.0.2.1', 0);
  u.succeed('192.0.2.1', 'bob@example.test');
  assert.equal(await u.begin('192.0.2.1', 0), true);
  assert.deepEqual(u.fail('192.0.2.1', 'bob@example.test', 0), { delayMs: 0, disconnect: false });
});

test('an attempt that ends in an error frees its place', async () => {
  const t = new AuthThrottle(1);
  assert.equal(await t.begin('192.0.2.1', 0), true);
  let second: boolean | undefined;
  void t.begin('192.0.2.1', 0).then((ok) => { second = ok; });
  await tick();
  assert.equal(second, undefined, 'waits for the first');
  t.abandon('192.0.2.1');
  await tick();
  assert.equal(second, true);
});

test('failures are forgotten a quiet window after the last failure, however many logins succeed meanwhile', async () => {
  const t = new AuthThrottle(5);
  const MIN = 60_000;
  // A shared address: bob mistypes now and then, alice logs in every ten minutes.
  for (let hour = 0; hour < 6; hour++) {
    assert.equal(await t.begin('192.0.2.1', hour * 60 * MIN), true);
    t.fail('192.0.2.1', 'bob@example.test', hour * 60 * MIN);
    for (let m = 10; m < 60; m += 10) {
      assert.equal(await t.begin('192.0.2.1', (hour * 60 + m) * MIN), true);
      t.succeed('192.0.2.1', 'alice@example.test');
    }
  }
  // Each of bob's failures was forgotten before the next: the next one is a first.
  assert.equal(await t.begin('192.0.2.1', 6 * 60 * MIN), true);
  assert.deepEqual(t.fail('192.0.2.1', 'bob@example.test', 6 * 60 * MIN), { delayMs: 0, disconnect: false });
});

test('an IPv6 client is counted by its /64, for logins, connections and memory alike; IPv4 addresses each on their own', async () => {
  assert.equal(clientKey('2001:db8:1:2::7'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:0db8:0001:0002:ffff:0:0:1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
  assert.equal(clientKey('192.0.2.1'), '192.0.2.1');
  // An IPv4 client on a listener of [::] is that IPv4 address; a dotted tail is two groups.
  assert.equal(clientKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(clientKey('::ffff:c000:201'), '192.0.2.1');
  // As logs and trace fields give it: a mapped address as its IPv4 one, any other as it came.
  assert.deepEqual(['::ffff:192.0.2.1', '192.0.2.1', '2001:db8::7', 'unknown'].map(clientAddress), ['192.0.2.1', '192.0.2.1', '2001:db8::7', 'unknown']);
  assert.equal(clientKey('1:2::3:4:5:1.2.3.4'), '1:2:0:3::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  // Five failures from five addresses of one /64 use up its attempts.
  const t = new AuthThrottle(5);
  for (let i = 1; i <= 5; i++) {
    assert.equal(await t.begin(`2001:db8:1:2::${i}`, 0), true);
    t.fail(`2001:db8:1:2::${i}`, 'alice@example.test', 0);
  }
  assert.equal(await t.begin('2001:db8:1:2:ffff::9', 0), false);
  assert.equal(await t.begin('2001:db8:1:3::1', 0), true);
  const limits = new ConnectionLimits(100, 2);
  assert.equal(limits.acquire('2001:db8:1:2::1', 'strangers'), undefined);
  assert.equal(limits.acquire('2001:db8:1:2::2', 'strangers'), undefined);
  assert.equal(limits.acquire('2001:db8:1:2::3', 'strangers'), 'too many connections from 2001:db8:1:2::3 (2001:db8:1:2::/64)');
  limits.release('2001:db8:1:2::1', 'strangers');
  assert.equal(limits.acquire('2001:db8:1:2::3', 'strangers'), undefined);
  assert.equal(limits.acquire('192.0.2.1', 'strangers'), undefined);
  assert.equal(limits.acquire('192.0.2.2', 'strangers'), undefined);
  assert.equal(limits.acquire('192.0.2.2', 'strangers'), undefined);
  assert.equal(limits.acquire('192.0.2.2', 'strangers'), 'too many connections from 192.0.2.2');
  // The users' pool counts an address apart: its MX connections do not shut it out of its mailbox.
  assert.equal(limits.acquire('192.0.2.2', 'users'), undefined);
  // Strangers take three quarters of the total at most; the last quarter is the users'.
  const pools = new ConnectionLimits(8, 100);
  for (let i = 0; i < 6; i++) assert.equal(pools.acquire(`198.51.100.${i}`, 'strangers'), undefined);
  assert.equal(pools.acquire('198.51.100.9', 'strangers'), 'too many connections');
  assert.equal(pools.acquire('198.51.100.9', 'users'), undefined);
  assert.equal(pools.acquire('198.51.100.10', 'users'), undefined);
  assert.equal(pools.acquire('198.51.100.11', 'users'), 'too many connections');
  pools.release('198.51.100.0', 'strangers');
  assert.equal(pools.acquire('198.51.100.11', 'users'), undefined, 'a slot strangers gave back is anyone\'s');
  // Rounded down for small totals, so the users always have one; a total of one is the MX's.
  for (const [total, strangers] of [[1, 1], [2, 1], [3, 2], [5, 3], [7, 5]] as const) {
    const small = new ConnectionLimits(total, 100);
    let n = 0;
    while (small.acquire(`203.0.113.${n}`, 'strangers') === undefined) n++;
    assert.equal(n, strangers, `max_connections = ${total}`);
  }
  const bodies = new BodyBudget(1000, 500);
  assert.equal(bodies.take('2001:db8:1:2::1', 300), true);
  assert.equal(bodies.take('2001:db8:1:2::2', 300), false);
  assert.equal(bodies.take('2001:db8:1:3::2', 300), true);
});

test('past the addresses it tracks, a flood of new ones each failing makes room a tenth at a time: the earliest go, one with an attempt under way stays', async () => {
  const t = new AuthThrottle(2, 100);
  const fail = async (ip: string, now: number) => {
    assert.equal(await t.begin(ip, now), true);
    return t.fail(ip, 'bob@example.test', now);
  };
  // An address with an attempt under way from the start, and the first to be tracked.
  assert.equal(await t.begin('198.51.100.1', 0), true);
  for (let i = 0; i < 99; i++) {
    await fail(`192.0.2.${i}`, 0);
    await fail(`192.0.2.${i}`, 0);
  }
  // All within the window, none quiet: refused as they were.
  assert.equal(await t.begin('192.0.2.0', 1), false);
  assert.equal(await t.begin('192.0.2.98', 1), false);
  // One more address: the earliest ten without an attempt under way are let go.
  await fail('203.0.113.1', 1);
  for (let i = 0; i < 10; i++) assert.equal(await t.begin(`192.0.2.${i}`, 2), true, `192.0.2.${i} let go`);
  assert.equal(await t.begin('192.0.2.98', 2), false, 'a later one is still refused');
  assert.equal(t.fail('198.51.100.1', 'bob@example.test', 2).disconnect, false, 'the attempt under way keeps its address');
  assert.equal((await fail('198.51.100.1', 3)).disconnect, true);
});

test('the memory of messages arriving is bounded for all clients together as well as for each: past the total, a client under its share is refused too; a lease given back twice gives back once', () => {
  const budget = new BodyBudget(1000, 600);
  const a = budget.lease('192.0.2.1');
  const b = budget.lease('198.51.100.1');
  assert.equal(a.take(600), true);
  assert.equal(a.take(1), false, 'over its own share');
  assert.equal(b.take(400), true);
  assert.equal(b.take(1), false, 'under its share, but over the total');
  assert.equal(budget.inUse, 1000);
  a.release();
  a.release();
  assert.equal(budget.inUse, 400);
  assert.equal(budget.lease('203.0.113.1').take(600), true, 'the room given back is there once');
  assert.equal(budget.inUse, 1000);
  // Sized for a server: a quarter of the total for one address, two of the largest messages at
  // least in all, one for an address.
  const sized = BodyBudget.forServer(25 * 1024 * 1024, 8 * 1024 ** 3, 1 / 4);
  assert.deepEqual([sized.total, sized.perClient], [2 * 1024 ** 3, 512 * 1024 ** 2]);
  const small = BodyBudget.forServer(25 * 1024 * 1024, 64 * 1024 * 1024, 1 / 4);
  assert.deepEqual([small.total, small.perClient], [50 * 1024 * 1024, 25 * 1024 * 1024]);
});
