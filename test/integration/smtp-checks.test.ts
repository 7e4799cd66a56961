/**
 * SPF, DKIM and DMARC on the smtp listener of a real mailnest process, against a DNS server
 * of the test's own on 127.0.0.1 (nothing leaves the machine).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { mailbox } from '../helpers/mailbox.ts';
import { startDnsServer, type Zone } from '../helpers/dns-server.ts';
import { addUser, baseConfig, startMailnest, tempDir, writeConfig } from '../helpers/server.ts';

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

async function withServer(zone: Zone | 'dead', checks: Record<string, unknown>, fn: (send: (from: string) => Promise<string>, inbox: () => Promise<string[]>) => Promise<void>) {
  const dns = zone === 'dead' ? undefined : await startDnsServer(zone);
  const dir = tempDir();
  // A dead DNS server: a UDP port nobody answers on.
  const servers = dns ? [dns.address] : ['127.0.0.1:9'];
  const cfg = writeConfig(dir, baseConfig(dir, { dns_servers: servers, checks: { enabled: true, dns_timeout: '1s', timeout: '3s', ...checks } }));
  addUser(cfg, 'alice@example.test', 'pw');
  const server = await startMailnest(dir, cfg);
  try {
    const send = async (from: string) => (await run('python3', ['-c', SEND, String(server.port('smtp')), from])).stdout.trim();
    const inbox = async () => (await mailbox(path.join(dir, 'data'), 'alice@example.test')).map((m) => m.toString('utf8'));
    await fn(send, inbox);
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
  await withServer('dead', {}, async (send, inbox) => {
    assert.equal(await send('bob@remote.test'), '250');
    const [msg] = await inbox();
    assert.match(msg!, /Authentication-Results: mx\.example\.test;/);
  });
});
