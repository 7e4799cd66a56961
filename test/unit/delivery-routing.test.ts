/** Routing (routes > smarthost > MX), MX ordering and fallback against a stub resolver, the retry schedule. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectError } from '../../src/delivery/smtp-client.ts';
import { orderMx, PermanentDnsError, resolveMxHosts, selfRecognizer, TemporaryDnsError, type DnsResolver, type MxRecord } from '../../src/delivery/mx.ts';
import { Router } from '../../src/delivery/route.ts';
import { afterTemporaryFailure, retryDelay } from '../../src/delivery/retry.ts';
import { parseConfig } from '../../src/config/load.ts';

function dnsError(code: string): Error {
  return Object.assign(new Error(code), { code });
}

/** A resolver answering from tables; anything missing is "no such name". */
function stub(mx: Record<string, MxRecord[] | string>, a: Record<string, string[] | string> = {}, aaaa: Record<string, string[]> = {}): DnsResolver & { queries: string[] } {
  const queries: string[] = [];
  const answer = <T>(table: Record<string, T | string>, name: string, type: string): Promise<T> => {
    queries.push(`${type} ${name}`);
    const v = table[name];
    if (v === undefined) return Promise.reject(dnsError(Object.keys(mx).includes(name) || Object.keys(a).includes(name) ? 'ENODATA' : 'ENOTFOUND'));
    if (typeof v === 'string') return Promise.reject(dnsError(v));
    return Promise.resolve(v);
  };
  return {
    queries,
    resolveMx: (n) => answer(mx, n, 'MX'),
    resolve4: (n) => answer(a, n, 'A'),
    resolve6: (n) => (aaaa[n] ? Promise.resolve(aaaa[n]!) : Promise.reject(dnsError('ENODATA'))),
    resolveTxt: () => Promise.reject(dnsError('ENOTFOUND')),
  };
}

