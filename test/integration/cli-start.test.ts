import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { addUser, baseConfig, cli, NODE, ROOT, startMailnest, tempDir, writeConfig } from '../helpers/server.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { until } from '../helpers/relay.ts';

test('start: listens, makes a self-signed certificate, stops on SIGTERM with exit 0', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const server = await startMailnest(dir, cfg);
  assert.ok(server.port('smtp') > 0 && server.port('submission') > 0 && server.port('pop3') > 0 && server.port('http') > 0);
  assert.match(fs.readFileSync(server.certFile, 'utf8'), /BEGIN CERTIFICATE/);
  assert.equal(await server.stop(), 0);
  assert.ok(server.logs.some((l) => l.msg === 'stopped'));
});

test('start: the way to add a mailbox it prints is a command that works from where it was started', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const server = await startMailnest(dir, cfg, { cwd: dir });
  try {
    // The banner follows the "listening" line.
    await until('the banner', () => server.stderr().includes('add a mailbox'), 10_000);
    const hint = /^add a mailbox with: (.*)$/m.exec(server.stderr())?.[1];
    assert.equal(hint, `node ${path.join(ROOT, 'bin', 'mailnest.js')} -c ${path.resolve(cfg)} user add you@example.test`);
    const [command, ...args] = hint!.split(' ');
    const added = spawnSync(command!, [...args, '--password-stdin'], { cwd: dir, input: 'pw-1234567\n', encoding: 'utf8', timeout: 60_000 });
    assert.equal(added.status, 0, added.stderr);
    assert.match(cli(cfg, ['user', 'list']).stdout, /you@example\.test/);
  } finally {
    await server.stop();
  }
  // With a mailbox there, the banner says no more of it.
  const again = await startMailnest(dir, cfg, { cwd: dir });
  try {
    // The banner is one write: its first line comes with the rest.
    await until('the banner', () => again.stderr().includes('mailnest is running'), 10_000);
    assert.ok(!again.stderr().includes('add a mailbox'), again.stderr());
  } finally {
    await again.stop();
  }
});

test('start: the server runs with a semi-space of at most 8 MiB, as the same process; an operator\'s own setting wins', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const nodeArgs = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const launcher = path.join(ROOT, 'bin', 'mailnest.js');
  const server = await startMailnest(dir, cfg, { entry: launcher });
  try {
    // The pid the caller holds is the server's: signals and a service manager reach it.
    assert.ok(nodeArgs(server.process.pid!).includes('--max-semi-space-size=8'), nodeArgs(server.process.pid!).join(' '));
  } finally {
    assert.equal(await server.stop(), 0);
  }
  const own = await startMailnest(dir, cfg, { entry: launcher, env: { NODE_OPTIONS: '--max-semi-space-size=4' } });
  try {
    assert.ok(!nodeArgs(own.process.pid!).some((a) => a.startsWith('--max-semi-space-size')));
  } finally {
    assert.equal(await own.stop(), 0);
  }
});

test('start: the self-signed certificate is one Apple clients take (825 days, serverAuth), and is made again near its end', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  let server = await startMailnest(dir, cfg);
  await server.stop();
  const DAY = 86_400_000;
  const cert = new crypto.X509Certificate(fs.readFileSync(server.certFile));
  assert.ok(cert.validFromDate.getTime() < Date.now() - DAY / 2, 'valid from before now, for clocks a little behind');
  assert.ok(cert.validToDate.getTime() - cert.validFromDate.getTime() <= 825 * DAY);
  assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  assert.equal(cert.ca, false);
  // One that ends tomorrow, and one made for ten years without usage extensions (as earlier
  // versions made it), are replaced at the next start.
  const keyFile = path.join(dir, 'data', 'tls', 'selfsigned-key.pem');
  for (const days of ['1', '3650']) {
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', days, '-subj', '/CN=mx.example.test', '-keyout', keyFile, '-out', server.certFile]);
    assert.equal(made.status, 0, made.stderr?.toString());
    server = await startMailnest(dir, cfg);
    await server.stop();
    const renewed = new crypto.X509Certificate(fs.readFileSync(server.certFile));
    assert.ok(renewed.validToDate.getTime() - Date.now() > 800 * DAY && renewed.keyUsage?.includes('1.3.6.1.5.5.7.3.1'), `${days}: ends ${renewed.validTo}`);
  }
});

