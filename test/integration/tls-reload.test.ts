/**
 * A certificate renewed while the server runs: certbot's files replaced, then SIGHUP (its deploy
 * hook); a self-signed one near its end; a renewal caught half-way. New sessions get what is on
 * disk; the server never stops for it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { baseConfig, startMailnest, tempDir, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';

const DAY = 86_400_000;

/** A certificate for mx.example.test that lasts `days`, and its key (PEM). */
function makePair(days: number): { cert: string; key: string } {
  const dir = tempDir('mailnest-cert-');
  const [certFile, keyFile] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', String(days), '-subj', '/CN=mx.example.test',
    '-addext', 'subjectAltName=DNS:mx.example.test', '-keyout', keyFile, '-out', certFile], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') };
}

/** Sends SIGHUP and waits for the log line that says what came of it. */
async function hangUp(server: RunningMailnest, expect: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const seen = server.logs.length;
  server.process.kill('SIGHUP');
  for (let waited = 0; waited < 20_000; waited += 50) {
    const line = server.logs.slice(seen).find(expect);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no such log line after SIGHUP: ${JSON.stringify(server.logs.slice(seen))}`);
}

/** True when a TLS session on `port` (implicit TLS) gets a certificate that `ca` vouches for. */
async function served(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'mx.example.test' }, () => { s.end(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** The same over STARTTLS on the submission listener. */
async function servedAfterStarttls(port: number, ca: string): Promise<boolean> {
  const c = await SmtpClient.open(port);
  await c.ehlo();
  try {
    await c.starttls(ca);
    await c.ehlo();
    return true;
  } catch {
    return false;
  } finally {
    c.socket.destroy();
  }
}

test('SIGHUP takes up a renewed [tls] certificate for new sessions over implicit TLS and STARTTLS; one near its end is named at start', async () => {
  const dir = tempDir();
  const [certFile, keyFile] = [path.join(dir, 'fullchain.pem'), path.join(dir, 'privkey.pem')];
  const old = makePair(10);
  fs.writeFileSync(certFile, old.cert);
  fs.writeFileSync(keyFile, old.key);
  fs.chmodSync(keyFile, 0o644);
  const server = await startMailnest(dir, writeConfig(dir, baseConfig(dir, { tls: { cert: certFile, key: keyFile } })));
  try {
    const ending = server.logs.find((l) => l.level === 40 && /^tls\.cert ends soon: renew it/.test(String(l.msg)));
    assert.ok(ending, 'a certificate that ends within 14 days is named at start');
    assert.equal(ending.cert, certFile);
    // So is a key every user may read.
    const readable = server.logs.find((l) => l.level === 40 && /^tls\.key can be read by every user of this machine: chmod o-r it/.test(String(l.msg)));
    assert.equal(readable?.key, keyFile);
    assert.ok(await served(server.port('submissions'), old.cert));
    // A session that began before the renewal goes on with what it has.
    const before = await SmtpClient.open(server.port('submission'));
    await before.ehlo();

    const renewed = makePair(90);
    fs.writeFileSync(keyFile, renewed.key);
    fs.writeFileSync(certFile, renewed.cert);
    const line = await hangUp(server, (l) => l.msg === 'TLS certificate reloaded; TLS sessions that begin from now on use it');
    assert.equal(line.valid_until, new crypto.X509Certificate(renewed.cert).validToDate.toISOString());
    for (const port of [server.port('submissions'), server.port('pop3s')]) {
      assert.ok(await served(port, renewed.cert), `port ${port} serves the renewed certificate`);
      assert.ok(!(await served(port, old.cert)), `port ${port} no longer serves the old one`);
    }
    assert.ok(await servedAfterStarttls(server.port('submission'), renewed.cert));
    await before.starttls(renewed.cert);
    assert.equal((await before.ehlo()).code, 250);
    before.socket.destroy();

    // Half of a renewal (the new certificate, the old key): refused, the one in use stays.
    fs.writeFileSync(certFile, makePair(90).cert);
    const refused = await hangUp(server, (l) => l.level === 40 && String(l.msg).startsWith('tls: '));
    assert.match(String(refused.msg), /^tls: the key \S+ is not the certificate's \(\S+\): name the key made with this certificate; the certificate loaded before stays in use$/);
    assert.ok(await served(server.port('submissions'), renewed.cert));
    // A SIGHUP with nothing changed changes nothing, and the server goes on.
    fs.writeFileSync(certFile, renewed.cert);
    // Its line names the file looked at: a [tls] added to the config since needs a restart.
    await hangUp(server, (l) => l.msg === 'TLS certificate unchanged' && l.cert === certFile);
    assert.ok(await servedAfterStarttls(server.port('submission'), renewed.cert));
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('a self-signed certificate near its end is made anew while the server runs', async () => {
  const dir = tempDir();
  const server = await startMailnest(dir, writeConfig(dir, baseConfig(dir)));
  try {
    assert.ok(!server.logs.some((l) => /tls\.cert/.test(String(l.msg))), 'a certificate made here renews itself: no warning');
    // As if the server had run for 800 days: what is there ends in ten.
    const ending = makePair(10);
    fs.writeFileSync(path.join(dir, 'data', 'tls', 'selfsigned-key.pem'), ending.key);
    fs.writeFileSync(server.certFile, ending.cert);
    await hangUp(server, (l) => l.msg === 'TLS certificate reloaded; TLS sessions that begin from now on use it');
    const made = fs.readFileSync(server.certFile, 'utf8');
    assert.ok(new crypto.X509Certificate(made).validToDate.getTime() - Date.now() > 800 * DAY);
    assert.ok(await served(server.port('submissions'), made));
    assert.ok(!(await served(server.port('submissions'), ending.cert)));
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('a self-signed certificate that does not name the configured hostname (changed since, by init) is made anew at start', async () => {
  const dir = tempDir();
  const first = await startMailnest(dir, writeConfig(dir, baseConfig(dir, { hostname: 'first.example.test' })));
  const certFile = first.certFile;
  assert.equal(await first.stop(), 0);
  assert.ok(new crypto.X509Certificate(fs.readFileSync(certFile)).checkHost('first.example.test'));
  const second = await startMailnest(dir, writeConfig(dir, baseConfig(dir, { hostname: 'mx.example.test' })));
  try {
    const made = fs.readFileSync(second.certFile, 'utf8');
    assert.equal(new crypto.X509Certificate(made).checkHost('mx.example.test'), 'mx.example.test');
    assert.equal(new crypto.X509Certificate(made).checkHost('first.example.test'), undefined);
    assert.ok(await served(second.port('submissions'), made));
  } finally {
    assert.equal(await second.stop(), 0);
  }
});
