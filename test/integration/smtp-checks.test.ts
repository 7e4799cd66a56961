/**
 * SPF, DKIM and DMARC on the smtp listener of a real mailnest process, against a DNS server
 * of the test's own on 127.0.0.1 (nothing leaves the machine).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { mailbox } from '../helpers/mailbox.ts';
import { startDnsServer, type Zone } from '../helpers/dns-server.ts';
import { addUser, baseConfig, cli, startMailnest, tempDir, writeConfig } from '../helpers/server.ts';
import { until } from '../helpers/relay.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';

// Asynchronous on purpose: the DNS server lives in this process and must keep answering.
const run = promisify(execFile);

const SEND = `
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
try:
    s.sendmail(sys.argv[2], ['alice@example.test'], 'From: <' + sys.argv[2] + '>\\r\\nTo: alice@example.test\\r\\nSubject: checks\\r\\n\\r\\nbody\\r\\n')
    print('250')
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
`;

/** One message over a raw dialogue: the reply to its end of data. */
async function sendRaw(port: number, sender: string, message: string): Promise<string> {
  const c = await SmtpClient.open(port);
  await c.ehlo();
  const r = await c.transaction(`<${sender}>`, ['<alice@example.test>'], message);
  await c.quit();
  return r.raw;
}

async function withServer(zone: Zone | 'dead', checks: Record<string, unknown>, fn: (send: (from: string) => Promise<string>, inbox: () => Promise<string[]>, port: number) => Promise<void>) {
  const dns = zone === 'dead' ? undefined : await startDnsServer(zone);
  const dir = tempDir();
  // A dead DNS server: a UDP port nobody answers on.
  const servers = dns ? [dns.address] : ['127.0.0.1:9'];
  // The checks' time is the machine's, not the test's subject, unless a test says otherwise:
  // on a busy machine they may take seconds.
  const cfg = writeConfig(dir, baseConfig(dir, { dns_servers: servers, checks: { enabled: true, dns_timeout: '1s', timeout: '15s', ...checks } }));
  addUser(cfg, 'alice@example.test', 'pw');
  const server = await startMailnest(dir, cfg);
  try {
    const send = async (from: string) => (await run('python3', ['-c', SEND, String(server.port('smtp')), from])).stdout.trim();
    const inbox = async () => (await mailbox(path.join(dir, 'data'), 'alice@example.test')).map((m) => m.toString('utf8'));
    await fn(send, inbox, server.port('smtp'));
  } finally {
    await server.stop();
    await dns?.close();
  }
}

test('SPF pass is recorded in Received-SPF and Authentication-Results above our Received header', async () => {
  await withServer({ TXT: { 'remote.test': ['v=spf1 ip4:127.0.0.1 -all'] } }, {}, async (send, inbox) => {
    assert.equal(await send('bob@remote.test'), '250');
    const [msg] = await inbox();
    const headers = msg!.slice(0, msg!.indexOf('\r\n\r\n'));
    assert.match(headers, /^Return-Path: <bob@remote\.test>\r\nReceived-SPF: pass [\s\S]*\r\nAuthentication-Results: mx\.example\.test;[\s\S]*spf=pass[\s\S]*\r\nReceived: from /);
  });
});

test('DMARC p=reject: refused with 550 5.7.1 when reject_dmarc is on, recorded as fail otherwise', async () => {
  const zone: Zone = { TXT: { 'evil.test': ['v=spf1 -all'], '_dmarc.evil.test': ['v=DMARC1; p=reject'] } };
  await withServer(zone, { reject_dmarc: true }, async (send, inbox) => {
    assert.match(await send('ceo@evil.test'), /^550 5\.7\.1 message refused: it fails DMARC/);
    assert.equal((await inbox()).length, 0);
  });
  await withServer(zone, {}, async (send, inbox) => {
    assert.equal(await send('ceo@evil.test'), '250');
    const [msg] = await inbox();
    assert.match(msg!, /spf=fail/);
    assert.match(msg!, /dmarc=fail/);
  });
});

test('a DNS server that never answers costs a bounded wait, never the message', async () => {
  await withServer('dead', { timeout: '3s' }, async (send, inbox) => {
    assert.equal(await send('bob@remote.test'), '250');
    const [msg] = await inbox();
    assert.match(msg!, /Authentication-Results: mx\.example\.test;/);
  });
});

