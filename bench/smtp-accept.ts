/**
 * SMTP accept benchmark (started by bench/smtp-accept, which checks the tools and raises the
 * descriptor limit).
 *
 * In one run, on loopback only:
 *  - smtp-sink: Postfix's protocol-only test server, the ceiling smtp-source can drive;
 *  - mailnest: a fresh data directory per case, checks off, log_level warn (--log-level), its
 *    log lines in a file; its 250 after DATA means the message is committed to SQLite (WAL,
 *    synchronous=FULL);
 *  - Postfix: a private instance (own config, queue and data directories under a temp dir, its
 *    smtpd on its own loopback port, nothing on port 25) delivering through virtual(8) into a
 *    Maildir; timed until every message is in Maildir/new, not just accepted.
 * Each is driven by smtp-source with the same flags: N messages, 1 KiB and 100 KiB, 1 and 20
 * sessions. Then mailnest holds 10,000 idle connections while new sessions time their greeting,
 * and then 100 connections that pipeline recipients past the limit without ever reading a reply
 * while new sessions are greeted and deliver.
 *
 * Everything started here is stopped here (also on Ctrl-C); the temp directory is removed
 * unless --keep is given.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEhlo } from './after-ehlo.ts';
import { buildMailnest } from './build.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const NODE = process.execPath;
// The installed entry (compiled dist/ after npm install), as an operator runs it.
const CLI = path.join(ROOT, 'bin/mailnest.js');
const RCPT = 'bench@example.test';
const SENDER = 'sender@remote.test';

const { values: opt } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    idle: { type: 'string', default: '10000' },
    flood: { type: 'string', default: '100' },
    'no-throughput': { type: 'boolean', default: false },
    sizes: { type: 'string', default: '1024,102400' },
    sessions: { type: 'string', default: '1,20' },
    'cpu-prof': { type: 'string' },
    'no-postfix': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'warn' },
    keep: { type: 'boolean', default: false },
  },
});
const MESSAGES = positive(opt.messages, '--messages');
const IDLE = Number(opt.idle);
const FLOOD = Number(opt.flood);
const SIZES = opt.sizes.split(',').map((s) => positive(s, '--sizes'));
const SESSIONS = opt.sessions.split(',').map((s) => positive(s, '--sessions'));
const CPU_PROF = opt['cpu-prof'] ? path.resolve(opt['cpu-prof']) : undefined;
const WITH_POSTFIX = !opt['no-postfix'];
/** mailnest's log_level; at "info" its lines (one per session and per message) go to a file in
 *  the temp directory, as a service's go to its journal. */
const LOG_LEVEL = opt['log-level'];

function positive(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: a positive integer, not ${text}`);
  return n;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-bench-'));
const cleanups: (() => void)[] = [];
let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const c of cleanups.reverse()) {
    try { c(); } catch (err) { process.stderr.write(`cleanup: ${String(err)}\n`); }
  }
  if (!opt.keep) fs.rmSync(tmp, { recursive: true, force: true });
  else process.stderr.write(`kept ${tmp}\n`);
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => { cleanup(); process.exit(130); });
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ------------------------------------------------------------------ small helpers

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { input: input ?? '', encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Connects and resolves with the ms until the first line of the greeting arrived. */
function greeting(port: number, localAddress?: string, timeoutMs = 10_000): Promise<{ ms: number; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = net.connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    let buf = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no greeting within ${timeoutMs} ms`)); }, timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\n')) return;
      clearTimeout(timer);
      socket.off('data', onData);
      if (!buf.startsWith('220')) {
        socket.destroy();
        reject(new Error(`greeting: ${buf.trim()}`));
        return;
      }
      resolve({ ms: performance.now() - t0, socket });
    };
    socket.on('data', onData);
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

async function waitForGreeting(port: number, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { socket } = await greeting(port);
      socket.end('QUIT\r\n');
      socket.destroy();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what} did not answer on port ${port}: ${String(err)}`);
      await sleep(100);
    }
  }
}

function procStatus(pid: number, field: string): number {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, USER_HZ = 100
}

const MiB = 1024 * 1024;
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const sizeName = (bytes: number) => (bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`);

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => { clearTimeout(timer); resolve(true); });
  });
}

