/** MTA-STS (RFC 8461) on the sending side: the record, the policy, MX patterns, and which policy
 *  holds when records and policy hosts come and go. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MtaSts, mxMatches, parsePolicy, policyIdOf } from '../../src/delivery/mta-sts.ts';
import type { StsPolicy } from '../../src/store/store.ts';

test('the _mta-sts record: exactly one v=STSv1 record, with an id (RFC 8461 §3.1)', () => {
  assert.equal(policyIdOf([['v=STSv1; id=20160831085700Z;']]), '20160831085700Z');
  assert.equal(policyIdOf([['v=STSv1;', ' id=abc ; ext=1']]), 'abc');
  assert.equal(policyIdOf([['v=spf1 -all'], ['v=STSv1; id=1']]), '1');
  // A record that does not begin "v=STSv1;" is set aside, as another kind.
  assert.equal(policyIdOf([['v=STSv1'], ['v=STSv1; id=1']]), '1');
  for (const records of [[], [['v=STSv1; id=1'], ['v=STSv1; id=2']], [['v=STSv1;']], [['v=STSv1; id=no-dashes']], [['v=STSv10; id=1']], [[`v=STSv1; id=${'a'.repeat(33)}`]]]) {
    assert.equal(policyIdOf(records), undefined, JSON.stringify(records));
  }
});

test('the policy: version, mode, max_age, mx (RFC 8461 §3.2)', () => {
  assert.deepEqual(parsePolicy('version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\n'), { mode: 'enforce', mx: ['mail.example.com', '*.example.net'], maxAge: 604800 });
  assert.deepEqual(parsePolicy('version: STSv1\nmode: none\nmax_age: 86400\nextension: x\n'), { mode: 'none', mx: [], maxAge: 86400 });
  // A max_age over a year is a year; mx values that are no pattern are left out, U-labels are
  // compared in A-labels.
  assert.deepEqual(parsePolicy('version: STSv1\nmode: enforce\nmx: *\nmx:\nmx: a b\nmx: mx.bücher.example\nmax_age: 99999999999\n'), { mode: 'enforce', mx: ['mx.xn--bcher-kva.example'], maxAge: 31557600 });
  // A stranger's line of 65,000 spaces is read at once, as any other (a pattern that
  // backtracked took seconds of the event loop over it).
  assert.deepEqual(parsePolicy(`version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 1\nx:x${' '.repeat(65_000)}y\n`), { mode: 'enforce', mx: ['mx.a.example'], maxAge: 1 });
  for (const bad of [
    'mode: enforce\nmx: a.example\nmax_age: 1\n',
    'version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n',
    'version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n',
    'version: STSv1\nmode: enforce\nmax_age: 1\n',
    'version: STSv1\nmode: enforce\nmx: a.example\n',
    'version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n',
    'version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n',
    'version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n',
    '<html>not found</html>',
  ]) assert.equal(parsePolicy(bad), undefined, bad);
});

test('MX patterns: a name, or "*." and the parent of one label (RFC 8461 §4.1)', () => {
  const patterns = ['mail.example.com', '*.example.net'];
  for (const host of ['mail.example.com', 'MAIL.Example.com.', 'mx1.example.net']) assert.equal(mxMatches(patterns, host), true, host);
  assert.equal(mxMatches(['mx.xn--bcher-kva.example'], 'MX.bücher.example'), true);
  for (const host of ['example.net', 'a.b.example.net', 'mail.example.com.evil', 'xmail.example.com', '.example.net']) assert.equal(mxMatches(patterns, host), false, host);
});

/** An MtaSts over a table of TXT records and policies, with a clock and a store of its own. */
function world() {
  const txt = new Map<string, string>();
  const policies = new Map<string, string>();
  const stored = new Map<string, StsPolicy>();
  const fetched: string[] = [];
  let now = 1_000_000;
  const sts = () => new MtaSts({
    txt: async (name) => {
      const r = txt.get(name);
      if (r === undefined) throw Object.assign(new Error('no such name'), { code: 'ENOTFOUND' });
      return [[r]];
    },
    fetch: async (domain) => {
      fetched.push(domain);
      await new Promise((r) => setTimeout(r, 5));
      const p = policies.get(domain);
      if (p === undefined) throw new Error('connection refused');
      return p;
    },
    load: async (domain) => stored.get(domain),
    save: async (p) => { stored.set(p.domain, p); },
    now: () => now,
  });
  return { txt, policies, stored, fetched, sts, tick: (ms: number) => { now += ms; } };
}

const ENFORCE = 'version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 86400\n';

test('a policy is fetched when its record appears or changes, kept for its max_age, and holds while the record or the policy host is gone', async () => {
  const w = world();
  let sts = w.sts();
  assert.equal(await sts.policyFor('a.test'), undefined, 'no record: no policy');
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=1');
  w.policies.set('a.test', ENFORCE);
  w.tick(6 * 60_000);
  // Asked at once from two deliveries: fetched once.
  const [one, two] = await Promise.all([sts.policyFor('a.test'), sts.policyFor('a.test')]);
  assert.equal(one?.mode, 'enforce');
  assert.equal(two, one);
  assert.deepEqual(w.fetched, ['a.test']);
  // A new process (the store kept it); the record and the host gone, as an attacker would have
  // them: the policy holds until its max_age is up.
  w.txt.delete('_mta-sts.a.test');
  w.policies.delete('a.test');
  sts = w.sts();
  assert.deepEqual((await sts.policyFor('a.test'))?.mx, ['mx.a.test']);
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=2');
  w.tick(6 * 60_000);
  assert.deepEqual((await sts.policyFor('a.test'))?.mx, ['mx.a.test'], 'a new id whose policy cannot be fetched: the one kept');
  // The same id, past half its age: fetched again, and kept the longer.
  w.policies.set('a.test', ENFORCE.replace('mx.a.test', 'mx2.a.test'));
  w.tick(12 * 3600_000);
  assert.deepEqual((await sts.policyFor('a.test'))?.mx, ['mx2.a.test']);
  assert.equal(w.stored.get('a.test')?.id, '2');
  // Past its max_age, with no record, there is none.
  w.txt.delete('_mta-sts.a.test');
  w.tick(86_400_000 + 1);
  assert.equal(await w.sts().policyFor('a.test'), undefined);
});

