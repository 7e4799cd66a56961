/**
 * TLS material: the configured certificate, or a self-signed one made under data_dir on first
 * start (so STARTTLS and implicit TLS work out of the box; clients will ask to trust it), made
 * again within 30 days of its end. A certificate that changes on disk while the server runs
 * (certbot's renewal) is taken up by `refresh()`, which certificate-watch.ts calls every hour
 * and on SIGHUP; sessions that began before keep the one they have.
 */
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readConfiguredFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

const DAY = 86_400_000;

export class ServerCertificate {
  /** What a TLS session that begins now gets. */
  context: tls.SecureContext;
  /** When the certificate in use ends. */
  validTo: Date;
  readonly certFile: string;
  private readonly keyFile: string;
  /** Made here, for `hostname`, because [tls] names no certificate. */
  private readonly selfSigned: string | undefined;
  private pem: { cert: Buffer; key: Buffer };

  private constructor(certFile: string, keyFile: string, selfSigned: string | undefined, pem: { cert: Buffer; key: Buffer }) {
    this.certFile = certFile;
    this.keyFile = keyFile;
    this.selfSigned = selfSigned;
    this.pem = pem;
    this.context = secureContext(pem, certFile, keyFile);
    this.validTo = endOf(pem.cert);
  }

  /** At start. `warn`: where to say that a certificate due for renewal could not be made anew. */
  static load(config: Config, warn: (message: string) => void = () => {}): ServerCertificate {
    const { cert, key } = config.tls;
    if (cert !== undefined && key !== undefined) {
      return new ServerCertificate(cert, key, undefined, { cert: readConfiguredFile('tls.cert', cert), key: readConfiguredFile('tls.key', key) });
    }
    const dir = path.join(config.data_dir, 'tls');
    const files = { certFile: path.join(dir, 'selfsigned-cert.pem'), keyFile: path.join(dir, 'selfsigned-key.pem') };
    if (!fs.existsSync(files.certFile) || !fs.existsSync(files.keyFile)) makeSelfSignedNow(config.hostname, files);
    else if (dueForRenewal(files.certFile)) {
      try {
        makeSelfSignedNow(config.hostname, files);
      } catch (err) {
        // The one there serves until it ends.
        if (stillValid(files.certFile)) warn(`${(err as Error).message}; the certificate there serves until it ends`);
        else throw err;
      }
    }
    const pem = { cert: readSelfSigned(files.certFile), key: readSelfSigned(files.keyFile) };
    return new ServerCertificate(files.certFile, files.keyFile, config.hostname, pem);
  }

  /** True for a certificate made here, which renews itself; a configured one is renewed by its owner. */
  get madeHere(): boolean {
    return this.selfSigned !== undefined;
  }

  /**
   * Makes the self-signed certificate anew when it is due, then takes up the files if they are
   * no longer what was loaded. Resolves with true when the certificate in use changed. When the
   * new files do not load (a key that does not match, half of a renewal), it rejects, saying why,
   * and the certificate loaded before stays in use.
   */
  async refresh(): Promise<boolean> {
    const files = { certFile: this.certFile, keyFile: this.keyFile };
    if (this.selfSigned !== undefined && dueForRenewal(this.certFile)) await makeSelfSigned(this.selfSigned, files);
    const [cert, key] = await Promise.all([this.certFile, this.keyFile].map((f, i) => fs.promises.readFile(f).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`tls: ${this.selfSigned === undefined ? `${i === 0 ? 'tls.cert' : 'tls.key'}: ` : ''}cannot read ${f} (${err.code ?? err.message})`);
    }))) as [Buffer, Buffer];
    if (cert.equals(this.pem.cert) && key.equals(this.pem.key)) return false;
    this.context = secureContext({ cert, key }, this.certFile, this.keyFile);
    this.validTo = endOf(cert);
    this.pem = { cert, key };
    return true;
  }
}

function secureContext(pem: { cert: Buffer; key: Buffer }, certFile: string, keyFile: string): tls.SecureContext {
  try {
    return tls.createSecureContext({ ...pem, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new Error(`tls: the certificate ${certFile} and key ${keyFile} do not load: ${(err as Error).message}`);
  }
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
  return new Error(`tls: cannot make a self-signed certificate in ${dir}: ${detail.trim().split('\n')[0]}`);
}

/** At start, before anything listens. */
function makeSelfSignedNow(hostname: string, { certFile, keyFile }: PairFiles): void {
  const dir = path.dirname(certFile);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const r = spawnSync(process.execPath, [MAKER, hostname, certFile, keyFile], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw makerFailure(dir, r.stderr || r.error?.message || '');
}

/** While the server runs: its sessions go on meanwhile. */
async function makeSelfSigned(hostname: string, { certFile, keyFile }: PairFiles): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, [MAKER, hostname, certFile, keyFile], { encoding: 'utf8', timeout: 60_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw makerFailure(path.dirname(certFile), e.stderr || e.message);
  }
}
