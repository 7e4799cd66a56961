/**
 * Outbound delivery through `[relay] routes` to loopback peers: the message arrives intact and
 * DKIM-signed, recipients at two destinations are handled apart, a restart loses nothing and
 * sends nothing twice, a large message (a body file) goes out whole and its file goes with its
 * last copy.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import { addUser, baseConfig, cli, startMailnest, tempDir, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { inject, queueJson, until } from '../helpers/relay.ts';
import { storedMessage } from '../helpers/mailbox.ts';
import { withStore } from '../helpers/smtp-fixture.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { dkimRecord, ensureDkimKey } from '../../src/delivery/dkim.ts';

const MESSAGE = [
  'From: Alice <alice@example.test>',
  'To: Bob <bob@remote.test>',
  'Subject: relay test \u00e9',
  'Date: Sun, 22 Nov 2026 05:01:02 +0000',
  'Message-ID: <relay-1@example.test>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: 8bit',
  '',
  'Hello Bob,',
  '.a line that starts with a dot',
  'caf\u00e9 \u2014 8-bit text',
  '',
].join('\r\n');

describe('relay through routes', () => {
  let dir: string;
  let sinkA: SmtpSink;
  let sinkB: SmtpSink;
  let server: RunningMailnest;
  let configFile: string;

  before(async () => {
    dir = tempDir();
    sinkA = new SmtpSink();
    sinkB = new SmtpSink({ rcptReply: (a) => (a.startsWith('nobody@') ? '550 5.1.1 no such user here' : undefined) });
    await sinkA.start();
    await sinkB.start();
    configFile = writeConfig(dir, baseConfig(dir, {
      relay: { routes: { 'remote.test': `127.0.0.1:${sinkA.port}`, 'other.test': `127.0.0.1:${sinkB.port}`, 'named.test': `localhost:${sinkB.port}` } },
      queue: { retry: ['1s'], poll_interval: '200ms' },
    }));
    addUser(configFile, 'alice@example.test', 'secret-pw');
    server = await startMailnest(dir, configFile);
  });

  after(async () => {
    await server?.stop();
    await sinkA?.stop();
    await sinkB?.stop();
  });

  it('delivers the message intact, signed with the domain key that verifies', async () => {
    const id = inject(configFile, 'alice@example.test', ['bob@remote.test'], MESSAGE);
    const [m] = await sinkA.waitFor(1);
    assert.equal(m!.from, 'alice@example.test');
    assert.deepEqual(m!.to, ['bob@remote.test']);
    assert.match(m!.mailParams, /BODY=8BITMIME/);
    assert.match(m!.helo, /mx\.example\.test/);
    const text = m!.data.toString('utf8');
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    assert.equal(body, MESSAGE.slice(MESSAGE.indexOf('\r\n\r\n') + 4));
    assert.match(text, /^DKIM-Signature: /);
    assert.match(text, new RegExp(`\\r\\nReceived: by mx\\.example\\.test \\(mailnest\\) with local id ${id}\\r\\n`));
    await assertSigned(m!.data);
    await until('the queue to empty', () => queueJson(configFile).length === 0);
  });

  it('a route may name its host: it is found in /etc/hosts, as the system finds names', async () => {
    inject(configFile, 'alice@example.test', ['someone@named.test'], 'Subject: by name\r\n\r\nx\r\n');
    await until('the message at the named host', () => sinkB.messages.some((x) => x.to.includes('someone@named.test')));
    await until('the queue to empty', () => queueJson(configFile).length === 0);
  });

  it('never signs mail from the internet that an alias sends on, even when its From names a local domain', async () => {
    assert.equal(cli(configFile, ['alias', 'add', 'fwd@example.test', 'dave@remote.test']).status, 0);
    const c = await SmtpClient.open(server.port('smtp'));
    await c.ehlo();
    // Unauthenticated: a stranger writing as alice, and as the envelope's local sender.
    const r = await c.transaction('<alice@example.test>', ['<fwd@example.test>'], 'From: "The Boss" <alice@example.test>\r\nTo: fwd@example.test\r\nSubject: pay this\r\n\r\nnow');
    assert.equal(r.code, 250);
    await c.quit();
    await until('the forwarded copy', () => sinkA.messages.some((x) => x.to.includes('dave@remote.test')));
    const m = sinkA.messages.find((x) => x.to.includes('dave@remote.test'))!;
    assert.doesNotMatch(m.data.toString('latin1'), /DKIM-Signature:/i);
    assert.match(m.data.toString('latin1'), /Subject: pay this/);
    await until('the queue to empty', () => queueJson(configFile).length === 0);
  });

  /** The DKIM signature verifies with the domain's public key, served by a stub resolver. */
  async function assertSigned(data: Buffer): Promise<void> {
    const key = ensureDkimKey({ dataDir: path.join(dir, 'data'), selector: 'mailnest', algorithm: 'rsa-sha256' }, 'example.test');
    const record = dkimRecord(key);
    const result = await dkimVerify(data, {
      resolver: async (name: string, type: string) => {
        if (type === 'TXT' && name === 'mailnest._domainkey.example.test') return [[record]];
        throw Object.assign(new Error('no such name'), { code: 'ENOTFOUND' });
      },
    });
    assert.equal(result.results[0]?.status.result, 'pass', JSON.stringify(result.results[0]?.status));
    assert.equal(result.results[0]?.signingDomain, 'example.test');
  }

  it('handles recipients at two destinations apart: one delivered, one bounced', async () => {
    const before = sinkB.messages.length;
    const id = inject(configFile, 'alice@example.test', ['carol@remote.test', 'nobody@other.test', 'dave@other.test'], MESSAGE);
    await until('delivery to both destinations', () => sinkA.messages.some((m) => m.to.includes('carol@remote.test')) && sinkB.messages.length > before);
    const atB = sinkB.messages.slice(before);
    assert.equal(atB.length, 1);
    assert.deepEqual(atB[0]!.to, ['dave@other.test']);
    // nobody@other.test failed for good: the queue is empty and alice has a bounce naming it.
    await until('the queue to empty', () => queueJson(configFile).length === 0);
    const users = JSON.parse(cli(configFile, ['user', 'list', '--json']).stdout) as { address: string; messages: number }[];
    assert.equal(users.find((u) => u.address === 'alice@example.test')?.messages, 1);
    assert.ok(id);
  });

  it('keeps a message whose recipients are all deferred, and delivers it once after a restart', async () => {
    await sinkA.stop();
    const before = sinkA.messages.length;
    const id = inject(configFile, 'alice@example.test', ['erin@remote.test', 'frank@remote.test'], MESSAGE);
    await until('a failed attempt', () => {
      const e = queueJson(configFile).find((x) => x.id === id);
      return !!e && e.recipients.every((r) => r.status === 'deferred' && r.attempts >= 1);
    });
    assert.equal(await server.stop(), 0);
    const again = queueJson(configFile).find((x) => x.id === id);
    assert.ok(again, 'the entry survives the restart');
    await sinkA.start(sinkA.port);
    server = await startMailnest(dir, configFile);
    await sinkA.waitFor(before + 1);
    await until('the queue to empty', () => queueJson(configFile).length === 0);
    // Give a second delivery every chance to happen, then check it did not.
    await new Promise((r) => setTimeout(r, 1500));
    const copies = sinkA.messages.slice(before);
    assert.equal(copies.length, 1);
    assert.deepEqual(copies[0]!.to.sort(), ['erin@remote.test', 'frank@remote.test']);
  });

  it('signs a message whose From comes after more than 64 KiB of header, small or large', async () => {
    const padding = Array.from({ length: 350 }, (_, i) => `X-Pad-${i}: ${'p'.repeat(200)}`).join('\r\n');
    const padded = `${padding}\r\n${MESSAGE}`;
    const large = padded.replace('Hello Bob,', `Hello Bob,\r\n${`${'y'.repeat(70)}\r\n`.repeat(4000)}`);
    assert.ok(padded.length < 256 * 1024 && large.length > 256 * 1024);
    for (const message of [padded, large]) {
      const before = sinkA.messages.length;
      inject(configFile, 'alice@example.test', ['pad@remote.test'], message);
      const m = (await sinkA.waitFor(before + 1))[before]!;
      await assertSigned(m.data);
    }
    await until('the queue to empty', () => queueJson(configFile).length === 0);
  });

  it('relays a large message (kept as a file) whole and signed; the file goes with its last copy', async () => {
    const lines = Array.from({ length: 6000 }, (_, i) => `${i % 97 === 0 ? '.' : ''}line ${i} ${'x'.repeat(50)}`);
    const big = MESSAGE.replace('Hello Bob,', ['Hello Bob,', ...lines].join('\r\n'));
    assert.ok(big.length > 256 * 1024);
    const before = sinkA.messages.length;
    inject(configFile, 'alice@example.test', ['gina@remote.test', 'alice@example.test'], big);
    const m = (await sinkA.waitFor(before + 1))[before]!;
    const text = m.data.toString('utf8');
    assert.equal(text.slice(text.indexOf('\r\n\r\n') + 4), big.slice(big.indexOf('\r\n\r\n') + 4));
    await assertSigned(m.data);
    await until('the queue to empty', () => queueJson(configFile).length === 0);
    // Delivered: the queue entry is gone, alice's copy still holds the body file.
    const bodies = path.join(dir, 'data', 'bodies');
    assert.equal(fs.readdirSync(bodies).length, 1);
    await withStore(path.join(dir, 'data'), async (store) => {
      const alice = (await store.findUser('alice@example.test'))!;
      const uids = (await store.listMailbox(alice.id)).map((e) => e.uid);
      const copy = await storedMessage(store, alice.id, uids[uids.length - 1]!);
      assert.ok(copy.toString('utf8').endsWith(big.slice(big.indexOf('\r\n\r\n') + 4)));
      await store.deleteMessages(alice.id, uids);
    });
    await until('the body file to go', () => fs.readdirSync(bodies).length === 0, 2000);
  });
});
