/**
 * TLS material: the configured certificate, or a self-signed one made under data_dir on first
 * start (so STARTTLS and implicit TLS work out of the box; clients will ask to trust it), made
 * again within 30 days of its end. A certificate that changes on disk while the server runs
 * (certbot's renewal) is taken up by `refresh()`, which certificate-watch.ts calls every hour
 * and on SIGHUP; TLS sessions already under way keep the one they began with.
 */
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { certificateBlocks, readConfiguredFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

const DAY = 86_400_000;

export class ServerCertificate {
  /** What a TLS session that begins now gets. */
  context: tls.SecureContext;
  /** When the certificate in use ends. */
  validTo: Date;
  readonly certFile: string;
  private readonly keyFile: string;
  /** The host name a self-signed certificate is made for; undefined for a configured one. */
  private readonly selfSignedFor: string | undefined;
  private pem: { cert: Buffer; key: Buffer };

  private constructor(certFile: string, keyFile: string, selfSignedFor: string | undefined) {
    this.certFile = certFile;
    this.keyFile = keyFile;
    this.selfSignedFor = selfSignedFor;
    this.pem = this.read();
    this.context = secureContext(this.pem, certFile, keyFile);
    this.validTo = endOf(this.pem.cert);
  }

  /** At start. `warn`: where to say that a certificate due for renewal could not be made anew. */
  static load(config: Config, warn: (message: string) => void = () => {}): ServerCertificate {
    const { cert, key } = config.tls;
    if (cert !== undefined && key !== undefined) return new ServerCertificate(cert, key, undefined);
    const dir = path.join(config.data_dir, 'tls');
    const files = { certFile: path.join(dir, 'selfsigned-cert.pem'), keyFile: path.join(dir, 'selfsigned-key.pem') };
    if (!fs.existsSync(files.certFile) || !fs.existsSync(files.keyFile)) makeSelfSignedBlocking(config.hostname, files);
    else if (dueForRenewal(files.certFile, config.hostname)) {
      try {
        makeSelfSignedBlocking(config.hostname, files);
      } catch (err) {
        // The one there serves until it ends.
        if (stillValid(files.certFile)) warn(`${(err as Error).message}; the certificate there serves until it ends`);
        else throw err;
      }
    }
    return new ServerCertificate(files.certFile, files.keyFile, config.hostname);
  }

  /** True for a certificate made here, which renews itself; a configured one is renewed by its owner. */
  get madeHere(): boolean {
    return this.selfSignedFor !== undefined;
  }

  /**
   * Makes the self-signed certificate anew when it is due, then takes up the files if they are
   * no longer what was loaded. Resolves with true when the certificate in use changed. When the
   * new files do not load (a key that does not match, half of a renewal), it rejects, saying why,
   * and the certificate loaded before stays in use. `signal` stops a renewal under way.
   */
  async refresh(signal?: AbortSignal): Promise<boolean> {
    if (this.selfSignedFor !== undefined && dueForRenewal(this.certFile, this.selfSignedFor)) {
      await makeSelfSignedInBackground(this.selfSignedFor, { certFile: this.certFile, keyFile: this.keyFile }, signal);
    }
    const pem = this.read();
    if (pem.cert.equals(this.pem.cert) && pem.key.equals(this.pem.key)) return false;
    this.context = secureContext(pem, this.certFile, this.keyFile);
    this.validTo = endOf(pem.cert);
    this.pem = pem;
    return true;
  }

  /** The two files as they are now (two small files: read on the spot, at start and hourly). */
  private read(): { cert: Buffer; key: Buffer } {
    if (this.selfSignedFor === undefined) return { cert: readConfiguredFile('tls.cert', this.certFile), key: readConfiguredFile('tls.key', this.keyFile) };
    return { cert: readSelfSigned(this.certFile), key: readSelfSigned(this.keyFile) };
  }
}

/**
 * TLS 1.2's suites: ECDHE key exchange and AEAD ciphers only (RFC 9325 §4.2: forward secrecy; §4.1
 * rules out RSA key transport and CBC with SHA-1), in the server's order. TLS 1.3 keeps Node's
 * own, which are all such.
 */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

function secureContext(pem: { cert: Buffer; key: Buffer }, certFile: string, keyFile: string): tls.SecureContext {
  const wrong = whyNotLoaded(pem, certFile, keyFile);
  if (wrong !== undefined) throw new Error(`tls: ${wrong}`);
  try {
    // No renegotiation a client asks for: each costs the server a signature, and a client could
    // ask for thousands a second on one connection (TLS 1.3 has none).
    return tls.createSecureContext({
      ...pem, minVersion: 'TLSv1.2', ciphers: `${tls.DEFAULT_CIPHERS.split(':').filter((c) => c.startsWith('TLS_')).join(':')}:${TLS12_CIPHERS}`,
      honorCipherOrder: true, secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION,
    });
  } catch (err) {
    throw new Error(`tls: the certificate ${certFile} and key ${keyFile} do not load together (${(err as Error).message}); name a certificate and the private key made with it, both PEM`);
  }
}

/** Which of the two files is wrong, and what to do about it, or undefined when they are a
 *  pair: each is read on its own, then the key is checked against the certificate, as
 *  OpenSSL's words for the pair ("no start line") name neither, and it takes some pairs that
 *  do not match. */
function whyNotLoaded(pem: { cert: Buffer; key: Buffer }, certFile: string, keyFile: string): string | undefined {
  const certText = pem.cert.toString('latin1');
  const keyText = pem.key.toString('latin1');
  const firstBlock = (text: string) => /-----BEGIN [A-Z0-9 ]+-----/.exec(text)?.[0];
  const certs = certificateBlocks(pem.cert);
  const certFix = 'name a PEM file of "-----BEGIN CERTIFICATE-----" blocks, the server\'s first, its chain after it';
  if (certs.length === 0) {
    const found = firstBlock(certText);
    const what = found?.includes('PRIVATE KEY') ? `holds a private key (${found}), not a certificate: the certificate and the key may be the wrong way round` : found ? `holds no certificate (its first block is ${found})` : 'is not PEM (DER, or no certificate at all)';
    return `the certificate ${certFile} ${what}; ${certFix}`;
  }
  let server: crypto.X509Certificate;
  try {
    server = new crypto.X509Certificate(certs[0]!);
  } catch (err) {
    return `the certificate ${certFile} holds a certificate that cannot be read (${(err as Error).message}); ${certFix}`;
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(pem.key);
  } catch (err) {
    const message = (err as Error).message;
    const found = firstBlock(keyText);
    // PKCS#8 says ENCRYPTED in its first line, the older forms in a Proc-Type line under it.
    const what = /passphrase|bad decrypt/i.test(message) || /ENCRYPTED/.test(keyText) ? 'is encrypted with a passphrase, which a server cannot type: decrypt it once (openssl pkey -in KEY -out KEY.plain) and name that'
      : found?.includes('CERTIFICATE') ? `holds a certificate (${found}), not a private key: name the file of the key made with the certificate`
      : found ? `holds no private key that can be read (${message})` : 'is not PEM: name a PEM private key ("-----BEGIN PRIVATE KEY-----")';
    return `the key ${keyFile} ${what}`;
  }
  // Checked here: OpenSSL keeps RSA and EC keys apart and takes an EC key beside an RSA
  // certificate without a word, and every handshake then fails.
  if (!server.checkPrivateKey(key)) {
    const later = certs.slice(1).findIndex((c) => {
      try {
        return new crypto.X509Certificate(c).checkPrivateKey(key);
      } catch {
        return false;
      }
    });
    if (later >= 0) return `the certificate ${certFile} has the server's certificate (the one the key ${keyFile} is for) in place ${later + 2}, after another; put it first, its chain after it`;
    return `the key ${keyFile} is not the certificate's (${certFile}): name the key made with this certificate`;
  }
  return undefined;
}

/** The end of the first (the server's own) certificate in a PEM chain. */
function endOf(cert: Buffer): Date {
  return new crypto.X509Certificate(cert).validToDate;
}

function readSelfSigned(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`tls: the self-signed ${file} cannot be read (${(err as NodeJS.ErrnoException).code}); remove ${path.dirname(file)} to have it made again`);
  }
}

