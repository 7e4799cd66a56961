/**
 * bench/pop3-retr: full POP3 downloads (LIST, every RETR, QUIT, pipelined) from mailnest and from
 * Dovecot serving the same messages, 1,000 x 10 KiB and 100 x 1 MiB; mpop as a real client
 * against both; then 1,000 concurrent mailnest POP3 sessions and the server's RSS.
 *
 *   node_modules/.bin/node bench/pop3-retr/run.ts [--runs N] [--sessions N]
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newQueueId } from '../../src/store/queue-id.ts';
import { baseConfig, startMailnest, writeConfig } from '../../test/helpers/server.ts';
import { connect, download, login, type DownloadResult } from './client.ts';
import { dovecotAvailable, startDovecot } from './dovecot.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('--runs', 21);
const SESSIONS = opt('--sessions', 1000);
const PASSWORD = 'bench password';

/** A plain-text message of exactly `size` octets, CRLF lines, some starting with "." (stuffed). */
function makeMessage(i: number, size: number): Buffer {
  const head = `From: Sender <sender@example.org>\r\nTo: user@bench.test\r\nSubject: benchmark message ${i}\r\nMessage-ID: <${i}.${size}@bench.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n`;
  const parts: string[] = [head];
  let len = head.length;
  let n = 0;
  while (len < size) {
    let line = (n % 40 === 7 ? '.' : '') + `line ${n} of message ${i}: ` + 'lorem ipsum dolor sit amet consectetur '.repeat(2);
    line = line.slice(0, 74) + '\r\n';
    if (len + line.length > size) line = 'x'.repeat(Math.max(0, size - len - 2)) + '\r\n';
    if (len + line.length > size) line = line.slice(line.length - (size - len));
    parts.push(line);
    len += line.length;
    n++;
  }
  const b = Buffer.from(parts.join(''), 'latin1');
  if (b.length !== size) throw new Error(`message size ${b.length} != ${size}`);
  return b;
}

/** A scrypt hash in mailnest's format with a low cost: 1,000 bench logins stay quick. */
function cheapHash(password: string): string {
  const salt = crypto.randomBytes(16);
  const hash = crypto.scryptSync(password, salt, 32, { N: 1024, r: 8, p: 1 });
  return `$scrypt$N=1024,r=8,p=1$${salt.toString('base64')}$${hash.toString('base64')}`;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function mpopRun(port: number, user: string, dir: string): number {
  const mbox = path.join(dir, `mpop-${port}.mbox`);
  fs.rmSync(mbox, { force: true });
  const start = process.hrtime.bigint();
  const r = spawnSync('mpop', [
    '--host=127.0.0.1', `--port=${port}`, `--user=${user}`, `--passwordeval=echo ${PASSWORD}`, '--tls=off', '--auth=user',
    '--keep=on', '--only-new=off', '--received-header=off', '--pipelining=on', `--deliver=mbox,${mbox}`,
  ], { encoding: 'utf8', env: { ...process.env, HOME: dir } });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`mpop failed: ${r.stderr}`);
  fs.rmSync(mbox, { force: true });
  return seconds;
}

interface Row { name: string; server: string; msgs: number; mbps: number; seconds: number }