test('start: one server per data_dir; nothing a crash leaves stands in the way', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const server = await startMailnest(dir, cfg);
  const pidFile = path.join(dir, 'data', 'server.pid');
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${server.process.pid}\n`);
  const second = cli(cfg, ['start']);
  assert.equal(second.status, 1);
  assert.equal(second.stderr, `mailnest: data_dir ${path.join(dir, 'data')} is in use by another mailnest server (pid ${server.process.pid}); stop it, or give this one a data_dir of its own\n`);
  assert.equal(await server.stop(), 0);
  assert.ok(!fs.existsSync(pidFile), 'the pid file goes with the server');
  // Killed: the system lets go of the lock, and a pid file naming a process that runs (this
  // one, as after a reboot where the old pid went to another program) is no obstacle.
  const killed = await startMailnest(dir, cfg);
  await killed.kill();
  fs.writeFileSync(pidFile, `${process.pid}\n`);
  const again = await startMailnest(dir, cfg);
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${again.process.pid}\n`);
  assert.equal(await again.stop(), 0);
});

test('a command of a newer version does not bring the database up to date under a server of the version before', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  addUser(cfg, 'alice@example.test', 'pw');
  const server = await startMailnest(dir, cfg);
  const file = path.join(dir, 'data', 'mailnest.sqlite');
  try {
    // The running server as one of the version before: its database a schema behind this one's.
    const db = new DatabaseSync(file);
    const version = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    db.exec(`PRAGMA user_version = ${version - 1}`);
    db.close();
    const r = cli(cfg, ['user', 'list']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `mailnest: the database in ${path.join(dir, 'data')} has schema ${version - 1} and this mailnest needs ${version}, but a mailnest server of the version before still runs on it (pid ${server.process.pid}): stop it and start this version's server (which brings the database up to date), then run this command again\n`);
    const after = new DatabaseSync(file, { readOnly: true });
    assert.equal((after.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, version - 1, 'migrated under the server');
    after.close();
  } finally {
    await server.stop();
  }
  // With the server stopped, the command does it.
  const r = cli(cfg, ['user', 'list']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /alice@example\.test/);
});

test('start: a busy port is one line on stderr and exit 1', async () => {
  const dir = tempDir();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  const cfg = writeConfig(dir, baseConfig(dir, { listen: { pop3: [`127.0.0.1:${port}`] } }));
  const r = cli(cfg, ['start']);
  blocker.close();
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `mailnest: listen.pop3: cannot listen on 127.0.0.1:${port}: EADDRINUSE: another program listens there, or another listener of this file under another name for the address; stop it, or choose another address\n`);
});

test('start: a busy second HTTP address is exit 1 too, the first let go (it kept the process running, deaf to SIGTERM)', async () => {
  const dir = tempDir();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  const cfg = writeConfig(dir, baseConfig(dir, { listen: { http: ['127.0.0.1:0', `127.0.0.1:${port}`] } }));
  const r = cli(cfg, ['start']);
  blocker.close();
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^mailnest: listen\\.http: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
});

test('start: files the config names are relative to it, and one it cannot read is named by its key', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, { relay: { ca_file: 'ca/extra.pem' } }));
  const r = cli(cfg, ['start']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `mailnest: relay.ca_file = ${JSON.stringify(path.join(dir, 'ca/extra.pem'))} cannot be read (ENOENT); name a readable PEM file\n`);
});