// ------------------------------------------------------------------ smtp-source

interface SourceResult {
  seconds: number;
}

/** Runs smtp-source with the benchmark's flags; resolves with the wall time. */
async function smtpSource(port: number, size: number, sessions: number, messages = MESSAGES): Promise<SourceResult> {
  const args = ['-s', String(sessions), '-l', String(size), '-m', String(messages), '-t', RCPT, '-f', SENDER, `127.0.0.1:${port}`];
  const t0 = performance.now();
  const child = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const killer = setTimeout(() => child.kill('SIGKILL'), 30 * 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(killer);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0 || stderr.trim()) throw new Error(`smtp-source ${args.join(' ')} failed (${code}): ${stderr.trim().split('\n').slice(0, 5).join(' | ')}`);
  return { seconds };
}

// ------------------------------------------------------------------ smtp-sink

async function startSink(): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn('smtp-sink', ['-u', 'nobody', `127.0.0.1:${port}`, '256'], { stdio: 'ignore' });
  const stop = async () => {
    child.kill('SIGTERM');
    if (!(await waitExit(child, 5000))) child.kill('SIGKILL');
  };
  cleanups.push(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await waitForGreeting(port, 'smtp-sink');
  return { port, stop };
}

// ------------------------------------------------------------------ durable floor

/** bench/durable-floor.ts: append + fdatasync per message, the ceiling of a durable server here. */
async function startFloor(): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const file = path.join(tmp, 'durable-floor.dat');
  const child = spawn(NODE, [path.join(ROOT, 'bench/durable-floor.ts'), String(port), file], { stdio: ['ignore', 'ignore', 'inherit'] });
  const stop = async () => {
    child.kill('SIGTERM');
    if (!(await waitExit(child, 5000))) child.kill('SIGKILL');
    fs.rmSync(file, { force: true });
  };
  cleanups.push(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await waitForGreeting(port, 'durable-floor');
  return { port, stop };
}

// ------------------------------------------------------------------ mailnest

interface Mailnest {
  pid: number;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

async function startMailnest(name: string, limits: Record<string, number> = {}): Promise<Mailnest> {
  const dir = path.join(tmp, 'mailnest', name);
  fs.mkdirSync(dir, { recursive: true });
  const dataDir = path.join(dir, 'data');
  const configFile = path.join(dir, 'mailnest.toml');
  const limitLines = Object.entries(limits).map(([k, v]) => `${k} = ${v}`);
  fs.writeFileSync(configFile, [
    `hostname = "mx.example.test"`,
    `domains = ["example.test"]`,
    `data_dir = ${tomlString(dataDir)}`,
    `log_level = ${tomlString(LOG_LEVEL)}`,
    '',
    '[listen]',
    'smtp = ["127.0.0.1:0"]',
    ...['submission', 'submissions', 'pop3', 'pop3s', 'imap', 'imaps', 'http'].map((l) => `${l} = []`),
    '',
    // The Postfix instance it is compared with does no SPF/DKIM/DMARC either (and the
    // benchmark must not query DNS).
    '[checks]',
    'enabled = false',
    '',
    ...(limitLines.length ? ['[limits]', ...limitLines, ''] : []),
  ].join('\n'));
  run(NODE, [CLI, '-c', configFile, 'user', 'add', RCPT, '--password-stdin'], 'bench-password\n');

  const nodeArgs = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF, '--cpu-prof-name', `mailnest-${name}.cpuprofile`] : [];
  const logFile = fs.openSync(path.join(dir, 'log'), 'w');
  const child = spawn(NODE, [...nodeArgs, CLI, '-c', configFile, 'start'], { stdio: ['ignore', logFile, 'pipe'] });
  fs.closeSync(logFile);
  cleanups.push(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let stderr = '';
  // The human-readable start banner on stderr names the bound address (port 0 -> real port).
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mailnest did not start: ${stderr}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
      const m = stderr.match(/^\s+smtp\s+127\.0\.0\.1:(\d+)/m);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`mailnest exited with ${code}: ${stderr}`)); });
  });
  child.stderr!.removeAllListeners('data');
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`mailnest: ${d}`));
  await waitForGreeting(port, 'mailnest');
  return {
    pid: child.pid!,
    port,
    dataDir,
    stop: async () => {
      child.kill('SIGTERM');
      if (!(await waitExit(child, 60_000))) {
        log('mailnest did not stop within 60 s; killing it');
        child.kill('SIGKILL');
        await waitExit(child, 5000);
      }
    },
  };
}

