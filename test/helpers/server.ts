/**
 * Test helpers: a real mailnest process on loopback ports chosen by the OS, in a fresh data
 * directory, driven and inspected through the CLI the way an operator would.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'smol-toml';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'src/cli/main.ts');
export const NODE = process.execPath;

export interface TestConfig {
  [key: string]: unknown;
}

/** Every listener on 127.0.0.1:0 (the OS picks the port), local domain example.test. */
export function baseConfig(dir: string, overrides: TestConfig = {}): TestConfig {
  const c: Record<string, any> = {
    hostname: 'mx.example.test',
    domains: ['example.test'],
    data_dir: path.join(dir, 'data'),
    log_level: 'info',
    listen: {
      smtp: ['127.0.0.1:0'], submission: ['127.0.0.1:0'], submissions: ['127.0.0.1:0'],
      pop3: ['127.0.0.1:0'], pop3s: ['127.0.0.1:0'], imap: [], imaps: [], http: ['127.0.0.1:0'],
    },
    // Tests never query DNS: outbound mail without a route goes to a closed loopback port (and
    // is deferred), and the inbound SPF/DKIM/DMARC checks are off unless a test turns them on.
    relay: { smarthost: '127.0.0.1:9', smarthost_tls: 'none' },
    checks: { enabled: false },
  };
  for (const [k, v] of Object.entries(overrides)) {
    c[k] = v && typeof v === 'object' && !Array.isArray(v) && typeof c[k] === 'object' ? { ...c[k], ...v } : v;
  }
  return c;
}

export { tempDir } from './temp-dir.ts';

export function writeConfig(dir: string, config: TestConfig): string {
  const file = path.join(dir, 'mailnest.toml');
  fs.writeFileSync(file, stringify(config));
  return file;
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `mailnest ARGS` with the given config file; input goes to stdin. */
export function cli(configFile: string | undefined, args: string[], input?: string | Buffer, env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(NODE, [CLI, ...(configFile ? ['-c', configFile] : []), ...args], {
    input: input ?? '',
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function addUser(configFile: string, address: string, password: string): void {
  const r = cli(configFile, ['user', 'add', address, '--password-stdin'], `${password}\n`);
  if (r.status !== 0) throw new Error(`user add ${address} failed: ${r.stderr}`);
}

export interface RunningMailnest {
  dir: string;
  configFile: string;
  process: ChildProcess;
  /** Bound addresses per listener, e.g. { smtp: ["127.0.0.1:40123"] }. */
  addresses: Record<string, string[]>;
  port(listener: string): number;
  certFile: string;
  /** Every JSON log line printed so far. */
  logs: Record<string, unknown>[];
  /** What it printed on stderr so far. */
  stderr(): string;
  /** SIGTERM, then wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, then wait for exit. */
  kill(): Promise<void>;
}

/** How `startMailnest` runs it. */
export interface StartOptions {
  /** Its working directory; this process's by default. */
  cwd?: string;
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** The script node runs: the CLI's source by default, or the installed launcher (bin/mailnest.js). */
  entry?: string;
}

/** Starts `mailnest start` and waits for its "listening" log line. */
export async function startMailnest(dir: string, configFile: string, opts: StartOptions = {}): Promise<RunningMailnest> {
  const child = spawn(NODE, [opts.entry ?? CLI, '-c', configFile, 'start'], {
    stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, env: { ...process.env, ...opts.env },
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const addresses = await new Promise<Record<string, string[]>>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`mailnest did not start: ${stderr}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.msg === 'listening') {
            clearTimeout(timer);
            resolve(rec.addresses as Record<string, string[]>);
          }
        } catch { /* not JSON */ }
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`mailnest exited with ${code}: ${stderr}`)); });
  });
  return {
    dir, configFile, process: child, addresses, logs,
    stderr: () => stderr,
    certFile: path.join(dir, 'data', 'tls', 'selfsigned-cert.pem'),
    port(listener: string) {
      const a = addresses[listener]?.[0];
      if (!a) throw new Error(`no ${listener} listener`);
      return Number(a.slice(a.lastIndexOf(':') + 1));
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Runs a python3 script (given as text) with arguments; returns its output. */
export function python(script: string, args: string[] = [], input?: string): CliResult {
  const r = spawnSync('python3', ['-c', script, ...args], { input: input ?? '', encoding: 'utf8', timeout: 120_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