test('a policy of mode none takes the place of one kept, and is none; testing is applied as reported', async () => {
  const w = world();
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=1');
  w.policies.set('a.test', ENFORCE);
  assert.equal((await w.sts().policyFor('a.test'))?.mode, 'enforce');
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=2');
  w.policies.set('a.test', 'version: STSv1\nmode: none\nmax_age: 86400\n');
  assert.equal(await w.sts().policyFor('a.test'), undefined);
  assert.equal(w.stored.get('a.test')?.mode, 'none');
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=3');
  w.policies.set('a.test', ENFORCE.replace('enforce', 'testing'));
  assert.equal((await w.sts().policyFor('a.test'))?.mode, 'testing');
  // A policy that is none of the above is no policy: the one kept stands.
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=4');
  w.policies.set('a.test', '<html>moved</html>');
  assert.equal((await w.sts().policyFor('a.test'))?.mode, 'testing');
});

test('a policy kept that cannot be read is no "no policy": the lookup fails, and is not remembered; a short policy is not used past its end', async () => {
  const w = world();
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=1');
  w.policies.set('a.test', ENFORCE.replace('86400', '60'));
  let broken = false;
  const logged: string[] = [];
  const sts = new MtaSts({
    txt: async () => [['v=STSv1; id=1']],
    fetch: async (d) => w.policies.get(d) ?? Promise.reject(new Error('refused')),
    load: async (d) => { if (broken) throw new Error('database is locked'); return w.stored.get(d); },
    save: async (p) => { w.stored.set(p.domain, p); },
    log: (_f, msg) => logged.push(msg),
    now: () => now,
  });
  let now = 0;
  assert.equal((await sts.policyFor('a.test'))?.maxAge, 60);
  // Past its 60 seconds, within the five minutes a lookup stands: looked up again.
  now += 61_000;
  broken = true;
  await assert.rejects(sts.policyFor('a.test'), /the MTA-STS policy kept for a\.test could not be read: database is locked/);
  broken = false;
  assert.equal((await sts.policyFor('a.test'))?.mode, 'enforce', 'the failure was not remembered');
  // The policy host gone: said, and the policy kept stands.
  now += 31_000;
  assert.equal((await new MtaSts({ ...w, txt: async () => [['v=STSv1; id=2']], fetch: async () => { throw new Error('refused'); }, load: async (d) => w.stored.get(d), save: async () => {}, log: (_f, msg) => logged.push(msg), now: () => now }).policyFor('a.test'))?.mode, 'enforce');
  assert.deepEqual(logged, ['the MTA-STS policy a domain names could not be fetched; its mail goes by the policy kept, if any']);
});

test('a policy of max_age 0 applies to nothing, and is fetched once a minute at most, not for every delivery', async () => {
  const w = world();
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=1');
  w.policies.set('a.test', ENFORCE.replace('86400', '0').replace('mx: mx.a.test', 'mx: mx.a.test\nmx: MX.a.test.'));
  const sts = w.sts();
  for (let i = 0; i < 10; i++) assert.equal(await sts.policyFor('a.test'), undefined);
  assert.deepEqual(w.fetched, ['a.test']);
  assert.deepEqual(w.stored.get('a.test')?.mx, ['mx.a.test'], 'one pattern, written twice');
  w.tick(61_000);
  await sts.policyFor('a.test');
  assert.deepEqual(w.fetched, ['a.test', 'a.test']);
});

test('a record that cannot be looked up while a policy is kept: the policy stands, and it is said; no record at all is not news', async () => {
  const w = world();
  w.txt.set('_mta-sts.a.test', 'v=STSv1; id=1');
  w.policies.set('a.test', ENFORCE);
  assert.equal((await w.sts().policyFor('a.test'))?.mode, 'enforce');
  const logged: string[] = [];
  const withTxt = (txt: (name: string) => Promise<string[][]>) => new MtaSts({ txt, fetch: async () => ENFORCE, load: async (d) => w.stored.get(d), save: async () => {}, log: (_f, msg) => logged.push(msg), now: () => w.stored.get('a.test')!.fetched + 1000 });
  assert.equal((await withTxt(async () => { throw Object.assign(new Error('queryTxt ESERVFAIL'), { code: 'ESERVFAIL' }); }).policyFor('a.test'))?.mode, 'enforce');
  assert.equal((await withTxt(async () => { throw Object.assign(new Error('queryTxt ENOTFOUND'), { code: 'ENOTFOUND' }); }).policyFor('a.test'))?.mode, 'enforce');
  assert.deepEqual(logged, ['the MTA-STS record could not be looked up; the policy kept stands']);
});
