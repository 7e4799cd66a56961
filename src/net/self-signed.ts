/**
 * Makes the self-signed certificate used when [tls] names none. Run as a program of its own
 * (`self-signed.ts HOSTNAME CERT_FILE KEY_FILE`) by tls.ts, once, on first start: the certificate
 * library is large, and the server should not carry it in memory for the rest of its life.
 */
import fs from 'node:fs';
import selfsigned from 'selfsigned';

const [hostname, certFile, keyFile] = process.argv.slice(2) as [string, string, string];
// Valid from a day ago (a client whose clock is a little behind still takes it) for 820 days,
// within the 825 Apple's clients take; with the usage extensions they ask for (serverAuth). The
// server makes a new one when this one is near its end (tls.ts).
const DAY = 86_400_000;
const notBefore = new Date(Date.now() - DAY);
const notAfter = new Date(notBefore.getTime() + 820 * DAY);
const pems = await selfsigned.generate([{ name: 'commonName', value: hostname }], {
  keySize: 2048,
  notBeforeDate: notBefore,
  notAfterDate: notAfter,
  algorithm: 'sha256',
  extensions: [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
  ],
});
// Each under a temporary name, then renamed: a crash leaves the old pair or the new one whole.
fs.writeFileSync(`${keyFile}.tmp`, pems.private, { mode: 0o600 });
fs.writeFileSync(`${certFile}.tmp`, pems.cert, { mode: 0o644 });
fs.renameSync(`${keyFile}.tmp`, keyFile);
fs.renameSync(`${certFile}.tmp`, certFile);
