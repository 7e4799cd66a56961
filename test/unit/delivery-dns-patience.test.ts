import { test } from 'node:test';
import assert from 'node:assert/strict';
import { patientResolver, withinTime } from '../../src/delivery/dns-patience.ts';
import { systemResolver } from '../../src/delivery/mx.ts';
import { startDnsServer } from '../helpers/dns-server.ts';

test('a lookup has the whole time it is given, also from a resolver whose server has answered fast until then', async (t) => {
  // A caching resolver: every name at once, but a cold one after 1.5 s. Node's resolver, told to
  // wait 3 s, shortens its wait to about 1 s once it has seen fast answers: the slow name is
  // asked again within the 3 s, and answered.
  const names = ['cold-a.test', 'cold-mx.test', 'cold-txt.test'];
  const dns = await startDnsServer({
    A: { 'warm.test': ['192.0.2.1'], 'cold-a.test': ['192.0.2.2'] },
    MX: { 'cold-mx.test': [{ exchange: 'mx.cold-mx.test', priority: 10 }] },
    TXT: { 'cold-txt.test': ['v=spf1 -all'] },
    slow: Object.fromEntries(names.map((n) => [n, 1500])),
  });
  t.after(() => dns.close());
  const checks = patientResolver(3000, [dns.address]);
  const relay = systemResolver(3000, [dns.address]);
  for (let i = 0; i < 60; i++) {
    await checks('warm.test', 'A');
    await relay.resolve4('warm.test');
  }
  assert.deepEqual(await relay.resolve4('cold-a.test'), ['192.0.2.2']);
  assert.deepEqual(await relay.resolveMx('cold-mx.test'), [{ exchange: 'mx.cold-mx.test', priority: 10 }]);
  assert.deepEqual(await checks('cold-txt.test', 'TXT'), [['v=spf1 -all']]);
  // A name that is never answered still fails, once its time is up.
  const silent = await startDnsServer({ silent: ['gone.test'] });
  t.after(() => silent.close());
  await assert.rejects(patientResolver(1200, [silent.address])('gone.test', 'A'), { code: 'ETIMEOUT' });
});

test('a query asked again gets only what is left of the time, not all of it again', async () => {
  // The first answer is an early timeout (as c-ares gives once it has shortened its wait); the
  // second never comes. The lookup still ends, as a timeout, once its time is up.
  let asked = 0;
  const ask = (): Promise<string> => ++asked === 1 ? Promise.reject(Object.assign(new Error('early'), { code: 'ETIMEOUT' })) : new Promise<string>(() => {});
  await assert.rejects(withinTime(ask, 200), { code: 'ETIMEOUT' });
  assert.equal(asked, 2);
  // An answer within the time is the answer; another error is not asked again.
  assert.equal(await withinTime(() => Promise.resolve('a'), 200), 'a');
  let refused = 0;
  await assert.rejects(withinTime(() => { refused++; return Promise.reject(Object.assign(new Error('no'), { code: 'ENOTFOUND' })); }, 200), { code: 'ENOTFOUND' });
  assert.equal(refused, 1);
});