function storedMessages(dataDir: string): number {
  const configFile = path.join(path.dirname(dataDir), 'mailnest.toml');
  const users = JSON.parse(run(NODE, [CLI, '-c', configFile, 'user', 'list', '--json'])) as { address: string; messages: number }[];
  return users.find((u) => u.address === RCPT)?.messages ?? 0;
}

// ------------------------------------------------------------------ Postfix

interface Postfix {
  port: number;
  maildirNew: string;
  /** The master process's pid (its children are the smtpd and delivery processes). */
  masterPid(): number;
  stop(): void;
}

async function startPostfix(): Promise<Postfix> {
  const base = path.join(tmp, 'postfix');
  const conf = path.join(base, 'etc');
  const vmail = path.join(base, 'vmail');
  fs.mkdirSync(conf, { recursive: true });
  fs.mkdirSync(vmail, { recursive: true });
  fs.chownSync(vmail, 65534, 65534);
  // The postfix user must reach its queue directory through every parent.
  for (let d = base; d !== path.dirname(d) && d.startsWith(tmp); d = path.dirname(d)) fs.chmodSync(d, 0o755);
  const port = await freePort();

  const pc = (...args: string[]) => run('postconf', ['-c', conf, ...args]);
  fs.copyFileSync('/etc/postfix/master.cf', path.join(conf, 'master.cf'));
  fs.writeFileSync(path.join(conf, 'main.cf'), '');
  fs.writeFileSync(path.join(conf, 'vmailbox'), `${RCPT} bench/Maildir/\n`);
  pc(
    'compatibility_level = 3.6',
    `queue_directory = ${path.join(base, 'spool')}`,
    `data_directory = ${path.join(base, 'data')}`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    'myhostname = postfix.example.test',
    'mydomain = example.test',
    'myorigin = $myhostname',
    'mydestination = example.test',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    // Local mail (mydestination) goes to Maildir through virtual(8): no system account needed.
    'local_transport = virtual',
    'local_recipient_maps = $virtual_mailbox_maps',
    'virtual_mailbox_domains =',
    `virtual_mailbox_base = ${vmail}`,
    `virtual_mailbox_maps = texthash:${path.join(conf, 'vmailbox')}`,
    'virtual_uid_maps = static:65534',
    'virtual_gid_maps = static:65534',
    'alias_maps =',
    'alias_database =',
    // Nothing ever leaves this instance.
    'default_transport = error:benchmark instance, local delivery only',
    'relay_transport = error:benchmark instance, local delivery only',
    'biff = no',
    'smtputf8_enable = no',
  );
  // Its smtpd on its own loopback port only, no chroot (the temp queue directory has no chroot
  // files); the Debian default "smtp inet" on port 25 is removed.
  pc('-MX', 'smtp/inet');
  pc('-M', `127.0.0.1:${port}/inet = 127.0.0.1:${port} inet n - n - - smtpd`);
  pc('-F', '*/*/chroot = n');
  fs.mkdirSync(path.join(base, 'spool'), { recursive: true, mode: 0o755 });
  postfixCommand(conf, 'check');
  postfixCommand(conf, 'start');
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try { postfixCommand(conf, 'stop'); } catch (err) { log(String(err)); }
    // postfix stop returns before master is gone; wait for its pid file to go.
    const pidFile = path.join(base, 'spool', 'pid', 'master.pid');
    for (let i = 0; i < 100 && fs.existsSync(pidFile); i++) spawnSync('sleep', ['0.1']);
  };
  cleanups.push(stop);
  await waitForGreeting(port, 'Postfix smtpd');
  const masterPid = () => Number(fs.readFileSync(path.join(base, 'spool', 'pid', 'master.pid'), 'utf8').trim());
  return { port, maildirNew: path.join(vmail, 'bench', 'Maildir', 'new'), masterPid, stop };
}

