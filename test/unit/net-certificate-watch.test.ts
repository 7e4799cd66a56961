/** The certificate watch of a running server: every hour it takes up renewed files, and it names a configured certificate near its end once a day. */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.ts';
import { CertificateWatch } from '../../src/net/certificate-watch.ts';
import { ServerCertificate } from '../../src/net/tls.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const HOUR = 3_600_000;

/** Writes a certificate that lasts `days` and its key to the two files; returns the certificate's end. */
function writePair(certFile: string, keyFile: string, days: number): Date {
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', String(days), '-subj', '/CN=mx.example.test', '-keyout', keyFile, '-out', certFile], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return new crypto.X509Certificate(fs.readFileSync(certFile)).validToDate;
}

test('every hour the watch takes up a certificate renewed on disk; one that ends within 14 days is named once a day', async () => {
  const dir = tempDir('mailnest-watch-');
  const [certFile, keyFile] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
  const firstEnd = writePair(certFile, keyFile, 10);
  const certificate = ServerCertificate.load(parseConfig({ data_dir: dir, tls: { cert: certFile, key: keyFile } }));
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  const messages = () => lines.map((l) => l.msg);
  const ENDING = 'tls.cert ends soon: renew it; mailnest takes up the renewed files within an hour, or at once on SIGHUP';
  const RELOADED = 'TLS certificate reloaded; TLS sessions that begin from now on use it';
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: Date.now() });
  const watch = new CertificateWatch(certificate, log);
  try {
    await watch.start();
    assert.deepEqual(messages(), [ENDING]);
    // Hourly checks of unchanged files say nothing until a day has passed.
    for (let h = 1; h <= 24; h++) {
      mock.timers.tick(HOUR);
      await settle(() => false, 20);
    }
    await watch.check();
    assert.deepEqual(messages(), [ENDING, ENDING]);
    assert.equal(certificate.validTo.getTime(), firstEnd.getTime());

    const context = certificate.context;
    const renewedEnd = writePair(certFile, keyFile, 90);
    mock.timers.tick(HOUR - 1);
    await settle(() => false, 20);
    assert.equal(certificate.context, context, 'not before the hour');
    mock.timers.tick(1);
    await settle(() => lines.length === 3);
    assert.deepEqual(messages(), [ENDING, ENDING, RELOADED]);
    assert.equal(lines[2]!.valid_until, renewedEnd.toISOString());
    assert.notEqual(certificate.context, context);
    assert.equal(certificate.validTo.getTime(), renewedEnd.getTime());
    // No longer near its end: no more warnings.
    mock.timers.tick(25 * HOUR);
    await watch.check();
    assert.equal(lines.length, 3);
  } finally {
    await watch.stop();
    mock.timers.reset();
  }
});

/** Lets real I/O run (the timers are mocked) until `done`, or for `turns` turns when it never is. */
async function settle(done: () => boolean, turns = 100_000): Promise<void> {
  const deadline = performance.now() + 2000;
  for (let i = 0; i < turns && !done() && performance.now() < deadline; i++) await new Promise((resolve) => setImmediate(resolve));
}

test('a certificate and key that do not load are named, file by file, with what to do: at start and when taken up again', async () => {
  const dir = tempDir('mailnest-badpair-');
  const [certFile, keyFile] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
  writePair(certFile, keyFile, 90);
  const good = { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
  const other = path.join(dir, 'other');
  fs.mkdirSync(other);
  writePair(path.join(other, 'cert.pem'), path.join(other, 'key.pem'), 90);
  const openssl = (args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'latin1' });
    assert.equal(r.status, 0, r.stderr);
    return Buffer.from(r.stdout, 'latin1');
  };
  const encrypted = openssl(['pkey', '-in', keyFile, '-aes256', '-passout', 'pass:secret']);
  // The older form, whose first line says nothing of it (Proc-Type: 4,ENCRYPTED below).
  const traditional = openssl(['rsa', '-in', keyFile, '-aes256', '-traditional', '-passout', 'pass:secret']);
  // A P-256 key: OpenSSL itself takes one beside an RSA certificate, and no handshake works.
  const ecKey = openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  const der = openssl(['x509', '-in', certFile, '-outform', 'DER']);
  const otherCert = fs.readFileSync(path.join(other, 'cert.pem'));
  const cases: [Buffer | string, Buffer | string, RegExp][] = [
    [good.key, good.cert, new RegExp(`^tls: the certificate ${certFile} holds a private key \\(-----BEGIN PRIVATE KEY-----\\), not a certificate: the certificate and the key may be the wrong way round; name a PEM file`)],
    ['junk', good.key, new RegExp(`^tls: the certificate ${certFile} is not PEM \\(DER, or no certificate at all\\); name a PEM file of "-----BEGIN CERTIFICATE-----" blocks`)],
    [der, good.key, new RegExp(`^tls: the certificate ${certFile} is not PEM \\(DER, or no certificate at all\\)`)],
    [good.cert, encrypted, new RegExp(`^tls: the key ${keyFile} is encrypted with a passphrase, which a server cannot type: decrypt it once \\(openssl pkey -in KEY -out KEY\\.plain\\) and name that$`)],
    [good.cert, traditional, new RegExp(`^tls: the key ${keyFile} is encrypted with a passphrase`)],
    [good.cert, good.cert, new RegExp(`^tls: the key ${keyFile} holds a certificate \\(-----BEGIN CERTIFICATE-----\\), not a private key: name the file of the key made with the certificate$`)],
    [good.cert, fs.readFileSync(path.join(other, 'key.pem')), new RegExp(`^tls: the key ${keyFile} is not the certificate's \\(${certFile}\\): name the key made with this certificate$`)],
    [good.cert, ecKey, new RegExp(`^tls: the key ${keyFile} is not the certificate's`)],
    [Buffer.concat([otherCert, good.cert]), good.key, new RegExp(`^tls: the certificate ${certFile} has the server's certificate \\(the one the key ${keyFile} is for\\) in place 2, after another; put it first, its chain after it$`)],
  ];
  const config = parseConfig({ data_dir: dir, tls: { cert: certFile, key: keyFile } });
  for (const [cert, key, message] of cases) {
    fs.writeFileSync(certFile, cert);
    fs.writeFileSync(keyFile, key);
    assert.throws(() => ServerCertificate.load(config), (err: Error) => message.test(err.message), String(message));
  }
  // The same words when a running server takes the files up again; the pair loaded stays.
  fs.writeFileSync(certFile, good.cert);
  fs.writeFileSync(keyFile, good.key);
  const certificate = ServerCertificate.load(config);
  for (const [cert, key, message] of cases) {
    fs.writeFileSync(certFile, cert);
    fs.writeFileSync(keyFile, key);
    await assert.rejects(certificate.refresh(), (err: Error) => message.test(err.message), String(message));
  }
});
