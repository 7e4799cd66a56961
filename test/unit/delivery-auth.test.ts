/** DKIM signing verified by mailauth, and the inbound SPF/DKIM/DMARC checks, all on a stub resolver. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import { DkimSigner, dkimRecord, ensureDkimKey, fromDomain } from '../../src/delivery/dkim.ts';
import { checkInbound, DnsCache } from '../../src/delivery/inbound-checks.ts';
import { parseConfig } from '../../src/config/load.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const MESSAGE = Buffer.from('From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: signed\r\nDate: Sun, 22 Nov 2026 05:01:02 +0000\r\n\r\nhello\r\n');

function resolverFor(records: Record<string, string[]>, a: Record<string, string[]> = {}) {
  const queries: string[] = [];
  const fn = async (name: string, type: string): Promise<any> => {
    queries.push(`${type} ${name}`);
    if (type === 'TXT' && records[name]) return records[name]!.map((r) => [r]);
    if ((type === 'A' || type === 'AAAA') && a[name]) return type === 'A' ? a[name] : [];
    throw Object.assign(new Error(`no ${type} ${name}`), { code: 'ENOTFOUND' });
  };
  return Object.assign(fn, { queries });
}

/** A resolver whose answers wait until `open()` is called: the checks stay in the thread meanwhile. */
function held(records: Record<string, string[]>) {
  const gate = Promise.withResolvers<void>();
  /** The questions asked so far, answered or not. */
  const asked: string[] = [];
  const resolver = async (name: string, type: string): Promise<any> => {
    asked.push(`${type} ${name}`);
    await gate.promise;
    return resolverFor(records)(name, type);
  };
  return { resolver, asked, open: () => gate.resolve() };
}

describe('DKIM signing', () => {
  for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
    it(`signs mail from a local domain (${algorithm}) and the signature verifies`, async () => {
      const dataDir = tempDir('mailnest-dkim-');
      const settings = { dataDir, selector: 'sel1', algorithm };
      const signer = new DkimSigner(settings, ['example.test']);
      const domain = signer.signingDomain(MESSAGE, 'alice@example.test');
      assert.equal(domain, 'example.test');
      const sig = await signer.sign(domain!, MESSAGE);
      assert.match(sig, /^DKIM-Signature: v=1; a=/);
      const key = ensureDkimKey(settings, 'example.test');
      assert.equal(ensureDkimKey(settings, 'example.test'), key, 'the key is made once');
      assert.equal(fs.statSync(fs.readdirSync(path.join(dataDir, 'dkim')).map((f) => path.join(dataDir, 'dkim', f))[0]!).mode & 0o777, 0o600);
      const resolver = resolverFor({ 'sel1._domainkey.example.test': [dkimRecord(key)] });
      const signed = Buffer.concat([Buffer.from(sig), MESSAGE]);
      const ok = await dkimVerify(signed, { resolver });
      assert.equal(ok.results[0]?.status.result, 'pass');
      const tampered = Buffer.from(signed.toString().replace('hello', 'HELLO'));
      const bad = await dkimVerify(tampered, { resolver });
      assert.notEqual(bad.results[0]?.status.result, 'pass', 'a changed body does not verify');
    });
  }

  it('a key file replaced while the signer runs (made anew by `mailnest dns`) is the one it signs with', async () => {
    const dataDir = tempDir('mailnest-dkim-');
    const settings = { dataDir, selector: 'sel1', algorithm: 'rsa-sha256' as const };
    const signer = new DkimSigner(settings, ['example.test']);
    const verifies = async (record: string) => {
      const signed = Buffer.concat([Buffer.from(await signer.sign('example.test', MESSAGE)), MESSAGE]);
      return (await dkimVerify(signed, { resolver: resolverFor({ 'sel1._domainkey.example.test': [record] }) })).results[0]?.status.result;
    };
    const old = dkimRecord(ensureDkimKey(settings, 'example.test'));
    assert.equal(await verifies(old), 'pass');
    fs.rmSync(path.join(dataDir, 'dkim'), { recursive: true });
    const fresh = dkimRecord(ensureDkimKey(settings, 'example.test'));
    assert.notEqual(fresh, old);
    assert.equal(await verifies(fresh), 'pass');
    // A file caught half written (cp over it) is no key: the one in use stays.
    const file = path.join(dataDir, 'dkim', fs.readdirSync(path.join(dataDir, 'dkim'))[0]!);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 100));
    assert.equal(await verifies(fresh), 'pass');
    signer.close();
  });

  it('picks the From domain when local, else the envelope domain, else none', () => {
    const signer = new DkimSigner({ dataDir: os.tmpdir(), selector: 's', algorithm: 'rsa-sha256' }, ['example.test', 'other.test']);
    assert.equal(fromDomain(Buffer.from('Subject: x\r\nFrom: "A, B" <a@Other.TEST>\r\n\r\n')), 'other.test');
    assert.equal(signer.signingDomain(Buffer.from('From: x@remote.test\r\n\r\n'), 'bounce@example.test'), 'example.test');
    assert.equal(signer.signingDomain(Buffer.from('From: x@remote.test\r\n\r\n'), 'y@remote.test'), undefined);
    // Without a From field there is nothing DKIM could sign (RFC 6376 §5.4): it goes unsigned.
    assert.equal(signer.signingDomain(Buffer.from('Subject: no from\r\nX-From: a@example.test\r\n\r\n'), 'a@example.test'), undefined);
    // Only the beginning of a header too long to read whole: its From may lie past it.
    assert.equal(signer.signingDomain(Buffer.from('X-Pad: p\r\n'), 'a@example.test', true), 'example.test');
    assert.equal(signer.signingDomain(Buffer.from('X-Pad: p\r\n'), 'a@remote.test', true), undefined);
    // White space before the colon is still a From field (RFC 5322 §4.5.3).
    assert.equal(signer.signingDomain(Buffer.from('From : a@example.test\r\n\r\n'), 'a@example.test'), 'example.test');
    // A report from MAILER-DAEMON at the host name, under a local domain, to the null sender.
    assert.equal(signer.signingDomain(Buffer.from('From: Mail Delivery System <MAILER-DAEMON@mail.example.test>\r\n\r\n'), ''), 'example.test');
    assert.equal(signer.signingDomain(Buffer.from('From: x@notexample.test\r\n\r\n'), ''), undefined);
  });
});

