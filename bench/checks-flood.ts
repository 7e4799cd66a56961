/**
 * What a flood of large messages with forged DKIM signatures costs other senders when the
 * inbound checks are on: ATTACKERS client addresses (127.0.0.2 ...) each send 20 MB messages
 * with five forged signatures (each a pass over the body of its own) to the MX for SECONDS,
 * while a sender on 127.0.0.1 sends a small message every half second; prints the time from its
 * connection to its 250, median and maximum, and how its checks ended. DNS answers from a stub
 * on loopback (test/helpers/dns-server.ts): nothing leaves the machine.
 *
 *   node_modules/.bin/node bench/checks-flood.ts [--seconds N] [--attackers N] [--checks-off] [--root CHECKOUT]
 *
 * --root runs another checkout's build (compiled, its node_modules in place), to compare.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import { startDnsServer } from '../test/helpers/dns-server.ts';
import { buildMailnest } from './build.ts';

const { values: opt } = parseArgs({ options: { seconds: { type: 'string', default: '40' }, attackers: { type: 'string', default: '6' }, 'checks-off': { type: 'boolean', default: false }, root: { type: 'string' } } });
const root = opt.root ? path.resolve(opt.root) : path.resolve(import.meta.dirname, '..');
if (!opt.root) buildMailnest();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-checks-flood-'));
const dns = await startDnsServer({ TXT: { 'outlook.test': ['v=spf1 ip4:127.0.0.1 -all'], '_dmarc.outlook.test': ['v=DMARC1; p=none'], 'attacker.test': ['v=spf1 ip4:127.0.0.0/8 -all'] } });
const port = 20000 + Math.floor(Math.random() * 20000);
const config = path.join(dir, 'mailnest.toml');
fs.writeFileSync(config, `hostname = "mx.flood.test"
domains = ["flood.test"]
data_dir = ${JSON.stringify(path.join(dir, 'data'))}
log_level = "warn"
dns_servers = [${JSON.stringify(dns.address)}]
[listen]
smtp = ["127.0.0.1:${port}"]
submission = []
submissions = []
pop3 = []
pop3s = []
http = []
[limits]
max_message_size = 31457280
[relay]
smarthost = "127.0.0.1:9"
smarthost_tls = "none"
[checks]
enabled = ${!opt['checks-off']}
`);
const cli = (args: string[], input = '') => spawnSync(process.execPath, [path.join(root, 'bin/mailnest.js'), '-c', config, ...args], { input, encoding: 'utf8' });
if (cli(['user', 'add', 'v@flood.test', '--password-stdin'], 'a-password\n').status !== 0) throw new Error('user add failed');
const server = spawn(process.execPath, [path.join(root, 'bin/mailnest.js'), '-c', config, 'start'], { stdio: ['ignore', 'inherit', 'pipe'] });
// Its summary of where it listens, on stderr, once it does.
await new Promise<void>((resolve) => server.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('is running')) resolve(); }));

const flood = `
import smtplib, sys, time, threading
port, seconds, attackers = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sigs = ''.join(f'DKIM-Signature: v=1; a=rsa-sha256; c={c}; d=s{i}.test; s=x; {l} h=from; bh=AAAA; b=AAAA\\r\\n'
               for i, (c, l) in enumerate([('relaxed/relaxed', ''), ('simple/simple', ''), ('relaxed/relaxed', 'l=1000;'), ('relaxed/simple', 'l=2000;'), ('simple/relaxed', 'l=3000;')]))
line = ' \\t ' * 20 + 'x y z\\r\\n'
big = (sigs + 'From: a@attacker.test\\r\\nTo: v@flood.test\\r\\nSubject: big\\r\\n\\r\\n' + line * (20_000_000 // len(line))).encode()
small = b'From: b@outlook.test\\r\\nTo: v@flood.test\\r\\nSubject: small\\r\\n\\r\\nhello\\r\\n'
stop = time.time() + seconds
def attacker(src):
    while time.time() < stop:
        try:
            s = smtplib.SMTP('127.0.0.1', port, source_address=(src, 0), timeout=120)
            s.sendmail('a@attacker.test', ['v@flood.test'], big)
            s.quit()
        except Exception:
            pass
for i in range(attackers):
    threading.Thread(target=attacker, args=(f'127.0.0.{2 + i}',), daemon=True).start()
time.sleep(3)
took = []
while time.time() < stop - 2:
    t0 = time.time()
    s = smtplib.SMTP('127.0.0.1', port, timeout=120)
    s.sendmail('b@outlook.test', ['v@flood.test'], small)
    s.quit()
    took.append(time.time() - t0)
    time.sleep(0.5)
took.sort()
print(f'{len(took)} {took[len(took) // 2]:.2f} {took[-1]:.2f}')
`;
try {
  // Not spawnSync: the stub DNS answers from this process's event loop meanwhile.
  const python = spawn('python3', ['-c', flood, String(port), opt.seconds, opt.attackers], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  python.stdout.on('data', (d: Buffer) => { out += d; });
  const status = await new Promise((resolve) => python.once('exit', resolve));
  if (status !== 0) throw new Error(`the flood failed (${String(status)})`);
  const [count, median, max] = out.trim().split(' ');
  // How the small messages' checks ended, from their stored header.
  const db = new DatabaseSync(path.join(dir, 'data', 'mailnest.sqlite'), { readOnly: true });
  const headers = (db.prepare("SELECT m.prefix, p.data FROM messages m JOIN body_parts p ON p.body_id = m.body_id AND p.seq = 0 WHERE p.data LIKE '%Subject: small%'").all() as { prefix: Uint8Array; data: Uint8Array }[])
    .map((row) => Buffer.concat([row.prefix, row.data]).toString('latin1'));
  db.close();
  const temperror = headers.filter((h) => /spf=temperror|dmarc=temperror/.test(h)).length;
  process.stdout.write(`${opt['checks-off'] ? 'checks off' : 'checks on'}, ${opt.attackers} addresses flooding 20 MB messages with five forged signatures for ${opt.seconds} s (${root}): `
    + `${count} small messages from another sender, ${median} s median and ${max} s at most from connection to 250; ${temperror} of them with checks in temperror\n`);
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  await dns.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