/**
 * `postfix -c DIR COMMAND`. Postfix reports to syslog (absent here) and to stderr only when it is
 * a terminal, so the command runs under script(1) to get its fatal messages back.
 */
function postfixCommand(conf: string, command: string): void {
  const r = spawnSync('script', ['-qec', `postfix -c '${conf}' ${command}`, '/dev/null'], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`postfix ${command}: ${(r.stdout + r.stderr).trim() || `exit ${r.status ?? r.signal}`}`);
}

function countFiles(dir: string): number {
  try {
    return fs.readdirSync(dir).length;
  } catch {
    return 0;
  }
}

function emptyDir(dir: string): void {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) fs.rmSync(path.join(dir, n), { force: true });
}

/** Waits until `want` files are in dir; gives up when nothing new arrives for 120 s. */
async function waitDelivered(dir: string, want: number): Promise<number> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const n = countFiles(dir);
    if (n >= want) return n;
    if (n !== last) { last = n; lastChange = Date.now(); }
    if (Date.now() - lastChange > 120_000) throw new Error(`Postfix delivered ${n} of ${want} and then nothing for 120 s`);
    await sleep(20);
  }
}

// ------------------------------------------------------------------ the cases

interface Row {
  size: number;
  sessions: number;
  sink?: number;
  /** bench/durable-floor.ts: append + fdatasync, nothing else. */
  floor?: number;
  mailnest: number;
  mailnestRss: number;
  mailnestCpu: number;
  postfixAccept?: number;
  postfixDelivered?: number;
}

async function throughput(): Promise<Row[]> {
  const rows: Row[] = [];
  const sink = await startSink();
  const postfix = WITH_POSTFIX ? await startPostfix() : undefined;
  try {
    for (const size of SIZES) {
      for (const sessions of SESSIONS) {
        const label = `${sizeName(size)}, ${sessions} session${sessions > 1 ? 's' : ''}`;
        const sinkRun = await smtpSource(sink.port, size, sessions);
        log(`${label}: smtp-sink ${fmt(MESSAGES / sinkRun.seconds)} msg/s`);
        const floor = await startFloor();
        const floorRun = await smtpSource(floor.port, size, sessions);
        await floor.stop();
        log(`${label}: durable floor ${fmt(MESSAGES / floorRun.seconds)} msg/s`);

        const m = await startMailnest(`s${size}-c${sessions}`);
        const cpu0 = cpuSeconds(m.pid);
        const mRun = await smtpSource(m.port, size, sessions);
        const mailnestCpu = cpuSeconds(m.pid) - cpu0;
        const mailnestRss = procStatus(m.pid, 'VmHWM');
        await m.stop();
        const stored = storedMessages(m.dataDir);
        if (stored !== MESSAGES) throw new Error(`mailnest stored ${stored} of ${MESSAGES} messages`);
        fs.rmSync(path.dirname(m.dataDir), { recursive: true, force: true });
        log(`${label}: mailnest ${fmt(MESSAGES / mRun.seconds)} msg/s, peak RSS ${fmt(mailnestRss / MiB)} MiB, ${fmt(mailnestCpu, 1)} CPU s`);

        const row: Row = { size, sessions, sink: MESSAGES / sinkRun.seconds, floor: MESSAGES / floorRun.seconds, mailnest: MESSAGES / mRun.seconds, mailnestRss, mailnestCpu };
        if (postfix) {
          emptyDir(postfix.maildirNew);
          const t0 = performance.now();
          const pRun = await smtpSource(postfix.port, size, sessions);
          await waitDelivered(postfix.maildirNew, MESSAGES);
          const delivered = (performance.now() - t0) / 1000;
          row.postfixAccept = MESSAGES / pRun.seconds;
          row.postfixDelivered = MESSAGES / delivered;
          emptyDir(postfix.maildirNew);
          log(`${label}: Postfix ${fmt(row.postfixAccept)} msg/s accepted, ${fmt(row.postfixDelivered)} msg/s delivered to Maildir`);
        }
        rows.push(row);
      }
    }
  } finally {
    await sink.stop();
    postfix?.stop();
  }
  return rows;
}