/** True when the self-signed certificate ends within 30 days, is one an earlier version made
 *  (longer than 825 days, or not for server authentication, which Apple's clients refuse), does
 *  not name `hostname` (changed since, by `init` after a first start on the defaults, say), or
 *  cannot be read as one: time for a new one. */
function dueForRenewal(certFile: string, hostname: string): boolean {
  try {
    const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
    return cert.validToDate.getTime() - Date.now() < 30 * DAY
      || cert.validToDate.getTime() - cert.validFromDate.getTime() > 825 * DAY
      || !(cert.keyUsage ?? []).includes('1.3.6.1.5.5.7.3.1')
      || cert.checkHost(hostname) === undefined;
  } catch {
    return true;
  }
}

function stillValid(certFile: string): boolean {
  try {
    return endOf(fs.readFileSync(certFile)).getTime() > Date.now();
  } catch {
    return false;
  }
}

interface PairFiles {
  certFile: string;
  keyFile: string;
}

// Made in a process of its own (see self-signed.ts), which is this directory's file of that
// name, compiled (.js) or not (.ts) like this one.
const MAKER = fileURLToPath(new URL(`./self-signed${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

function makerFailure(dir: string, detail: string): Error {
  // The maker's own message, or the error line of a crash's report (its first line is where).
  const lines = detail.trim().split('\n');
  return new Error(`tls: cannot make a self-signed certificate in ${dir}: ${lines.find((l) => /Error\b/.test(l))?.trim() ?? lines[0]}`);
}

/** At start, before anything listens. */
function makeSelfSignedBlocking(hostname: string, { certFile, keyFile }: PairFiles): void {
  const dir = path.dirname(certFile);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const r = spawnSync(process.execPath, [MAKER, hostname, certFile, keyFile], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw makerFailure(dir, r.stderr || r.error?.message || '');
}

/** While the server runs: its sessions go on meanwhile. The directory is made again if it went
 *  (removing it is how a broken certificate is made anew). */
async function makeSelfSignedInBackground(hostname: string, { certFile, keyFile }: PairFiles, signal?: AbortSignal): Promise<void> {
  const dir = path.dirname(certFile);
  try {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    await promisify(execFile)(process.execPath, [MAKER, hostname, certFile, keyFile], { encoding: 'utf8', timeout: 60_000, ...(signal ? { signal } : {}) });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw makerFailure(dir, e.stderr || e.message);
  }
}