test('start: a relay.ca_file that holds no PEM certificate, or one that cannot be read, is refused by its key', () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'ca'));
  const file = path.join(dir, 'ca/extra.pem');
  const cfg = writeConfig(dir, baseConfig(dir, { relay: { ca_file: 'ca/extra.pem' } }));
  fs.writeFileSync(file, 'garbage\n');
  let r = cli(cfg, ['start']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `mailnest: relay.ca_file = ${JSON.stringify(file)} holds no PEM certificate; name a file of PEM certificates ("-----BEGIN CERTIFICATE-----" blocks)\n`);
  fs.writeFileSync(file, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
  r = cli(cfg, ['start']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^mailnest: relay\.ca_file = \S+ has a certificate that cannot be read \(number 1 of 1\); name a file of PEM certificates/);
});

test('start: a bad config value stops it before anything listens', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, { limits: { max_recipients: -3 } }));
  const r = cli(cfg, ['start']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^mailnest: .*limits\.max_recipients = -3 is not allowed: expected more than 0\n$/);
});

test('the package bin entry runs the CLI (compiled or from source, whichever is current)', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: { mailnest: string } };
  const r = spawnSync(NODE, [path.join(ROOT, pkg.bin.mailnest), '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${pkg.version}\n`);
  const usage = spawnSync(NODE, [path.join(ROOT, pkg.bin.mailnest), 'user', 'nope'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
});

test('a terminal closed under the server (EIO on its log) leaves it serving, and SIGTERM still stops it with exit 0', async () => {
  const dir = tempDir();
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const off = { submission: [], submissions: [], pop3: [], pop3s: [], http: [] };
  const cfg = writeConfig(dir, baseConfig(dir, { listen: { ...off, smtp: [`127.0.0.1:${port}`] } }));
  // The server on a terminal of its own, which is then closed, as an ssh connection that drops.
  const script = `
import json, os, pty, signal, socket, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], '-c', sys.argv[3], 'start'])
seen = b''
while b'is running' not in seen:
    seen += os.read(fd, 4096)
os.close(fd)
time.sleep(0.5)
out = {}
try:
    s = socket.create_connection(('127.0.0.1', int(sys.argv[4])), timeout=5)
    out['greeting'] = s.recv(200).decode()
    s.sendall(b'QUIT\\r\\n')
    s.recv(200)
    s.close()
except Exception as e:
    out['greeting'] = repr(e)
os.kill(pid, signal.SIGTERM)
def gave_up(*_):
    os.kill(pid, signal.SIGKILL)
    print(json.dumps({**out, 'exit': 'hung'})); sys.exit(0)
signal.signal(signal.SIGALRM, gave_up)
signal.alarm(20)
_, status = os.waitpid(pid, 0)
print(json.dumps({**out, 'exit': os.waitstatus_to_exitcode(status)}))
`;
  const r = spawnSync('python3', ['-c', script, NODE, path.join(ROOT, 'bin', 'mailnest.js'), cfg, String(port)], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { greeting: string; exit: number | string };
  assert.match(result.greeting, /^220 /);
  assert.equal(result.exit, 0);
});

/** An SMTP session of `server` that has reached DATA's 354. */
async function inData(server: Awaited<ReturnType<typeof startMailnest>>): Promise<SmtpClient> {
  const c = await SmtpClient.open(server.port('smtp'));
  await c.ehlo();
  await c.cmd('MAIL FROM:<a@remote.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  assert.equal((await c.cmd('DATA')).code, 354);
  return c;
}

test('a stop signal delivered twice at once (Ctrl-C to the server and to npm, which passes it on) still stops in order; a second one later ends it at once', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  addUser(cfg, 'alice@example.test', 'pw');
  const server = await startMailnest(dir, cfg);
  const c = await inData(server);
  server.process.kill('SIGINT');
  // The forwarded copy, a moment later (two at once would reach the process as one).
  await new Promise((resolve) => setTimeout(resolve, 50));
  server.process.kill('SIGINT');
  await until('stopping', () => server.logs.some((l) => l.msg === 'stopping'), 10_000);
  // The transaction under way finishes: the repeat was not taken for a second request.
  assert.equal((await c.cmd('Subject: x\r\n\r\nbody\r\n.')).code, 250);
  assert.equal(await server.stop(), 0);
  assert.ok(server.logs.some((l) => l.msg === 'stopped'));

  const again = await startMailnest(dir, cfg);
  const d = await inData(again);
  const e = await SmtpClient.open(again.port('smtp'));
  await e.ehlo();
  assert.equal((await e.cmd('MAIL FROM:<late@remote.test>')).code, 250);
  again.process.kill('SIGINT');
  await until('stopping', () => again.logs.some((l) => l.msg === 'stopping'), 10_000);
  await new Promise((resolve) => setTimeout(resolve, 1200));
  // A line logged just before the second signal is in the log all the same.
  assert.equal((await e.cmd('RCPT TO:<nobody@example.test>')).code, 550);
  again.process.kill('SIGINT');
  await new Promise((resolve) => again.process.once('exit', resolve));
  assert.equal(again.process.signalCode, 'SIGINT');
  await until('the output read', () => again.process.stdout!.readableEnded, 5_000);
  assert.ok(again.logs.some((l) => l.msg === 'refused' && l.from === 'late@remote.test'), JSON.stringify(again.logs.slice(-3)));
  d.destroy();
  e.destroy();
});

/** A Node older than 24 on this machine, which runs the launcher's hand-over to the pinned one. */
const OLD_NODE = ['/usr/bin/node', '/usr/local/bin/node'].find((n) => {
  const r = spawnSync(n, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && Number(/^v(\d+)/.exec(r.stdout)?.[1]) < 24;
});

test('on an older Node the launcher runs the pinned one, with its exit status, and ends by the signal that ended it', { skip: OLD_NODE ? false : 'no Node older than 24 here' }, async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const launcher = path.join(ROOT, 'bin', 'mailnest.js');
  assert.equal(spawnSync(OLD_NODE!, [launcher, '-c', cfg, 'user', 'list'], { encoding: 'utf8' }).status, 0);
  assert.equal(spawnSync(OLD_NODE!, [launcher, '-c', cfg, 'no-such-command'], { encoding: 'utf8' }).status, 2);
  // sendmail waiting for its message, its Node killed: the caller must not read "queued".
  const run = spawn(OLD_NODE!, [launcher, '-c', cfg, 'sendmail', 'alice@example.test'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const children = `/proc/${run.pid}/task/${run.pid}/children`;
  await until('the pinned Node', () => fs.readFileSync(children, 'utf8').trim() !== '', 20_000);
  process.kill(Number(fs.readFileSync(children, 'utf8').trim().split(' ')[0]), 'SIGTERM');
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => run.once('exit', (c, s) => resolve([c, s])));
  assert.deepEqual([code, signal], [null, 'SIGTERM']);
});

test('on an older Node the pinned one runs the server with the semi-space cap, or with the operator\'s own', { skip: OLD_NODE ? false : 'no Node older than 24 here' }, async (t) => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const launcher = path.join(ROOT, 'bin', 'mailnest.js');
  for (const [own, expected] of [[[], '--max-semi-space-size=8'], [['--max-semi-space-size=4'], '--max-semi-space-size=4']] as const) {
    const run = spawn(OLD_NODE!, [...own, launcher, '-c', cfg, 'start'], { stdio: 'ignore' });
    t.after(() => run.kill('SIGKILL'));
    const children = `/proc/${run.pid}/task/${run.pid}/children`;
    await until('the pinned Node', () => fs.readFileSync(children, 'utf8').trim() !== '', 20_000);
    const child = Number(fs.readFileSync(children, 'utf8').trim().split(' ')[0]);
    // The pinned Node outlives a launcher killed outright: it goes too, whatever happens.
    t.after(() => { try { process.kill(child, 'SIGKILL'); } catch { /* gone */ } });
    // Until the child has become the pinned Node (exec), it shows the launcher's command line.
    await until('the pinned Node\'s exec', () => fs.readlinkSync(`/proc/${child}/exe`) !== fs.realpathSync(OLD_NODE!), 20_000);
    const args = fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
    assert.deepEqual(args.filter((a) => a.startsWith('--max-semi-space-size')), [expected]);
    run.kill('SIGTERM');
    await new Promise((resolve) => run.once('exit', resolve));
  }
});

test('IMAP addresses someone chose get a warning that IMAP is not served; the defaults only a note', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, { listen: { imap: ['127.0.0.1:2143'], imaps: ['127.0.0.1:0'] } }));
  const server = await startMailnest(dir, cfg);
  await server.stop();
  const levels = Object.fromEntries(server.logs.filter((l) => l.msg === 'IMAP is not served by this version of mailnest; the listener is not opened').map((l) => [l.listener, l.level]));
  assert.deepEqual(levels, { imap: 30, imaps: 40 });
});