async function main(): Promise<void> {
  const missing = dovecotAvailable();
  if (missing) throw new Error(missing);
  const hasMpop = spawnSync('mpop', ['--version']).status === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-bench-pop3-'));
  fs.chmodSync(dir, 0o755);
  const sets = [
    { name: '1,000 x 10 KiB', user: 'small', count: 1000, size: 10 * 1024 },
    { name: '100 x 1 MiB', user: 'large', count: 100, size: 1024 * 1024 },
  ];
  const messages = new Map(sets.map((s) => [s.user, Array.from({ length: s.count }, (_, i) => makeMessage(i, s.size))]));

  // mailnest: the same bytes, no trace prefix, in its data directory.
  const mdir = path.join(dir, 'mailnest');
  fs.mkdirSync(mdir);
  const cfgFile = writeConfig(mdir, baseConfig(mdir, {
    log_level: 'info',
    auth: { allow_insecure: true },
    limits: { max_connections_per_ip: SESSIONS + 100, max_connections: SESSIONS + 100 },
    listen: { smtp: [], submission: [], submissions: [], pop3: ['127.0.0.1:0'], pop3s: [], imap: [], imaps: [], http: [] },
  }));
  const store = new SqliteStore(path.join(mdir, 'data'));
  for (const s of sets) {
    const u = await store.createUser(`${s.user}@bench.test`, cheapHash(PASSWORD));
    await Promise.all(messages.get(s.user)!.map((m) => store.accept({ id: newQueueId(), body: [m], sender: 'sender@example.org', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] })));
  }
  const hash = cheapHash(PASSWORD);
  const small = makeMessage(0, 2048);
  for (let i = 0; i < SESSIONS; i++) {
    const u = await store.createUser(`c${i}@bench.test`, hash);
    void store.accept({ id: newQueueId(), body: [small], sender: 'sender@example.org', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  }
  await store.accept({ id: newQueueId(), body: [small], sender: 's@example.org', local: [] });
  store.close();

  const mailnest = await startMailnest(mdir, cfgFile);
  const dovecot = await startDovecot(path.join(dir, 'dovecot'), sets.map((s) => ({ name: `${s.user}@bench.test`, password: PASSWORD, messages: messages.get(s.user)! })));
  // Only their sizes are needed from here on: 110 MB of messages kept alive would slow this
  // process's collections, and with them the client both servers are timed by.
  const expectedBytes = new Map([...messages].map(([user, ms]) => [user, ms.reduce((n, m) => n + m.length, 0)]));
  messages.clear();
  const servers = [
    { server: 'mailnest', port: mailnest.port('pop3') },
    { server: 'Dovecot', port: dovecot.port },
  ];
  const rows: Row[] = [];
  const mpopRows: { name: string; server: string; seconds: number }[] = [];
  try {
    for (const s of sets) {
      const expected = expectedBytes.get(s.user)!;
      const results = new Map<string, DownloadResult[]>();
      for (const sv of servers) await download(sv.port, `${s.user}@bench.test`, PASSWORD, s.count); // warm-up (indexes, caches)
      for (let r = 0; r < RUNS; r++) {
        for (const sv of servers) {
          const res = await download(sv.port, `${s.user}@bench.test`, PASSWORD, s.count);
          // Both must send the same stuffed bodies: the un-stuffed total plus one "." per dot line.
          if (res.bodyBytes < expected) throw new Error(`${sv.server} sent ${res.bodyBytes} body octets, expected at least ${expected}`);
          results.set(sv.server, [...(results.get(sv.server) ?? []), res]);
        }
      }
      for (const sv of servers) {
        const rs = results.get(sv.server)!;
        const seconds = median(rs.map((x) => x.seconds));
        const bytes = rs[0]!.bytes;
        rows.push({ name: s.name, server: sv.server, seconds, msgs: s.count / seconds, mbps: bytes / seconds / 1e6 });
      }
      const bodies = new Set([...results.values()].map((rs) => rs[0]!.bodyBytes));
      if (bodies.size !== 1) throw new Error(`the servers sent different bodies: ${[...bodies].join(' vs ')}`);
      if (hasMpop) {
        for (const sv of servers) {
          mpopRun(sv.port, `${s.user}@bench.test`, dir);
          const times: number[] = [];
          for (let r = 0; r < Math.min(RUNS, 3); r++) times.push(mpopRun(sv.port, `${s.user}@bench.test`, dir));
          mpopRows.push({ name: s.name, server: sv.server, seconds: median(times) });
        }
      }
    }

    // 1,000 concurrent sessions, each logged in to its own maildrop (RFC 1939 §8 locks one session per maildrop).
    const pid = mailnest.process.pid!;
    const idle = rssKiB(pid);
    const port = mailnest.port('pop3');
    const conns: Awaited<ReturnType<typeof connect>>[] = [];
    for (let i = 0; i < SESSIONS; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, SESSIONS - i) }, async (_, k) => {
        const c = await connect(port);
        await login(c.socket, c.reader, `c${i + k}@bench.test`, PASSWORD);
        return c;
      }));
      conns.push(...batch);
    }
    const held = rssKiB(pid);
    // Every session is live: each retrieves its message while all are open.
    await Promise.all(conns.map(async ({ socket, reader }) => {
      socket.write('RETR 1\r\n');
      const st = await reader.line();
      if (!st.startsWith('+OK')) throw new Error(`RETR in concurrent session: ${st}`);
      await reader.body();
    }));
    const afterRetr = rssKiB(pid);
    await Promise.all(conns.map(async ({ socket, reader }) => {
      socket.write('QUIT\r\n');
      await reader.line();
      socket.destroy();
    }));

    // Report.
    const lines: string[] = [];
    lines.push(`Machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${spawnSync('dovecot', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ')[0]} Dovecot; median of ${RUNS} runs after one warm-up.`);
    lines.push('');
    lines.push('| mailbox | server | msg/s | MB/s | seconds | mailnest / Dovecot |');
    lines.push('|---|---|---:|---:|---:|---:|');
    for (const s of sets) {
      const a = rows.find((r) => r.name === s.name && r.server === 'mailnest')!;
      const b = rows.find((r) => r.name === s.name && r.server === 'Dovecot')!;
      lines.push(`| ${s.name} | mailnest | ${a.msgs.toFixed(0)} | ${a.mbps.toFixed(0)} | ${a.seconds.toFixed(3)} | **${(a.msgs / b.msgs).toFixed(2)}x** |`);
      lines.push(`| ${s.name} | Dovecot | ${b.msgs.toFixed(0)} | ${b.mbps.toFixed(0)} | ${b.seconds.toFixed(3)} | |`);
    }
    if (mpopRows.length > 0) {
      lines.push('');
      lines.push('mpop (USER/PASS, pipelining, delivery to an mbox file; wall time including login and delivery):');
      lines.push('');
      lines.push('| mailbox | server | seconds | msg/s |');
      lines.push('|---|---|---:|---:|');
      for (const r of mpopRows) lines.push(`| ${r.name} | ${r.server} | ${r.seconds.toFixed(3)} | ${(sets.find((s) => s.name === r.name)!.count / r.seconds).toFixed(0)} |`);
    }
    lines.push('');
    lines.push(`Concurrent sessions: ${SESSIONS} logged-in POP3 sessions held open at once (each then RETR + QUIT): mailnest RSS ${(idle / 1024).toFixed(0)} MiB idle, ${(held / 1024).toFixed(0)} MiB with ${SESSIONS} sessions (${((held - idle) / SESSIONS).toFixed(1)} KiB per session), ${(afterRetr / 1024).toFixed(0)} MiB after each retrieved a message.`);
    console.log(lines.join('\n'));
  } finally {
    await mailnest.stop();
    await dovecot.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