interface IdleResult {
  held: number;
  rssBefore: number;
  rssHeld: number;
  hwm: number;
  openSeconds: number;
  greetings: number[];
  sourceWhileHeld?: number;
}

async function idle(): Promise<IdleResult> {
  const m = await startMailnest('idle', { max_connections: 20_000, max_connections_per_ip: 20_000 });
  const sockets: net.Socket[] = [];
  try {
    await sleep(500);
    const rssBefore = procStatus(m.pid, 'VmRSS');
    const t0 = performance.now();
    // 1,000 per source address (127.0.0.2, .3, ...), 200 connects in flight at a time.
    for (let i = 0; i < IDLE; i += 200) {
      const batch: Promise<{ socket: net.Socket }>[] = [];
      for (let j = i; j < Math.min(IDLE, i + 200); j++) batch.push(greeting(m.port, `127.0.0.${2 + Math.floor(j / 1000)}`, 30_000));
      for (const r of await Promise.all(batch)) {
        r.socket.on('error', () => {});
        sockets.push(r.socket);
      }
    }
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const rssHeld = procStatus(m.pid, 'VmRSS');
    const greetings: number[] = [];
    for (let i = 0; i < 50; i++) {
      const g = await greeting(m.port, '127.0.0.1');
      g.socket.end('QUIT\r\n');
      greetings.push(g.ms);
      await sleep(20);
    }
    // A short burst of real mail while the idle connections are held.
    const src = await smtpSource(m.port, 1024, 20, 1000);
    const hwm = procStatus(m.pid, 'VmHWM');
    const alive = sockets.filter((s) => !s.destroyed).length;
    if (alive !== IDLE) throw new Error(`only ${alive} of ${IDLE} idle connections survived`);
    return { held: alive, rssBefore, rssHeld, hwm, openSeconds, greetings, sourceWhileHeld: 1000 / src.seconds };
  } finally {
    for (const s of sockets) s.destroy();
    await m.stop();
  }
}

// ------------------------------------------------------------------ command flood

interface FloodResult {
  server: string;
  /** Bytes of RCPT lines the flooders got written: read by the server or waiting in the kernel's buffers. */
  sent: number;
  /** Proportional set size of the server's processes (PSS: shared pages divided among them). */
  memBefore: number;
  memFlooded: number;
  /** Milliseconds to each new session's greeting; Infinity where none came within 5 s. */
  greetings: number[];
  /** Messages a new session after another delivered in 10 s (5 s allowed per reply). */
  delivered: number;
}

const FLOOD_BYTES = 24_000_000;

/** The PSS of a process and its children, in bytes. */
function pssTree(pid: number): number {
  let total = 0;
  const visit = (p: number) => {
    try {
      const m = fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m);
      total += Number(m?.[1] ?? 0) * 1024;
      const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const c of children ? children.split(' ') : []) visit(Number(c));
    } catch { /* gone meanwhile */ }
  };
  visit(pid);
  return total;
}

/** One SMTP dialogue, each reply awaited at most `timeoutMs`; true when the message got its 250. */
function deliverOne(port: number, timeoutMs: number): Promise<boolean> {
  const steps = ['EHLO probe.example.test', `MAIL FROM:<${SENDER}>`, `RCPT TO:<${RCPT}>`, 'DATA', 'Subject: probe\r\n\r\nwhile flooded\r\n.', 'QUIT'];
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    let step = -1;
    let buf = '';
    let timer: NodeJS.Timeout;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(false), timeoutMs);
    };
    arm();
    s.on('error', () => done(false));
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!/(^|\n)\d{3} [^\n]*\n$/.test(buf)) return;
      const code = buf.slice(buf.lastIndexOf('\n', buf.length - 2) + 1).slice(0, 3);
      buf = '';
      if (step === 4) return done(code === '250');
      if (!/^[23]/.test(code)) return done(false);
      step++;
      arm();
      s.write(`${steps[step]}\r\n`);
    });
  });
}