test('a hostname that is no fully qualified name gets a warning naming the fix; a full one, none', async () => {
  // The name suggested is in a mail domain that is one (the built-in "localhost" is not).
  for (const [hostname, domains, suggested] of [['mailbox', ['localhost', 'example.test'], 'mail.example.test'], ['mailbox', ['localhost'], 'mail.example.com'], ['mx.example.test', ['example.test'], undefined]] as const) {
    const dir = tempDir();
    const server = await startMailnest(dir, writeConfig(dir, baseConfig(dir, { hostname, domains: [...domains] })));
    await server.stop();
    const line = server.logs.find((l) => l.level === 40 && l.hostname === hostname);
    if (!suggested) assert.equal(line, undefined);
    else assert.equal(line?.msg, `hostname is not a fully qualified name: other servers cannot look it up, and many refuse mail whose EHLO gives such a name; set hostname = "${suggested}" (a name with an A/AAAA record for this machine) in the config`);
  }
  // A mail domain that reads as an IP address is said to be one.
  const dir = tempDir();
  const server = await startMailnest(dir, writeConfig(dir, baseConfig(dir, { domains: ['example.test', '192.0.2.1'] })));
  await server.stop();
  const line = server.logs.find((l) => l.level === 40 && l.domain === '192.0.2.1');
  assert.match(String(line?.msg), /^the mail domain "192\.0\.2\.1" reads as an IP address, not a domain name/);
});

