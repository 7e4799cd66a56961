/**
 * One mailnest per test for the SMTP integration tests: a fresh data directory, users and
 * aliases written straight into the store before start (quicker than one CLI process each),
 * a certificate made once per test process and copied in, and readers for what got stored.
 */
import fs from 'node:fs';
import path from 'node:path';
import { hashPassword } from '../../src/auth/password.ts';
import { makeSelfSignedCertificate } from '../../src/net/self-signed-certificate.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { QueueEntry } from '../../src/store/store.ts';
import { baseConfig, startMailnest, tempDir, writeConfig, type RunningMailnest, type TestConfig } from './server.ts';
import { SmtpClient, type ConnectOptions } from './smtp-client.ts';

export const PASSWORD = 'correct horse battery';

export interface FixtureOptions {
  /** Overrides merged into baseConfig (one level deep, like baseConfig itself). */
  config?: TestConfig;
  /** address -> password; alice@example.test and bob@example.test by default. */
  users?: Record<string, string>;
  /** alias -> targets. */
  aliases?: Record<string, string[]>;
}

export interface Fixture {
  dir: string;
  dataDir: string;
  configFile: string;
  server: RunningMailnest;
  /** The certificate to trust (PEM). */
  ca: Buffer;
  port(listener: 'smtp' | 'submission' | 'submissions'): number;
  /** A session with its greeting read; submissions is implicit TLS. */
  open(listener?: 'smtp' | 'submission' | 'submissions', opts?: ConnectOptions): Promise<SmtpClient>;
  /** A submission session after EHLO, STARTTLS, EHLO and AUTH PLAIN as `user`. */
  openAuthenticated(user?: string, password?: string): Promise<SmtpClient>;
  /** Starts the server again on the same data directory (after stop or kill). */
  restart(): Promise<void>;
  /** Stops the server (SIGTERM) and resolves with its exit code. */
  stop(): Promise<number | null>;
}

let certCache: { cert: string; key: string } | undefined;

/** One self-signed certificate for mx.example.test per test process, made as the server makes it. */
async function testCertificate(): Promise<{ cert: string; key: string }> {
  certCache ??= await makeSelfSignedCertificate('mx.example.test');
  return certCache;
}

export async function startFixture(opts: FixtureOptions = {}): Promise<Fixture> {
  const dir = tempDir('mailnest-smtp-');
  const config = baseConfig(dir, opts.config ?? {});
  const dataDir = config.data_dir as string;
  const configFile = writeConfig(dir, config);

  const { cert, key } = await testCertificate();
  fs.mkdirSync(path.join(dataDir, 'tls'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dataDir, 'tls', 'selfsigned-cert.pem'), cert);
  fs.writeFileSync(path.join(dataDir, 'tls', 'selfsigned-key.pem'), key, { mode: 0o600 });

  const users = opts.users ?? { 'alice@example.test': PASSWORD, 'bob@example.test': PASSWORD };
  const store = new SqliteStore(dataDir);
  try {
    for (const [address, password] of Object.entries(users)) await store.createUser(address, await hashPassword(password));
    for (const [alias, targets] of Object.entries(opts.aliases ?? {})) await store.addAlias(alias, targets);
  } finally {
    store.close();
  }

  const ca = Buffer.from(cert);
  const f: Fixture = {
    dir, dataDir, configFile, ca,
    server: await startMailnest(dir, configFile),
    port: (listener) => f.server.port(listener),
    async open(listener = 'smtp', o = {}) {
      return SmtpClient.open(f.port(listener), listener === 'submissions' ? { ca, ...o } : o);
    },
    async openAuthenticated(user = 'alice@example.test', password = PASSWORD) {
      const c = await f.open('submission');
      await c.ehlo();
      const tls = await c.starttls(ca);
      if (tls.code !== 220) throw new Error(`STARTTLS refused: ${tls.raw}`);
      await c.ehlo();
      const r = await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
      if (r.code !== 235) throw new Error(`AUTH failed: ${r.raw}`);
      return c;
    },
    async restart() {
      f.server = await startMailnest(dir, configFile);
    },
    stop: () => f.server.stop(),
  };
  return f;
}

/** Stops the server (if running) and removes its directory. */
export async function cleanup(f: Fixture | undefined): Promise<void> {
  if (!f) return;
  await f.server.kill();
  fs.rmSync(f.dir, { recursive: true, force: true });
}

/** Opens the store for reading; the server may be running (WAL lets both in). */
export async function withStore<T>(dataDir: string, fn: (store: SqliteStore) => Promise<T>): Promise<T> {
  const store = new SqliteStore(dataDir);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

/** Every message in the user's mailbox, each as stored (trace headers + body), oldest first. */
export { mailbox } from './mailbox.ts';

/** The outbound queue entries (non-local recipients waiting for delivery). */
export async function queue(dataDir: string): Promise<QueueEntry[]> {
  return withStore(dataDir, (store) => store.listQueue());
}

/** The trace headers mailnest put in front of a stored message (Return-Path, Received), and
 *  the body: the bytes after them, which must be exactly what the client sent. */
export function splitTrace(stored: Buffer): { trace: string; body: Buffer } {
  let pos = 0;
  const text = stored.toString('latin1');
  if (!text.startsWith('Return-Path:')) throw new Error(`stored message does not start with Return-Path: ${JSON.stringify(text.slice(0, 80))}`);
  // Return-Path is one line; Received is one header folded over several lines.
  pos = text.indexOf('\r\n', pos) + 2;
  if (!text.startsWith('Received:', pos)) throw new Error('no Received header after Return-Path');
  pos = text.indexOf('\r\n', pos) + 2;
  while (text[pos] === ' ' || text[pos] === '\t') pos = text.indexOf('\r\n', pos) + 2;
  return { trace: text.slice(0, pos), body: stored.subarray(pos) };
}


