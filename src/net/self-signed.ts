/**
 * Makes the self-signed certificate used when [tls] names none (see self-signed-certificate.ts).
 * Run as a program of its own (`self-signed.ts HOSTNAME CERT_FILE KEY_FILE`) by tls.ts, on first
 * start and when it is due for renewal: the certificate library is large, and the server should
 * not carry it in memory for the rest of its life.
 */
import fs from 'node:fs';
import { makeSelfSignedCertificate } from './self-signed-certificate.ts';

const [hostname, certFile, keyFile] = process.argv.slice(2) as [string, string, string];
const { cert, key } = await makeSelfSignedCertificate(hostname);
// Each under a temporary name, then renamed, so that neither file is ever half written. A crash
// between the two renames leaves the new key beside the old certificate: one due for renewal,
// which the next start therefore makes again.
fs.writeFileSync(`${keyFile}.tmp`, key, { mode: 0o600 });
fs.writeFileSync(`${certFile}.tmp`, cert, { mode: 0o644 });
fs.renameSync(`${keyFile}.tmp`, keyFile);
fs.renameSync(`${certFile}.tmp`, certFile);