describe('MX resolution (RFC 5321 §5.1, RFC 7505)', () => {
  it('orders by preference and shuffles equal preferences', () => {
    const recs = [{ exchange: 'c', priority: 20 }, { exchange: 'a1', priority: 10 }, { exchange: 'a2', priority: 10 }, { exchange: 'z', priority: 5 }];
    const seen = new Set<string>();
    let seed = 0;
    for (let i = 0; i < 40; i++) {
      const order = orderMx(recs, () => ((seed = (seed * 9301 + 49297) % 233280) / 233280)).map((r) => r.exchange);
      assert.equal(order[0], 'z');
      assert.equal(order[3], 'c');
      assert.deepEqual(order.slice(1, 3).sort(), ['a1', 'a2']);
      seen.add(order.slice(1, 3).join(','));
    }
    assert.equal(seen.size, 2, 'both orders of the equal pair occur');
  });

  it('returns hosts with their addresses, best first', async () => {
    const r = stub({ 'd.test': [{ exchange: 'mx2.d.test', priority: 20 }, { exchange: 'mx1.d.test', priority: 10 }] },
      { 'mx1.d.test': ['192.0.2.1'], 'mx2.d.test': ['192.0.2.2'] }, { 'mx1.d.test': ['2001:db8::1'] });
    const hosts = await resolveMxHosts(r, 'd.test');
    assert.deepEqual(hosts.map((h) => [h.name, h.addresses]), [['mx1.d.test', ['192.0.2.1', '2001:db8::1']], ['mx2.d.test', ['192.0.2.2']]]);
  });

  it('looks up the ten best MX hosts only, and keeps ten addresses of each family of a host (a domain\'s owner could name thousands)', async () => {
    const mx = Array.from({ length: 500 }, (_, i) => ({ exchange: `mx${i}.many.test`, priority: i }));
    const a = Object.fromEntries(mx.map((r) => [r.exchange, Array.from({ length: 4000 }, (_, j) => `10.${(j >> 8) & 255}.${j & 255}.1`)]));
    const r = stub({ 'many.test': mx }, a);
    const hosts = await resolveMxHosts(r, 'many.test');
    assert.deepEqual(hosts.map((h) => h.name), mx.slice(0, 10).map((x) => x.exchange));
    assert.ok(hosts.every((h) => h.addresses.length === 10));
    assert.equal(r.queries.filter((q) => q.startsWith('A ')).length, 10);
  });

  it('skips an MX host without an address and keeps the others', async () => {
    const r = stub({ 'd.test': [{ exchange: 'gone.d.test', priority: 1 }, { exchange: 'mx.d.test', priority: 2 }] }, { 'mx.d.test': ['192.0.2.9'] });
    assert.deepEqual((await resolveMxHosts(r, 'd.test')).map((h) => h.name), ['mx.d.test']);
  });

  it('falls back to the A record of the domain when it has no MX', async () => {
    const r = stub({ 'd.test': [] as MxRecord[] }, { 'd.test': ['192.0.2.7'] });
    assert.deepEqual(await resolveMxHosts(r, 'd.test'), [{ name: 'd.test', preference: 0, addresses: ['192.0.2.7'] }]);
    const r2 = stub({ 'e.test': 'ENODATA' }, { 'e.test': ['192.0.2.8'] });
    assert.deepEqual((await resolveMxHosts(r2, 'e.test'))[0]!.addresses, ['192.0.2.8']);
  });

  it('fails for good on a null MX, a domain that does not exist, or no address at all', async () => {
    await assert.rejects(resolveMxHosts(stub({ 'n.test': [{ exchange: '', priority: 0 }] }), 'n.test'),
      (e: unknown) => e instanceof PermanentDnsError && /^556 5\.1\.10/.test(e.reply));
    await assert.rejects(resolveMxHosts(stub({}), 'nx.test'), (e: unknown) => e instanceof PermanentDnsError && /^550 5\.1\.2/.test(e.reply));
    await assert.rejects(resolveMxHosts(stub({ 'empty.test': [] as MxRecord[] }), 'empty.test'), PermanentDnsError);
  });

  it('an MX record that names an address, not a host, is no host to try', async () => {
    const r = stub({ 'd.test': [{ exchange: '192.0.2.3', priority: 1 }, { exchange: 'mx.d.test', priority: 2 }] }, { 'mx.d.test': ['192.0.2.9'] });
    assert.deepEqual((await resolveMxHosts(r, 'd.test')).map((h) => h.name), ['mx.d.test']);
    await assert.rejects(resolveMxHosts(stub({ 'e.test': [{ exchange: '192.0.2.3', priority: 1 }] }), 'e.test'), TemporaryDnsError);
  });

  it('this server among the MX hosts: it and those no better are left out; as the best, the mail would loop (RFC 5321 §5.1)', async () => {
    const r = stub({ 'backup.test': [{ exchange: 'mx1.test', priority: 10 }, { exchange: 'mail.mine.test', priority: 20 }, { exchange: 'mx3.test', priority: 30 }], 'loop.test': [{ exchange: 'other-name.test', priority: 10 }] },
      { 'mx1.test': ['192.0.2.1'], 'mail.mine.test': ['192.0.2.5'], 'mx3.test': ['192.0.2.3'], 'other-name.test': ['192.0.2.5'] });
    const isSelf = selfRecognizer('MAIL.mine.test.', ['127.0.0.1:2525', '192.0.2.5:25']);
    assert.deepEqual((await resolveMxHosts(r, 'backup.test', Math.random, isSelf)).map((h) => h.name), ['mx1.test']);
    // Known by its address where the smtp listener takes mail on port 25, whatever its name.
    await assert.rejects(resolveMxHosts(r, 'loop.test', Math.random, isSelf),
      (e: unknown) => e instanceof PermanentDnsError && /^550 5\.4\.6 mail for loop\.test loops back to this server \(other-name\.test\)/.test(e.reply));
    // A better host DNS gave no address for this time: the mail waits for it, never bounces.
    const flaky = stub({ 'backup.test': [{ exchange: 'mx1.test', priority: 10 }, { exchange: 'mail.mine.test', priority: 20 }] }, { 'mx1.test': 'ETIMEOUT', 'mail.mine.test': ['192.0.2.5'] });
    await assert.rejects(resolveMxHosts(flaky, 'backup.test', Math.random, isSelf), (e: unknown) => e instanceof TemporaryDnsError && /^451 4\.4\.3 /.test(e.reply));
    const none = stub({ 'backup.test': [{ exchange: 'mx1.test', priority: 10 }, { exchange: 'mail.mine.test', priority: 20 }] }, { 'mail.mine.test': ['192.0.2.5'] });
    await assert.rejects(resolveMxHosts(none, 'backup.test', Math.random, isSelf), (e: unknown) => e instanceof TemporaryDnsError && /^451 4\.4\.4 /.test(e.reply));
    // This server known by its name when DNS gave no address for it: the worse hosts still go.
    const selfUnresolved = stub({ 'backup.test': [{ exchange: 'mx1.test', priority: 10 }, { exchange: 'mail.mine.test', priority: 20 }, { exchange: 'mx3.test', priority: 30 }] }, { 'mx1.test': ['192.0.2.1'], 'mail.mine.test': 'ETIMEOUT', 'mx3.test': ['192.0.2.3'] });
    assert.deepEqual((await resolveMxHosts(selfUnresolved, 'backup.test', Math.random, isSelf)).map((h) => h.name), ['mx1.test']);
    // An address of this machine on another port is another server's.
    assert.equal(selfRecognizer('mx.elsewhere.test', ['192.0.2.5:2525'])({ name: 'other-name.test', preference: 10, addresses: ['192.0.2.5'] }), false);
    // On every address, every address of the machine is this server's.
    assert.equal(selfRecognizer('mx.elsewhere.test', ['0.0.0.0:25'])({ name: 'lo.test', preference: 10, addresses: ['127.0.0.1'] }), true);
  });

  it('fails for now when DNS does not answer', async () => {
    await assert.rejects(resolveMxHosts(stub({ 's.test': 'ESERVFAIL' }), 's.test'), TemporaryDnsError);
    await assert.rejects(resolveMxHosts(stub({ 't.test': [{ exchange: 'mx.t.test', priority: 1 }] }, { 'mx.t.test': 'ETIMEOUT' }), 't.test'), TemporaryDnsError);
  });

  it('takes an address literal as it is, without DNS', async () => {
    const r = stub({});
    assert.deepEqual((await resolveMxHosts(r, '[192.0.2.4]'))[0]!.addresses, ['192.0.2.4']);
    assert.deepEqual(r.queries, []);
  });
});

