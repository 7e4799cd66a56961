/**
 * Relay benchmark: N queued 1 KiB messages delivered to a loopback Postfix smtp-sink, by
 * mailnest and by a Postfix instance of its own (relayhost = the sink), in the same run.
 * The rate is taken at the sink, from its first message to its last, so neither side's start-up
 * or queue filling counts. Needs postfix (smtp-sink, smtp-source) and root (smtp-sink -u).
 *
 *   node_modules/.bin/node bench/relay/run.ts [N=5000]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'smol-toml';
import { buildMailnest } from '../build.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE = process.execPath;
const N = Number(process.argv[2] ?? 5000);
const SIZE = 1024;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A smtp-sink whose "mesg=N" counter is watched: resolves first/last arrival times. */
class Sink {
  proc!: ChildProcess;
  /** Messages since the last reset; smtp-sink's own counter keeps growing across runs. */
  count = 0;
  private total = 0;
  private base = 0;
  first = 0;
  last = 0;
  port = 0;
  async start(): Promise<void> {
    this.port = await freePort();
    // Under a pseudo-terminal (script) smtp-sink writes its counters as they change, not when a pipe buffer fills.
    this.proc = spawn('script', ['-qfc', `smtp-sink -u postfix -c 127.0.0.1:${this.port} 1024`, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.proc.stdout!.on('data', (d: Buffer) => {
      const all = [...d.toString().matchAll(/mesg=(\d+)/g)];
      if (all.length === 0) return;
      const total = Number(all[all.length - 1]![1]);
      if (total > this.total) {
        this.total = total;
        if (this.count === 0) this.first = performance.now();
        this.count = total - this.base;
        this.last = performance.now();
      }
    });
    for (let i = 0; i < 50; i++) {
      if (await new Promise<boolean>((r) => { const s = net.connect(this.port, '127.0.0.1', () => { s.destroy(); r(true); }).on('error', () => r(false)); })) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('smtp-sink did not start');
  }
  reset(): void {
    this.base = this.total;
    this.count = 0;
    this.first = 0;
    this.last = 0;
  }
  async waitFor(n: number, ms = 600_000): Promise<number> {
    const deadline = Date.now() + ms;
    while (this.count < n) {
      if (Date.now() > deadline) throw new Error(`sink got ${this.count} of ${n}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return n / ((this.last - this.first) / 1000);
  }
  stop(): void {
    this.proc.kill('SIGTERM');
  }
}

async function benchMailnest(sink: Sink, dkim: boolean): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-bench-relay-'));
  const config = {
    hostname: 'bench.example.test', domains: ['example.test'], data_dir: path.join(dir, 'data'), log_level: 'warn',
    listen: { smtp: [], submission: [], submissions: [], pop3: [], pop3s: [], imap: [], imaps: [], http: [] },
    relay: { routes: { 'sink.test': `127.0.0.1:${sink.port}` } },
    checks: { enabled: false },
    dkim: { enabled: dkim },
  };
  const file = path.join(dir, 'mailnest.toml');
  fs.writeFileSync(file, stringify(config));
  run(NODE, [path.join(ROOT, 'bench/relay/fill.ts'), file, String(N), String(SIZE)]);
  sink.reset();
  const prof = process.env.MAILNEST_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.MAILNEST_CPU_PROF] : [];
  const server = spawn(NODE, [...prof, path.join(ROOT, 'bin/mailnest.js'), '-c', file, 'start'], { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    return await sink.waitFor(N);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function benchPostfix(sink: Sink): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postfix-bench-relay-'));
  // The postfix user must reach its queue directory through every parent.
  fs.chmodSync(dir, 0o755);
  const conf = path.join(dir, 'etc');
  fs.mkdirSync(conf);
  const smtpdPort = await freePort();
  const pc = (...args: string[]) => run('postconf', ['-c', conf, ...args]);
  fs.copyFileSync('/etc/postfix/master.cf', path.join(conf, 'master.cf'));
  fs.writeFileSync(path.join(conf, 'main.cf'), '');
  pc(
    'compatibility_level = 3.6',
    `queue_directory = ${dir}/spool`,
    `data_directory = ${dir}/data`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    'myhostname = bench-postfix.example.test',
    'mydestination =',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    `relayhost = [127.0.0.1]:${sink.port}`,
    'smtp_tls_security_level = none',
    'smtpd_tls_security_level = none',
    'alias_maps =',
    'alias_database =',
    // Held back while the queue fills, released for the measured run.
    'defer_transports = smtp',
  );
  // The instance's own smtpd on a free loopback port (to be fed), never port 25; no chroot
  // (the temporary queue directory has none of the files a chroot needs).
  pc('-MX', 'smtp/inet');
  pc('-M', `127.0.0.1:${smtpdPort}/inet = 127.0.0.1:${smtpdPort} inet n - n - - smtpd`);
  pc('-F', '*/*/chroot = n');
  fs.mkdirSync(`${dir}/spool`, { mode: 0o755 });
  postfixCommand(conf, 'check');
  postfixCommand(conf, 'start');
  try {
    run('smtp-source', ['-m', String(N), '-s', '20', '-l', String(SIZE), '-f', 'bench@example.test', '-t', 'sink@sink.test', `127.0.0.1:${smtpdPort}`]);
    // Wait until every message is in the queue (deferred by defer_transports).
    for (;;) {
      const out = spawnSync('postqueue', ['-c', conf, '-p'], { encoding: 'utf8' }).stdout;
      const m = /in (\d+) Request/.exec(out);
      if (m && Number(m[1]) >= N) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    sink.reset();
    pc('defer_transports =');
    postfixCommand(conf, 'reload');
    run('postqueue', ['-c', conf, '-f']);
    return await sink.waitFor(N);
  } finally {
    try { postfixCommand(conf, 'stop'); } catch { /* already stopped */ }
    for (let i = 0; i < 100 && fs.existsSync(`${dir}/spool/pid/master.pid`); i++) await new Promise((r) => setTimeout(r, 100));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `postfix -c DIR COMMAND` under script(1): Postfix reports its fatal errors only to a terminal. */
function postfixCommand(conf: string, command: string): void {
  const r = spawnSync('script', ['-qec', `postfix -c '${conf}' ${command}`, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`postfix ${command}: ${(r.stdout + r.stderr).trim() || `exit ${r.status ?? r.signal}`}`);
}

buildMailnest();
const sink = new Sink();
await sink.start();
try {
  const signed = await benchMailnest(sink, true);
  const unsigned = await benchMailnest(sink, false);
  let postfix: number | undefined;
  let postfixError = '';
  try {
    postfix = await benchPostfix(sink);
  } catch (err) {
    postfixError = (err as Error).message.split('\n')[0]!;
  }
  const cpus = os.cpus();
  console.log(`relay: ${N} messages of ${SIZE} bytes to smtp-sink on 127.0.0.1, ${cpus.length} x ${cpus[0]?.model ?? 'cpu'}`);
  console.log('| server | delivered msg/s |');
  console.log('|---|---|');
  console.log(`| mailnest, DKIM-signed | ${signed.toFixed(0)} |`);
  console.log(`| mailnest, not signed (as Postfix here) | ${unsigned.toFixed(0)} |`);
  const version = run('postconf', ['-d', '-h', 'mail_version']).trim();
  if (postfix !== undefined) {
    console.log(`| Postfix ${version} (not signing) | ${postfix.toFixed(0)} |`);
    console.log(`ratio mailnest/Postfix: ${(unsigned / postfix).toFixed(2)} unsigned, ${(signed / postfix).toFixed(2)} DKIM-signed`);
  } else {
    console.log(`| Postfix ${version} | not measured: ${postfixError} |`);
  }
} finally {
  sink.stop();
}