/**
 * RFC 2920 §3.1 lets a client pipeline commands; clients that never read their replies must cost
 * the server a bounded amount and must not shut others out. FLOOD connections each send up to
 * 24 MB of `RCPT` lines after their EHLO and a MAIL, as fast as the server reads them, and read
 * nothing: recipients past the limit, each answered 452, the command both servers take longest
 * (about 1,100 before they close the session, smtpd_recipient_overshoot_limit in Postfix; RSET,
 * NOOP or HELP they cut off after 120) (50 from each of
 * 127.0.0.3, 127.0.0.4, ..., the servers' default limits per client). After 5 s, ten new
 * sessions time their greeting, and then new sessions deliver one message after another for 10 s.
 * `pid`: the server's process; its children count too.
 */
async function floodServer(server: string, port: number, pid: number): Promise<FloodResult> {
  const sockets: net.Socket[] = [];
  let sent = 0;
  try {
    const memBefore = pssTree(pid);
    const block = Buffer.from('RCPT TO:<bench@example.test>\r\n'.repeat(10_000));
    for (let i = 0; i < FLOOD; i++) {
      // 50 from each address: within both servers' default limit per client.
      const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${3 + Math.floor(i / 50)}` });
      s.on('error', () => {});
      let mine = 0;
      const pump = () => {
        while (mine < FLOOD_BYTES) {
          mine += block.length;
          sent += block.length;
          if (!s.write(block)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      // From EHLO's reply on, nothing is read.
      afterEhlo(s, () => {
        s.write('MAIL FROM:<flood@remote.test>\r\n');
        pump();
      });
      sockets.push(s);
    }
    await sleep(5000);
    const greetings: number[] = [];
    for (let i = 0; i < 10; i++) {
      try {
        const g = await greeting(port, '127.0.0.2', 5000);
        g.socket.end('QUIT\r\n');
        greetings.push(g.ms);
      } catch {
        greetings.push(Infinity);
      }
      await sleep(50);
    }
    let delivered = 0;
    for (const end = performance.now() + 10_000; performance.now() < end;) {
      if (await deliverOne(port, 5000)) delivered++;
    }
    const memFlooded = pssTree(pid);
    // What a write has queued in this process never left it.
    sent -= sockets.reduce((n, s) => n + s.writableLength, 0);
    return { server, sent, memBefore, memFlooded, greetings, delivered };
  } finally {
    for (const s of sockets) s.destroy();
  }
}

async function flood(): Promise<FloodResult[]> {
  const results: FloodResult[] = [];
  const m = await startMailnest('flood');
  try {
    await sleep(500);
    results.push(await floodServer('mailnest', m.port, m.pid));
  } finally {
    await m.stop();
  }
  if (WITH_POSTFIX) {
    const p = await startPostfix();
    try {
      results.push(await floodServer('Postfix', p.port, p.masterPid()));
    } finally {
      p.stop();
    }
  }
  return results;
}

// ------------------------------------------------------------------ report

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function report(rows: Row[], idleResult: IdleResult | undefined, floodResults: FloodResult[]): string {
  const lines: string[] = [];
  if (rows.length > 0) {
    lines.push(`${MESSAGES.toLocaleString('en-US')} messages per case; msg/s = messages / wall time of smtp-source (Postfix delivered: until the last message is in the Maildir).`, '');
    lines.push('Durable floor: bench/durable-floor.ts, a Node server that only appends each message to a file and fdatasyncs it before its 250.', '');
    lines.push('| message | sessions | smtp-sink (protocol only) | durable floor | mailnest (250 = durable) | Postfix accepted | Postfix delivered to Maildir | mailnest / Postfix delivered | floor / Postfix delivered | mailnest peak RSS | mailnest CPU |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    const opt = (n: number | undefined) => (n ? fmt(n) : '–');
    const times = (n: number | undefined, d: number | undefined) => (n && d ? `${fmt(n / d, 2)}×` : '–');
    for (const r of rows) {
      lines.push(`| ${sizeName(r.size)} | ${r.sessions} | ${opt(r.sink)} | ${opt(r.floor)} | ${fmt(r.mailnest)} | ${opt(r.postfixAccept)} | ${opt(r.postfixDelivered)} | ${times(r.mailnest, r.postfixDelivered)} | ${times(r.floor, r.postfixDelivered)} | ${fmt(r.mailnestRss / MiB)} MiB | ${fmt(r.mailnestCpu, 1)} s |`);
    }
  }
  if (idleResult) {
    const g = idleResult.greetings;
    lines.push('');
    lines.push(`Idle connections: ${fmt(idleResult.held)} held open (opened in ${fmt(idleResult.openSeconds, 1)} s)`);
    lines.push('');
    lines.push('| | |');
    lines.push('|---|---:|');
    lines.push(`| mailnest RSS before | ${fmt(idleResult.rssBefore / MiB, 1)} MiB |`);
    lines.push(`| mailnest RSS with ${fmt(idleResult.held)} idle connections | ${fmt(idleResult.rssHeld / MiB, 1)} MiB |`);
    lines.push(`| per idle connection | ${fmt((idleResult.rssHeld - idleResult.rssBefore) / idleResult.held / 1024, 1)} KiB |`);
    lines.push(`| new session's 220 greeting while held (${g.length} tries): median / p90 / max | ${fmt(percentile(g, 50), 2)} / ${fmt(percentile(g, 90), 2)} / ${fmt(Math.max(...g), 2)} ms |`);
    if (idleResult.sourceWhileHeld) lines.push(`| 1,000 × 1 KiB, 20 sessions, while held | ${fmt(idleResult.sourceWhileHeld)} msg/s |`);
    lines.push(`| mailnest peak RSS (whole idle run) | ${fmt(idleResult.hwm / MiB, 1)} MiB |`);
  }
  if (floodResults.length > 0) {
    lines.push('');
    lines.push(`Command flood: ${fmt(FLOOD)} connections pipelining recipients past the limit without reading a reply; new sessions from another address meanwhile`);
    lines.push('');
    lines.push('| server | RCPT lines sent (read, or in the kernel\'s buffers) | memory (PSS) before | memory flooded | new session\'s greeting, median / max of 10 | messages delivered in 10 s, one session after another |');
    lines.push('|---|---:|---:|---:|---:|---:|');
    const ms = (n: number) => (Number.isFinite(n) ? `${fmt(n, 1)} ms` : 'none in 5 s');
    for (const r of floodResults) {
      lines.push(`| ${r.server} | ${fmt(r.sent / MiB)} MiB | ${fmt(r.memBefore / MiB, 1)} MiB | ${fmt(r.memFlooded / MiB, 1)} MiB | ${ms(percentile(r.greetings, 50))} / ${ms(Math.max(...r.greetings))} | ${fmt(r.delivered)} |`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  buildMailnest();
  const cpus = os.cpus();
  const git = spawnSync('git', ['-C', ROOT, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).stdout.trim() || 'unknown';
  const machine = `${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, ${fmt(os.totalmem() / 1024 ** 3, 1)} GiB, Node ${process.version}, Postfix ${run('postconf', ['-h', 'mail_version']).trim()}, mailnest ${git}`;
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  log(`mailnest SMTP accept benchmark: ${machine}; temp ${tmp}`);
  const loadBefore = load();
  if (CPU_PROF) fs.mkdirSync(CPU_PROF, { recursive: true });
  const rows = opt['no-throughput'] ? [] : await throughput();
  const idleResult = IDLE > 0 ? await idle() : undefined;
  const floodResults = FLOOD > 0 ? await flood() : [];
  // Other work on the machine skews every figure: the load average says whether it was quiet.
  process.stdout.write(`\n${machine}; load average ${loadBefore} before, ${load()} after\n${report(rows, idleResult, floodResults)}\n`);
}

main().then(() => {
  cleanup();
  process.exit(0);
}, (err: unknown) => {
  process.stderr.write(`smtp-accept: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  cleanup();
  process.exit(1);
});
