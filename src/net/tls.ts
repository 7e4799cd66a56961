/**
 * TLS material: the configured certificate, or a self-signed one made under data_dir on first
 * start (so STARTTLS and implicit TLS work out of the box; clients will ask to trust it), and
 * made again at a start within 30 days of its end.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { readConfiguredFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

export interface TlsMaterial {
  context: tls.SecureContext;
  certFile: string;
}

/** `warn`: where to say that a certificate due for renewal could not be made anew. */
export function loadTls(config: Config, warn: (message: string) => void = () => {}): TlsMaterial {
  let certFile = config.tls.cert;
  let keyFile = config.tls.key;
  let cert: Buffer;
  let key: Buffer;
  if (certFile !== undefined && keyFile !== undefined) {
    cert = readConfiguredFile('tls.cert', certFile);
    key = readConfiguredFile('tls.key', keyFile);
  } else {
    const dir = path.join(config.data_dir, 'tls');
    certFile = path.join(dir, 'selfsigned-cert.pem');
    keyFile = path.join(dir, 'selfsigned-key.pem');
    if (!fs.existsSync(certFile) || !fs.existsSync(keyFile)) makeSelfSigned(config.hostname, dir, certFile, keyFile);
    else if (dueForRenewal(certFile)) {
      try {
        makeSelfSigned(config.hostname, dir, certFile, keyFile);
      } catch (err) {
        // The one there serves until it ends.
        if (stillValid(certFile)) warn(`${(err as Error).message}; the certificate there serves until it ends`);
        else throw err;
      }
    }
    [cert, key] = [certFile, keyFile].map((f) => {
      try {
        return fs.readFileSync(f);
      } catch (err) {
        throw new Error(`tls: the self-signed ${f} cannot be read (${(err as NodeJS.ErrnoException).code}); remove ${dir} to have it made again`);
      }
    }) as [Buffer, Buffer];
  }
  const options: tls.TlsOptions = { cert, key, minVersion: 'TLSv1.2' };
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext(options);
  } catch (err) {
    throw new Error(`tls: the certificate ${certFile} and key ${keyFile} do not load: ${(err as Error).message}`);
  }
  return { context, certFile };
}

const DAY = 86_400_000;

/** True when the self-signed certificate ends within 30 days, is one an earlier version made
 *  (longer than 825 days, or not for server authentication, which Apple's clients refuse), or
 *  cannot be read as one: time for a new one. */
function dueForRenewal(certFile: string): boolean {
  try {
    const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
    return cert.validToDate.getTime() - Date.now() < 30 * DAY
      || cert.validToDate.getTime() - cert.validFromDate.getTime() > 825 * DAY
      || !(cert.keyUsage ?? []).includes('1.3.6.1.5.5.7.3.1');
  } catch {
    return true;
  }
}

function stillValid(certFile: string): boolean {
  try {
    return new crypto.X509Certificate(fs.readFileSync(certFile)).validToDate.getTime() > Date.now();
  } catch {
    return false;
  }
}

function makeSelfSigned(hostname: string, dir: string, certFile: string, keyFile: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // In a process of its own (see self-signed.ts), which is this directory's file of that name,
  // compiled (.js) or not (.ts) like this one.
  const script = fileURLToPath(new URL(`./self-signed${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));
  const r = spawnSync(process.execPath, [script, hostname, certFile, keyFile], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`tls: cannot make a self-signed certificate in ${dir}: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}`);
}
