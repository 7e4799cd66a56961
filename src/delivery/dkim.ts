/**
 * DKIM signing (RFC 6376; Ed25519 per RFC 8463) of mail from the local domains. Each domain has
 * its own key, made on first use (or by `mailnest init` / `mailnest dns`) and kept under
 * data_dir/dkim; the public half is what `mailnest dns` prints for the DNS.
 */
import { isUtf8 } from 'node:buffer';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import addressparser from 'nodemailer/lib/addressparser';
import { prepareDataDir } from '../store/data-dir.ts';
import { domainKey } from '../store/store.ts';
import type { SignRequest, Signed } from './dkim-sign-worker.ts';
import { ThreadOnDemand } from './thread-on-demand.ts';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimSettings {
  dataDir: string;
  selector: string;
  algorithm: DkimAlgorithm;
}

function keyFile(s: DkimSettings, domain: string): string {
  const suffix = s.algorithm === 'ed25519-sha256' ? '.ed25519' : '';
  return path.join(s.dataDir, 'dkim', `${domainKey(domain)}.${s.selector}${suffix}.pem`);
}

/** The domain's private key (PEM), made and saved (mode 0600) when there is none yet. */
export function ensureDkimKey(s: DkimSettings, domain: string): string {
  const file = keyFile(s, domain);
  prepareDataDir(s.dataDir);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const { privateKey } = s.algorithm === 'ed25519-sha256'
    ? crypto.generateKeyPairSync('ed25519')
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written under a temporary name then renamed, so a concurrent reader never sees half a key.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, pem, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.unlinkSync(tmp);
  }
  return fs.readFileSync(file, 'utf8');
}

/** The TXT record value for `<selector>._domainkey.<domain>` (RFC 6376 §3.6.1). */
export function dkimRecord(privatePem: string): string {
  const key = crypto.createPublicKey(privatePem);
  if (key.asymmetricKeyType === 'ed25519') {
    // RFC 8463 §4.2: the bare 32-byte public key.
    const der = key.export({ type: 'spki', format: 'der' });
    return `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`;
  }
  return `v=DKIM1; k=rsa; p=${key.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

/** A From field, and its value with continuation lines. */
const FROM_FIELD = /(?:^|\r?\n)From[ \t]*:[ \t]*((?:[^\r\n]|\r?\n[ \t])*)/i;

/** The domain of the first address in a From header value, lower-cased (raw UTF-8 read as such,
 *  RFC 6532). */
export function fromDomain(header: Buffer): string | undefined {
  const text = header.toString(isUtf8(header) ? 'utf8' : 'latin1');
  const m = FROM_FIELD.exec(text);
  if (!m) return undefined;
  const parsed = addressparser(m[1]!.replace(/\r?\n[ \t]/g, ' '), { flatten: true });
  const address = parsed.find((a) => a.address)?.address;
  if (!address || !address.includes('@')) return undefined;
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

export class DkimSigner {
  private readonly settings: DkimSettings;
  private readonly localDomains: Set<string>;
  private readonly keys = new Map<string, { pem: string; ino: number; mtimeMs: number }>();

  constructor(settings: DkimSettings, localDomains: string[]) {
    this.settings = settings;
    this.localDomains = new Set(localDomains.map(domainKey));
  }

  /**
   * The signing domain for a message: the local domain its From header's domain is, or is under
   * (mail from MAILER-DAEMON@mail.example.com is signed for example.com, which DMARC's relaxed
   * alignment takes as the same organization, RFC 7489 §3.1.1), else the envelope sender's in the
   * same way; none otherwise, and none for a message without a From field, which cannot be
   * signed (RFC 6376 §5.4) and goes unsigned. `cut`: `header` is only the beginning of one too
   * long to read whole, where the From may lie past it; then the envelope sender's says.
   */
  signingDomain(header: Buffer, sender: string, cut = false): string | undefined {
    const env = sender.includes('@') ? sender.slice(sender.lastIndexOf('@') + 1) : undefined;
    if (!FROM_FIELD.test(header.toString('latin1'))) return cut && env ? this.localDomainOf(env) : undefined;
    const from = fromDomain(header);
    return (from && this.localDomainOf(from)) || (env && this.localDomainOf(env)) || undefined;
  }

  /** The local domain `domain` is, or the longest one it is under. */
  private localDomainOf(domain: string): string | undefined {
    const d = domainKey(domain);
    if (this.localDomains.has(d)) return d;
    return [...this.localDomains].filter((l) => d.endsWith(`.${l}`)).sort((a, b) => b.length - a.length)[0];
  }

  /** The domain's key as its file has it now: one replaced (a rotation, or removed and made
   *  anew by `mailnest dns`) is read again, so that what is signed with is what `dns` prints.
   *  What is read is known by the descriptor it was read from; a file caught half written is
   *  no key, and the one in use stays until the file is whole. */
  private key(domain: string): string {
    const file = keyFile(this.settings, domain);
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    const cached = this.keys.get(domain);
    if (cached && stat && cached.ino === stat.ino && cached.mtimeMs === stat.mtimeMs) return cached.pem;
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      // None (yet, or removed meanwhile): one is made, as `mailnest dns` makes it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      ensureDkimKey(this.settings, domain);
      fd = fs.openSync(file, 'r');
    }
    try {
      const read = fs.fstatSync(fd);
      const pem = fs.readFileSync(fd, 'utf8');
      crypto.createPrivateKey(pem);
      this.keys.set(domain, { pem, ino: read.ino, mtimeMs: read.mtimeMs });
      return pem;
    } catch (err) {
      if (cached) return cached.pem;
      throw err;
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * The DKIM-Signature header (CRLF-terminated) for the message. A message in memory is signed
   * in a worker thread; a stream (a large message) here, where mailauth hashes it as it reads.
   */
  async sign(domain: string, message: Buffer | Readable): Promise<string> {
    const one = {
      canonicalization: 'relaxed/relaxed',
      signingDomain: domain,
      selector: this.settings.selector,
      privateKey: this.key(domain),
      algorithm: this.settings.algorithm,
    };
    // mailauth signs what `signatureData` lists (the top-level fields only satisfy its types).
    const options = { ...one, signatureData: [one] };
    if (Buffer.isBuffer(message)) return (await this.worker.request({ message, options })).signatures;
    // Loaded on first use: mailauth is large, and an idle server should stay small.
    const { dkimSign } = await import('mailauth');
    const result = await dkimSign(message, options);
    if (result.errors && result.errors.length > 0) {
      throw new Error(`DKIM signing for ${domain} failed: ${result.errors.map((e) => e.err?.message ?? String(e)).join('; ')}`);
    }
    return result.signatures;
  }

  /** Ends the worker thread (it is started again when needed). */
  close(): void {
    this.worker.close();
  }

  private readonly worker = new ThreadOnDemand<Omit<SignRequest, 'id'>, Signed>(import.meta.url, 'dkim-sign-worker', 'DKIM signing');
}