describe('routing', () => {
  it('prefers a route, then the smarthost, then MX', () => {
    const relay = parseConfig({ relay: { smarthost: 'smtp.provider.test:465', username: 'me', password: 'pw', routes: { 'Routed.test': '127.0.0.1:2626' } } }).relay;
    const router = new Router(relay);
    assert.deepEqual(router.route('x@routed.TEST'), { kind: 'route', key: 'route:127.0.0.1:2626', host: '127.0.0.1', port: 2626 });
    const s = router.route('y@elsewhere.test');
    assert.equal(s.kind, 'smarthost');
    assert.deepEqual(s.kind === 'smarthost' && [s.host, s.port, s.tls, s.auth], ['smtp.provider.test', 465, 'implicit', { user: 'me', pass: 'pw' }]);
    const direct = new Router(parseConfig({}).relay);
    assert.deepEqual(direct.route('z@Example.ORG'), { kind: 'mx', key: 'mx:example.org', domain: 'example.org' });
  });

  it('an internationalised domain routes, and is looked up, in A-labels whichever form the address uses', () => {
    const router = new Router(parseConfig({ relay: { routes: { 'bücher.test': '127.0.0.1:2626' } } }).relay);
    for (const a of ['x@bücher.test', 'x@XN--BCHER-KVA.test']) assert.equal(router.route(a).kind, 'route', a);
    const direct = new Router(parseConfig({}).relay);
    assert.deepEqual(direct.route('z@bücher.example'), { kind: 'mx', key: 'mx:xn--bcher-kva.example', domain: 'xn--bcher-kva.example' });
  });

  it('refuses a route that is not host:port', () => {
    assert.throws(() => parseConfig({ relay: { routes: { 'a.test': 'nowhere' } } }), /host:port/);
  });
});

describe('retry schedule', () => {
  it('walks the list and repeats its last interval', () => {
    const retry = [60_000, 300_000, 900_000];
    assert.deepEqual([1, 2, 3, 4, 9].map((n) => retryDelay(retry, n)), [60_000, 300_000, 900_000, 900_000, 900_000]);
  });

  it('expires once the message is older than max_age', () => {
    const policy = { retry: [1000], maxAge: 10_000 };
    assert.deepEqual(afterTemporaryFailure(policy, 0, 1, 5000), { expired: false, next: 6000 });
    assert.deepEqual(afterTemporaryFailure(policy, 0, 7, 10_000), { expired: true });
  });

  it('tries last at max_age, and at the delay warning\'s time while one is due, so neither waits for a later attempt', () => {
    const policy = { retry: [4000], maxAge: 10_000 };
    assert.deepEqual(afterTemporaryFailure(policy, 0, 2, 8000), { expired: false, next: 10_000 });
    assert.deepEqual(afterTemporaryFailure(policy, 0, 1, 1000, 3000), { expired: false, next: 3000 });
    // Once the warning's time is past (it was sent, or is being), the schedule is the list's.
    assert.deepEqual(afterTemporaryFailure(policy, 0, 1, 3000, 3000), { expired: false, next: 7000 });
  });
});

it('of the failures of a destination\'s hosts, the one said is the last, unless an earlier one says more', () => {
  const refused = (n: number) => new ConnectError(`mx${n}.test[192.0.2.${n}]:25: ESOCKET: connect ECONNREFUSED`);
  const certificate = new ConnectError('mx1.test[192.0.2.1]:25: ETLS: self-signed certificate', false, true);
  const greeting = new ConnectError('421 4.3.2 busy', false, false, 'mx1.test');
  assert.equal(ConnectError.telling(ConnectError.telling(undefined, refused(1)), refused(2)).reply, refused(2).reply);
  assert.equal(ConnectError.telling(ConnectError.telling(undefined, certificate), refused(2)), certificate);
  assert.equal(ConnectError.telling(ConnectError.telling(undefined, greeting), refused(2)), greeting);
  const later = new ConnectError('450 4.7.1 later', false, false, 'mx2.test');
  assert.equal(ConnectError.telling(greeting, later), later);
});