test('a stop or reload signal that comes before the server\'s handlers are in place is kept for them: SIGHUP does not end it, SIGTERM stops it with 0', async () => {
  const dir = tempDir();
  const config = fs.readFileSync(writeConfig(dir, baseConfig(dir)));
  // The configuration comes through a pipe, so the server is held where it reads it: its
  // modules loaded, its own handlers not yet in place.
  const fifo = path.join(dir, 'pipe.toml');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const child = spawn(NODE, [path.join(ROOT, 'bin/mailnest.js'), '-c', fifo, 'start'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', () => {});
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code!)));
  // SigCgt, the signals the process catches: SIGHUP is bit 0, SIGTERM bit 14.
  const catches = () => {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    const mask = BigInt(`0x${m?.[1] ?? '0'}`);
    return (mask & 1n) !== 0n && (mask & (1n << 14n)) !== 0n;
  };
  try {
    await until('SIGHUP and SIGTERM caught', catches, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  child.kill('SIGHUP');
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  fs.writeFileSync(fifo, config);
  assert.equal(await exited, 0);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; signal?: string });
  assert.ok(lines.some((l) => l.msg === 'stopping' && l.signal === 'SIGTERM'), out);
  assert.ok(lines.some((l) => l.msg === 'stopped'), out);
});