test('Authentication-Results that claim our host name are removed (RFC 8601 §5); others stay', async () => {
  await withServer({ TXT: { 'remote.test': ['v=spf1 ip4:127.0.0.1 -all'] } }, {}, async (_send, inbox, port) => {
    const forged = [
      'Authentication-Results: mx.example.test; dkim=pass header.d=bank.test; dmarc=pass header.from=bank.test',
      'Authentication-Results: MX.EXAMPLE.TEST 1; spf=pass',
      'Authentication-Results: (looks fine) mx.example.test (really);\r\n dmarc=pass',
      'Authentication-Results: "mx.example.test"; dkim=pass',
      'Authentication-Results: mx.example.test.; dkim=pass',
      'Authentication-Results: "mx\\.example.test"; dkim=pass',
    ];
    const theirs = 'Authentication-Results: mx.remote.test; spf=pass smtp.mailfrom=remote.test';
    const message = [...forged, theirs, 'From: <bob@remote.test>', 'To: alice@example.test', 'Subject: results', '', 'body'].join('\r\n');
    assert.match(await sendRaw(port, 'bob@remote.test', message), /^250 /);
    const [msg] = await inbox();
    const headers = msg!.slice(0, msg!.indexOf('\r\n\r\n') + 2);
    // ours (the one mailnest wrote), and theirs
    assert.equal(headers.match(/^Authentication-Results: mx\.example\.test;/gim)?.length, 1);
    assert.doesNotMatch(headers, /bank\.test|MX\.EXAMPLE\.TEST|looks fine|"mx|test\.;/);
    assert.ok(headers.includes(`${theirs}\r\nFrom: <bob@remote.test>\r\n`), 'the rest of the header as received');
    assert.ok(msg!.endsWith('\r\n\r\nbody\r\n'));
  });
});

test('a p=reject spoof whose checks a sender\'s slow DNS runs out of time is deferred with 451, not accepted unchecked', async () => {
  const zone: Zone = { TXT: { '_dmarc.victim.test': ['v=DMARC1; p=reject'] }, silent: ['attacker.test'] };
  const bh = crypto.createHash('sha256').update('now\r\n').digest('base64');
  const sigs = Array.from({ length: 4 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=attacker.test; s=s${i}; h=from; bh=${bh}; b=AAAA`);
  const message = [...sigs, 'From: <ceo@victim.test>', 'Subject: pay', '', 'now'].join('\r\n');
  // The silent domain's lookups outlast the checks' time; the policy's lookup, answered at once,
  // has all of that time to finish, even on a machine busy enough to take seconds for it.
  await withServer(zone, { reject_dmarc: true, dns_timeout: '10s', timeout: '6s' }, async (_send, inbox, port) => {
    assert.match(await sendRaw(port, 'x@attacker.test', message), /^451 4\.7\.0 the checks of this message did not finish in time, and victim\.test asks for rejection/);
    assert.equal((await inbox()).length, 0);
  });
});

test('the From that DMARC judges is the one stored: a header line that is no field ends the header for both', async () => {
  // A verifier that took "<me@attacker.test>" for the From field's continuation would judge
  // attacker.test, which passes; the stored message's header ends before that line, so its
  // reader sees ceo@victim.test, whose policy is reject.
  const zone: Zone = { TXT: { 'attacker.test': ['v=spf1 ip4:127.0.0.1 -all'], '_dmarc.attacker.test': ['v=DMARC1; p=none'], '_dmarc.victim.test': ['v=DMARC1; p=reject'] } };
  const message = ['To: alice@example.test', 'Subject: invoice', 'From: ceo@victim.test', '<me@attacker.test>', '', 'please pay'].join('\r\n');
  await withServer(zone, { reject_dmarc: true }, async (_send, inbox, port) => {
    assert.match(await sendRaw(port, 'me@attacker.test', message), /^550 5\.7\.1 message refused: it fails DMARC/);
    assert.equal((await inbox()).length, 0);
  });
});

test('a p=reject failure that an SPF lookup failing for now may have caused is deferred with 451, not refused for good', async () => {
  const zone: Zone = { TXT: { '_dmarc.flaky.test': ['v=DMARC1; p=reject'] }, failing: ['flaky.test'] };
  await withServer(zone, { reject_dmarc: true }, async (send, inbox) => {
    assert.match(await send('bob@flaky.test'), /^451 4\.7\.0 it fails DMARC and flaky\.test asks for rejection \(p=reject\); a DNS lookup of its SPF or DKIM check failed for now, try again later/);
    assert.equal((await inbox()).length, 0);
  });
});

test('a p=reject record that asks for its policy on fewer than all messages (pct, historic in RFC 9989) is taken as t=y: delivered, with the results', async () => {
  const zone: Zone = { TXT: { 'trying.test': ['v=spf1 -all'], '_dmarc.trying.test': ['v=DMARC1; p=reject; pct=0'], 'half.test': ['v=spf1 -all'], '_dmarc.half.test': ['v=DMARC1; p=reject; pct=50'], 'all.test': ['v=spf1 -all'], '_dmarc.all.test': ['v=DMARC1; p=reject; pct=100'] } };
  await withServer(zone, { reject_dmarc: true }, async (send, inbox) => {
    assert.equal(await send('ceo@trying.test'), '250');
    assert.equal(await send('ceo@half.test'), '250');
    assert.match(await send('ceo@all.test'), /^550 5\.7\.1 message refused: it fails DMARC/);
    const delivered = await inbox();
    assert.equal(delivered.length, 2);
    for (const m of delivered) assert.match(m, /dmarc=fail/);
  });
});

test('a DMARC pass that rests on an l= signature with text added after its part does not get past p=reject', async () => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const zone: Zone = { TXT: { 'sender.test': ['v=spf1 -all'], '_dmarc.sender.test': ['v=DMARC1; p=reject'], 'k._domainkey.sender.test': [`v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`] } };
  const { dkimSign } = await import('mailauth');
  const original = ['From: <ceo@sender.test>', 'To: alice@example.test', 'Subject: signed', '', 'the signed part', ''].join('\r\n');
  const signer = { signingDomain: 'sender.test', selector: 'k', privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, algorithm: 'ed25519-sha256', canonicalization: 'relaxed/relaxed' };
  const signed = async (maxBodyLength?: number) => {
    const one = { ...signer, ...(maxBodyLength !== undefined ? { maxBodyLength } : {}) };
    return (await dkimSign(original, { ...one, signatureData: [one] })).signatures.replace(/\r\n$/, '');
  };
  await withServer(zone, { reject_dmarc: true }, async (_send, inbox, port) => {
    // Signed whole: a pass.
    assert.match(await sendRaw(port, 'x@elsewhere.test', `${await signed()}\r\n${original}`), /^250 /);
    // Signed in part (l=), and nothing added: still a pass.
    const partly = await signed(Buffer.byteLength('the signed part\r\n'));
    assert.match(partly, /\bl=17\b/);
    assert.match(await sendRaw(port, 'x@elsewhere.test', `${partly}\r\n${original}`), /^250 /);
    // The same with text appended: what the signature does not cover is not the author's.
    assert.match(await sendRaw(port, 'x@elsewhere.test', `${partly}\r\n${original}pay to account 666\r\n`), /^550 5\.7\.1 message refused: it fails DMARC/);
    assert.equal((await inbox()).length, 2);
  });
});

test('checks that outlast idle_timeout are the server\'s time, not the client\'s: the reply comes, and the session goes on', async () => {
  // The sender's domain never answers: the checks take their whole limit, three times the idle one.
  const dns = await startDnsServer({ silent: ['slow.test'] });
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, { dns_servers: [dns.address], checks: { enabled: true, dns_timeout: '4s', timeout: '3s' }, limits: { idle_timeout: '1s' } }));
  addUser(cfg, 'alice@example.test', 'pw');
  const server = await startMailnest(dir, cfg);
  try {
    const c = await SmtpClient.open(server.port('smtp'));
    await c.ehlo();
    const r = await c.transaction('<bob@slow.test>', ['<alice@example.test>'], 'From: <bob@slow.test>\r\nSubject: slow\r\n\r\nbody\r\n');
    assert.match(r.raw, /^250 /);
    assert.match((await c.cmd('NOOP')).raw, /^250 /);
    await c.quit();
    assert.equal((await mailbox(path.join(dir, 'data'), 'alice@example.test')).length, 1);
  } finally {
    await server.stop();
    await dns.close();
  }
});

test('DSN requests from the internet are honoured for a sender whose SPF authorizes the client; for any other only failures are reported, with the header alone', async () => {
  // Reports to senders, and mail the alias sends on, go to one next hop, which refuses gone@.
  const sink = new SmtpSink({ rcptReply: (a) => (a === 'gone@refusing.test' ? '550 5.1.1 no such user' : undefined) });
  await sink.start();
  const dns = await startDnsServer({ TXT: { 'vouched.test': ['v=spf1 ip4:127.0.0.1 -all'], 'forged.test': ['v=spf1 -all'] } });
  const dir = tempDir();
  const hop = `127.0.0.1:${sink.port}`;
  const cfg = writeConfig(dir, baseConfig(dir, {
    dns_servers: [dns.address],
    checks: { enabled: true, dns_timeout: '5s', timeout: '20s' },
    relay: { routes: { 'vouched.test': hop, 'forged.test': hop, 'refusing.test': hop } },
    queue: { poll_interval: '100ms' },
  }));
  addUser(cfg, 'alice@example.test', 'pw');
  assert.equal(cli(cfg, ['alias', 'add', 'fwd@example.test', 'gone@refusing.test']).status, 0);
  const server = await startMailnest(dir, cfg);
  try {
    const c = await SmtpClient.open(server.port('smtp'));
    await c.ehlo();
    const asking = (sender: string) => c.transaction(`<${sender}> RET=FULL`, ['<alice@example.test> NOTIFY=SUCCESS,DELAY', '<fwd@example.test>'], `From: <${sender}>\r\nSubject: stranger text\r\nX-Ad: buy now\r\n\r\nthe body\r\n`);
    assert.equal((await asking('bob@vouched.test')).code, 250);
    assert.equal((await asking('victim@forged.test')).code, 250);
    await c.quit();
    const reportsTo = (address: string) => sink.messages.filter((m) => m.from === '' && m.to.includes(address)).map((m) => m.data.toString('latin1'));
    // Vouched for: a "delivered" report for alice, and the failure with the whole message.
    await until('both reports to the vouched sender', () => reportsTo('bob@vouched.test').length === 2);
    const vouched = reportsTo('bob@vouched.test');
    assert.ok(vouched.some((r) => /Action: delivered/.test(r)));
    assert.ok(vouched.some((r) => /Action: failed/.test(r) && /Content-Type: message\/rfc822/.test(r) && /the body/.test(r)));
    // Not vouched for: the failure alone, its header only.
    await until('the failure report to the unvouched sender', () => reportsTo('victim@forged.test').length === 1);
    const [failure] = reportsTo('victim@forged.test');
    assert.match(failure!, /Action: failed/);
    assert.match(failure!, /Content-Type: text\/rfc822-headers/);
    assert.doesNotMatch(failure!, /Action: delivered|the body/);
    const accepted = server.logs.filter((l) => l.msg === 'message accepted');
    assert.deepEqual(accepted.map((l) => l.dsn_not_honoured), [undefined, ['RET=FULL', 'NOTIFY=SUCCESS', 'NOTIFY=DELAY']]);
    // A "delivered" report is queued as the message is taken, before the failure: none was.
    // The server's log reaches this process on its own pipe, maybe after the report itself.
    const queued = () => server.logs.filter((l) => l.msg === 'delivery status notification queued' && l.to === 'victim@forged.test');
    await until('the failure report\'s log line', () => queued().length > 0);
    assert.deepEqual(queued().map((l) => l.actions), [['failed']]);
  } finally {
    await server.stop();
    await dns.close();
    await sink.stop();
  }
});

test('with reject_dmarc, a From that names no domain (a name alone, an empty group, none at all) is refused: no author\'s policy can be checked; without it, taken', async () => {
  const zone: Zone = { TXT: { 'attacker.test': ['v=spf1 ip4:127.0.0.1 -all'] } };
  const froms = ['From: =?utf-8?q?PayPal_Security?=\r\n', 'From: undisclosed:;\r\n', 'From: root\r\n', ''];
  const message = (from: string) => `${from}To: alice@example.test\r\nSubject: verify your account\r\n\r\nbody\r\n`;
  await withServer(zone, { reject_dmarc: true }, async (_send, inbox, port) => {
    for (const from of froms) {
      assert.match(await sendRaw(port, 'me@attacker.test', message(from)), /^550 5\.7\.1 message refused: its From field names no address with a domain/, from);
    }
    assert.equal(await sendRaw(port, 'me@attacker.test', message('From: me@attacker.test\r\n')).then((r) => r.slice(0, 3)), '250');
    assert.equal((await inbox()).length, 1);
  });
  await withServer(zone, {}, async (_send, inbox, port) => {
    assert.match(await sendRaw(port, 'me@attacker.test', message(froms[0]!)), /^250 /);
    assert.equal((await inbox()).length, 1);
  });
});