describe('inbound checks', () => {
  const dataDir = tempDir('mailnest-checks-');
  const key = ensureDkimKey({ dataDir, selector: 'sel', algorithm: 'rsa-sha256' }, 'sender.test');
  const records = {
    'sender.test': ['v=spf1 ip4:192.0.2.10 -all'],
    'sel._domainkey.sender.test': [dkimRecord(key)],
    '_dmarc.sender.test': ['v=DMARC1; p=reject'],
  };
  const msg = Buffer.from('From: a@sender.test\r\nTo: b@example.test\r\nSubject: in\r\nDate: Sun, 22 Nov 2026 05:01:02 +0000\r\n\r\nhi\r\n');

  it('records SPF, DKIM and DMARC passes in Authentication-Results', async () => {
    const signer = new DkimSigner({ dataDir, selector: 'sel', algorithm: 'rsa-sha256' }, ['sender.test']);
    const signed = Buffer.concat([Buffer.from(await signer.sign('sender.test', msg)), msg]);
    const config = parseConfig({ hostname: 'mx.example.test', checks: { reject_dmarc: true } });
    const r = await checkInbound(config, { clientIp: '192.0.2.10', helo: 'out.sender.test', sender: 'a@sender.test', message: signed }, { resolver: resolverFor(records) });
    assert.match(r.authResults, /^(Received-SPF: [^]*\r\n)?Authentication-Results: mx\.example\.test;/m);
    assert.match(r.authResults, /spf=pass/);
    assert.match(r.authResults, /dkim=pass/);
    assert.match(r.authResults, /dmarc=pass/);
    assert.ok(r.authResults.endsWith('\r\n'));
    assert.equal(r.reject, undefined);
  });

  it('checks the first five DKIM signatures only (RFC 6376 §6.1): each costs a pass over the body; none naming over 100 fields or over 8 KiB long', async () => {
    const huge = `DKIM-Signature: v=1; a=rsa-sha256; d=names.test; s=x;\r\n h=${'from:'.repeat(100)}from; bh=AAAA; b=AAAA\r\nDKIM-Signature: v=1; a=rsa-sha256; d=long.test; s=x; h=from; bh=AAAA;\r\n b=${'A'.repeat(8200)}\r\n`;
    const bogus = huge + Array.from({ length: 8 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=s${i + 1}.test; s=x; l=${i + 1};\r\n h=from; bh=AAAA; b=AAAA\r\n`).join('');
    const config = parseConfig({ hostname: 'mx.example.test' });
    const r = await checkInbound(config, { clientIp: '192.0.2.10', helo: 'out.sender.test', sender: 'a@sender.test', message: Buffer.concat([Buffer.from(bogus), msg]) }, { resolver: resolverFor(records) });
    const domains = [...r.authResults.matchAll(/dkim=\S+ .*header\.i=@(s\d)\.test/g)].map((m) => m[1]);
    assert.deepEqual(domains, ['s1', 's2', 's3', 's4', 's5'], r.authResults);
  });

  it('checks at most four messages of one client in the thread at once, and 32 in all; past them a message is not checked, temperror, and once they end the next is', async () => {
    const { resolver: slow, open } = held(records);
    const config = parseConfig({ hostname: 'mx.example.test', checks: { timeout: '5s' } });
    const from = (clientIp: string) => ({ clientIp, helo: 'out.sender.test', sender: 'a@sender.test', message: msg });
    // They wait in the thread for their DNS answers.
    const first = Array.from({ length: 4 }, () => checkInbound(config, from('192.0.2.10'), { resolver: slow }));
    const busy = /temperror.*the server was checking too many messages at once/s;
    assert.match((await checkInbound(config, from('192.0.2.10'), { resolver: slow })).authResults, busy);
    // Another client's go on, up to 32 in all.
    const others = Array.from({ length: 28 }, (_, i) => checkInbound(config, from(`198.51.100.${i + 1}`), { resolver: slow }));
    assert.match((await checkInbound(config, from('203.0.113.1'), { resolver: slow })).authResults, busy);
    open();
    for (const r of await Promise.all([...first, ...others])) assert.doesNotMatch(r.authResults, busy);
    assert.match((await checkInbound(config, from('192.0.2.10'), { resolver: resolverFor(records) })).authResults, /spf=pass/);
  });

  it('checks at most 64 MiB of messages in the thread at once; past that a message is not checked, temperror', async () => {
    const { resolver: slow, open } = held(records);
    const config = parseConfig({ hostname: 'mx.example.test', checks: { timeout: '10s' } });
    /** A message of 40 MiB, a buffer of its own (handed over to the thread, so made anew each time). */
    const large = () => {
      const b = Buffer.alloc(40 * 1024 * 1024, 'x\r\n');
      msg.copy(b);
      return b;
    };
    const from = (clientIp: string, message = large()) => ({ clientIp, helo: 'out.sender.test', sender: 'a@sender.test', message });
    const busy = /temperror.*the server was checking too many messages at once/s;
    const first = checkInbound(config, from('192.0.2.10'), { resolver: slow });
    // Another client, within every other bound: 80 MiB would be in the thread.
    assert.match((await checkInbound(config, from('198.51.100.1'), { resolver: slow })).authResults, busy);
    // A small one still goes in beside the first.
    const small = checkInbound(config, from('198.51.100.2', msg), { resolver: slow });
    open();
    assert.doesNotMatch((await first).authResults, busy);
    assert.doesNotMatch((await small).authResults, busy);
    assert.doesNotMatch((await checkInbound(config, from('198.51.100.1'), { resolver: resolverFor(records) })).authResults, busy);
  });

  it('checks at most two messages over 1 MiB at once, in their own thread: the next waits its turn, small ones go on meanwhile', async () => {
    const { resolver: slow, asked, open } = held({ ...records, 'other.test': ['v=spf1 -all'], 'third.test': ['v=spf1 -all'] });
    const config = parseConfig({ hostname: 'mx.example.test', checks: { timeout: '10s' } });
    const large = () => {
      const b = Buffer.alloc(2 * 1024 * 1024, 'x\r\n');
      msg.copy(b);
      return b;
    };
    const from = (clientIp: string, sender: string, message: Buffer) => ({ clientIp, helo: 'out.sender.test', sender, message });
    const until = async (what: string) => {
      for (let i = 0; !asked.includes(what); i++) {
        if (i > 500) throw new Error(`never asked: ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    // Two large ones, of two clients, wait in the thread for their DNS answers.
    const first = [checkInbound(config, from('192.0.2.10', 'a@sender.test', large()), { resolver: slow }), checkInbound(config, from('192.0.2.11', 'a@sender.test', large()), { resolver: slow })];
    const third = checkInbound(config, from('198.51.100.1', 'b@other.test', large()), { resolver: slow });
    const small = checkInbound(config, from('198.51.100.2', 'c@third.test', msg), { resolver: slow });
    await until('TXT third.test');
    assert.ok(!asked.includes('TXT other.test'), 'the third large message went into the thread beside two');
    open();
    const busy = /temperror/;
    for (const r of await Promise.all([...first, third, small])) assert.doesNotMatch(r.authResults, busy);
    assert.ok(asked.includes('TXT other.test'));
  });

  it('a large message whose turn comes after its checks\' time is not checked at all', async () => {
    const { resolver: slow, asked, open } = held({ ...records, 'other.test': ['v=spf1 -all'] });
    const patient = parseConfig({ hostname: 'mx.example.test', checks: { timeout: '10s' } });
    const hasty = parseConfig({ hostname: 'mx.example.test', checks: { timeout: '300ms' } });
    const large = () => {
      const b = Buffer.alloc(2 * 1024 * 1024, 'x\r\n');
      msg.copy(b);
      return b;
    };
    const from = (clientIp: string, sender: string) => ({ clientIp, helo: 'out.sender.test', sender, message: large() });
    const first = [checkInbound(patient, from('192.0.2.10', 'a@sender.test'), { resolver: slow }), checkInbound(patient, from('192.0.2.11', 'a@sender.test'), { resolver: slow })];
    const late = await checkInbound(hasty, from('198.51.100.1', 'b@other.test'), { resolver: slow });
    assert.match(late.authResults, /temperror.*the checks took too long/s);
    open();
    await Promise.all(first);
    // Its place, had it kept one, would have come now: it is gone, and nothing of it was asked.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!asked.includes('TXT other.test'), asked.join(' '));
  });

  it('rejects a DMARC p=reject failure only when configured to', async () => {
    const input = { clientIp: '198.51.100.1', helo: 'forger.test', sender: 'a@sender.test', message: msg };
    const on = await checkInbound(parseConfig({ hostname: 'mx.example.test', checks: { reject_dmarc: true } }), input, { resolver: resolverFor(records) });
    assert.match(on.authResults, /dmarc=fail/);
    assert.match(on.reject ?? '', /^message refused: it fails DMARC/);
    const off = await checkInbound(parseConfig({ hostname: 'mx.example.test' }), input, { resolver: resolverFor(records) });
    assert.match(off.authResults, /dmarc=fail/);
    assert.equal(off.reject, undefined);
  });

  it('does nothing when switched off', async () => {
    const resolver = resolverFor(records);
    const r = await checkInbound(parseConfig({ checks: { enabled: false } }), { clientIp: '192.0.2.10', sender: 'a@sender.test', message: msg }, { resolver });
    assert.deepEqual(r, { authResults: '' });
    assert.deepEqual(resolver.queries, []);
  });

  it('reads temperror instead of waiting when DNS hangs', async () => {
    const hang = async () => new Promise<never>(() => undefined);
    const config = parseConfig({ hostname: 'mx.example.test', checks: { dns_timeout: '50ms', timeout: '300ms' } });
    const r = await checkInbound(config, { clientIp: '192.0.2.10', sender: 'a@sender.test', message: msg }, { resolver: hang });
    assert.match(r.authResults, /temperror/);
  });

  it('caches answers and "no such name", not failures', async () => {
    let calls = 0;
    const inner = async (name: string) => {
      calls++;
      if (name === 'fail.test') throw Object.assign(new Error('x'), { code: 'ESERVFAIL' });
      if (name === 'none.test') throw Object.assign(new Error('x'), { code: 'ENOTFOUND' });
      return [['v=spf1 -all']];
    };
    const cache = new DnsCache(inner, 1000);
    await cache.resolve('a.test', 'TXT');
    await cache.resolve('A.test', 'TXT');
    assert.equal(calls, 1);
    await assert.rejects(cache.resolve('none.test', 'TXT'));
    await assert.rejects(cache.resolve('none.test', 'TXT'));
    assert.equal(calls, 2);
    await assert.rejects(cache.resolve('fail.test', 'TXT'));
    await assert.rejects(cache.resolve('fail.test', 'TXT'));
    assert.equal(calls, 4);
  });

  it('gives one client 64 lookups under way at most, another client its own', async () => {
    let answer = () => {};
    const answered = new Promise<void>((resolve) => { answer = resolve; });
    const cache = new DnsCache(async () => { await answered; return [['v=spf1 -all']]; }, 5000);
    const mine = cache.resolverFor('2001:db8:1:2::1');
    const pending = Array.from({ length: 64 }, (_, i) => mine(`d${i}.test`, 'TXT'));
    await assert.rejects(cache.resolverFor('2001:db8:1:2::99')('d64.test', 'TXT'), (e: NodeJS.ErrnoException) => e.code === 'EBUSY');
    const other = cache.resolverFor('192.0.2.1')('d65.test', 'TXT');
    answer();
    await Promise.all([...pending, other]);
    await mine('d66.test', 'TXT');
  });

  it('has at most 256 queries under way, those it gave up on counted until they end; past them a lookup fails at once', async () => {
    let answer = () => {};
    const answered = new Promise<void>((resolve) => { answer = resolve; });
    let sent = 0;
    const cache = new DnsCache(async () => { sent++; await answered; throw Object.assign(new Error('x'), { code: 'ESERVFAIL' }); }, 50);
    const first = Array.from({ length: 256 }, (_, i) => cache.resolve(`d${i}.test`, 'TXT').catch((e: NodeJS.ErrnoException) => e.code));
    // Each gives up after 50 ms, and its query still runs.
    assert.deepEqual(new Set(await Promise.all(first)), new Set(['ETIMEOUT']));
    await assert.rejects(cache.resolve('one-more.test', 'TXT'), (e: NodeJS.ErrnoException) => e.code === 'EBUSY');
    assert.equal(sent, 256);
    answer();
    await answered;
    await new Promise((r) => setImmediate(r));
    await assert.rejects(cache.resolve('one-more.test', 'TXT'), (e: NodeJS.ErrnoException) => e.code === 'ESERVFAIL');
  });
});

describe('inbound checks a sender cannot get past with what it controls', () => {
  const dataDir = tempDir('mailnest-checks-');
  const key = ensureDkimKey({ dataDir, selector: 'sel', algorithm: 'rsa-sha256' }, 'victim.test');
  const records = {
    '_dmarc.victim.test': ['v=DMARC1; p=reject'],
    'helper.test': ['v=spf1 ip4:198.51.100.1 -all'],
    'sel._domainkey.victim.test': [dkimRecord(key)],
  };
  const config = parseConfig({ hostname: 'mx.example.test', checks: { reject_dmarc: true, dns_timeout: '200ms', timeout: '500ms' } });
  const from = (field: string) => Buffer.from(`${field}\r\nTo: b@example.test\r\nSubject: pay\r\nDate: Sun, 22 Nov 2026 05:01:02 +0000\r\n\r\nnow\r\n`);
  const input = (message: Buffer) => ({ clientIp: '198.51.100.1', helo: 'mail.helper.test', sender: 'x@helper.test', message });

  it('an author whose DMARC policy cannot be looked up for now (a DNS failure, or no place left for the query) is a retry (451), not a pass', async () => {
    const base = resolverFor(records);
    const failing = Object.assign(async (name: string, type: string) => {
      if (name === '_dmarc.victim.test') throw Object.assign(new Error('x'), { code: 'ESERVFAIL' });
      return base(name, type);
    }, { queries: base.queries });
    const r = await checkInbound(config, input(from('From: ceo@victim.test')), { resolver: failing });
    assert.equal(r.reject, undefined);
    assert.equal(r.defer, 'the DMARC policy of victim.test could not be looked up for now; try again later');
    // Mail that passes SPF or DKIM for its From domain itself passes DMARC whatever the policy
    // says (some DNS hosts fail on names with an underscore): taken, not deferred for ever.
    const { dkimSign } = await import('mailauth');
    const msg = from('From: ceo@victim.test');
    const signed = await dkimSign(msg, { signatureData: [{ signingDomain: 'victim.test', selector: 'sel', privateKey: key, canonicalization: 'relaxed/relaxed' }] } as never);
    const dkim = await checkInbound(config, input(Buffer.concat([Buffer.from(signed.signatures), msg])), { resolver: failing });
    assert.deepEqual([dkim.reject, dkim.defer], [undefined, undefined], dkim.authResults);
    const spfFailing = Object.assign(async (name: string, type: string) => {
      if (name === '_dmarc.helper.test') throw Object.assign(new Error('x'), { code: 'ESERVFAIL' });
      return base(name, type);
    }, { queries: base.queries });
    const spf = await checkInbound(config, input(from('From: x@helper.test')), { resolver: spfFailing });
    assert.deepEqual([spf.reject, spf.defer], [undefined, undefined], spf.authResults);
    // Not a signature under whose l= text was added: that text is not the author's.
    const part = { signingDomain: 'victim.test', selector: 'sel', privateKey: key, canonicalization: 'relaxed/relaxed', maxBodyLength: Buffer.byteLength('now\r\n') };
    const partly = await dkimSign(msg, { ...part, signatureData: [part] } as never);
    const added = await checkInbound(config, input(Buffer.concat([Buffer.from(partly.signatures), msg, Buffer.from('pay to account 666\r\n')])), { resolver: failing });
    assert.match(added.authResults, /dkim=pass/);
    assert.equal(added.defer, 'the DMARC policy of victim.test could not be looked up for now; try again later');
  });

  it('From fields over 16 KiB are refused unread', async () => {
    const long = `From: ${Array.from({ length: 1200 }, (_, i) => `a${i}@victim.test`).join(',\r\n ')}`;
    const r = await checkInbound(config, input(from(long)), { resolver: resolverFor(records) });
    assert.equal(r.reject, 'message refused: its From fields are over 16384 octets, too long for their authors\' DMARC policies to be checked');
  });

  it('a From naming more than ten domains is refused, with no lookup of their policies', async () => {
    const resolver = resolverFor(records);
    const many = Array.from({ length: 11 }, (_, i) => `a@d${i}.test`).join(', ');
    const r = await checkInbound(config, input(from(`From: ${many}`)), { resolver });
    assert.equal(r.reject, 'message refused: its From field names 11 domains, more than the 10 whose DMARC policies are checked (RFC 7489 section 6.6.1)');
    assert.deepEqual(resolver.queries.filter((q) => q.includes('_dmarc')), []);
    const ten = Array.from({ length: 10 }, (_, i) => `a@d${i}.test`).join(', ');
    assert.doesNotMatch((await checkInbound(config, input(from(`From: ${ten}`)), { resolver: resolverFor(records) })).reject ?? '', /more than the 10/);
  });

  it('an rsa-sha1 signature does not pass (RFC 8301 §3.1), so it does not satisfy DMARC', async () => {
    const msg = from('From: ceo@victim.test');
    const { dkimSign } = await import('mailauth');
    const signed = await dkimSign(msg, { signatureData: [{ signingDomain: 'victim.test', selector: 'sel', privateKey: key, algorithm: 'rsa-sha1', canonicalization: 'relaxed/relaxed' }] } as never);
    const r = await checkInbound(config, input(Buffer.concat([Buffer.from(signed.signatures), msg])), { resolver: resolverFor(records) });
    assert.doesNotMatch(r.authResults, /dkim=pass/);
    assert.match(r.reject ?? '', /victim\.test asks for rejection/);
  });

  it('an author domain in obsolete syntax (white space or a comment around its dots, RFC 5322 §4.4) is the domain readers show, held to its policy', async () => {
    const helperSpf = { ...records, '_dmarc.helper.test': ['v=DMARC1; p=none'] };
    for (const field of ['From: Service <ceo@victim .test>', 'From: ceo@victim. test', 'From: ceo@victim(c).test', 'From: ceo@victim\r\n .test']) {
      const r = await checkInbound(config, input(from(field)), { resolver: resolverFor(helperSpf) });
      assert.match(r.reject ?? '', /^message refused: its From field names victim\.test, for which it fails DMARC/, field);
    }
  });

  it('several authors, in one From field or several, are each held to their domain\'s policy (RFC 7489 §6.6.1)', async () => {
    // Two fields, two addresses, an address without a domain beside it, one address naming two.
    for (const field of ['From: ceo@victim.test\r\nFrom: x@helper.test', 'From: ceo@victim.test, x@helper.test', 'From: ceo@victim.test, undisclosed@', 'From: ceo@victim.test@helper.test']) {
      const r = await checkInbound(config, input(from(field)), { resolver: resolverFor(records) });
      assert.match(r.reject ?? '', /^message refused: its From field names victim\.test, for which it fails DMARC/, field);
    }
    // the same authors, each passing: nothing refused
    const passing = await checkInbound(config, input(from('From: y@helper.test, x@helper.test')), { resolver: resolverFor(records) });
    assert.equal(passing.reject, undefined);
  });

  it('several authors, one of whose policies is not known in time: a retry (451), not a pass', async () => {
    const base = resolverFor(records);
    const resolver = Object.assign(async (name: string, type: string) => (name.endsWith('slow.test') ? new Promise<never>(() => undefined) : base(name, type)), { queries: base.queries });
    // The checks' timeout runs out before a DNS query's does.
    const patient = parseConfig({ hostname: 'mx.example.test', checks: { reject_dmarc: true, dns_timeout: '5s', timeout: '300ms' } });
    const r = await checkInbound(patient, input(from('From: ceo@victim.test, a@slow.test')), { resolver });
    assert.match(r.defer ?? '', /^the DMARC checks of this message's authors did not finish/);
    // With the query's own timeout the shorter, the slow domain is a temperror and the victim's
    // policy decides.
    const refused = await checkInbound(config, input(from('From: ceo@victim.test, a@slow.test')), { resolver });
    assert.match(refused.reject ?? '', /names victim\.test, for which it fails DMARC/);
  });

  it('signatures whose keys never arrive make a p=reject spoof wait for a retry (451), not pass unchecked', async () => {
    const base = resolverFor(records);
    // The sender's own DNS for its keys never answers.
    const resolver = Object.assign(async (name: string, type: string) => (name.endsWith('._domainkey.attacker.test') ? new Promise<never>(() => undefined) : base(name, type)), { queries: base.queries });
    // The body hash is right, so that each signature's key is looked up (relaxed: "now\r\n").
    const bh = crypto.createHash('sha256').update('now\r\n').digest('base64');
    const sigs = Array.from({ length: 8 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=attacker.test; s=s${i}; h=from:to:subject; bh=${bh}; b=AAAA\r\n`).join('');
    const msg = Buffer.concat([Buffer.from(sigs), from('From: ceo@victim.test')]);
    const r = await checkInbound(config, input(msg), { resolver });
    assert.match(r.authResults, /temperror/);
    assert.equal(r.reject, undefined);
    assert.match(r.defer ?? '', /did not finish in time, and victim\.test asks for rejection/);
    // Without reject_dmarc the message goes in, as every message whose checks time out does.
    const lenient = parseConfig({ hostname: 'mx.example.test', checks: { dns_timeout: '200ms', timeout: '500ms' } });
    const accepted = await checkInbound(lenient, input(msg), { resolver });
    assert.equal(accepted.defer, undefined);
    // A domain without p=reject is not held up either.
    const other = await checkInbound(config, input(Buffer.concat([Buffer.from(sigs), from('From: ceo@helper.test')])), { resolver });
    assert.equal(other.defer, undefined);
    // Authors of the sender's own, whose policies never arrive, ahead of the victim: deferred
    // all the same.
    const slow = Object.assign(async (name: string, type: string) => (name.endsWith('attacker.test') ? new Promise<never>(() => undefined) : base(name, type)), { queries: base.queries });
    const crowd = await checkInbound(config, input(Buffer.concat([Buffer.from(sigs), from('From: a@a1.attacker.test, a@a2.attacker.test, a@a3.attacker.test, ceo@victim.test')])), { resolver: slow });
    assert.match(crowd.defer ?? '', /did not finish in time/);
  });
});
