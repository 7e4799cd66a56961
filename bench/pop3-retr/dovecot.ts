/**
 * A private Dovecot POP3 instance for the benchmark: its own config, base_dir and log in a temp
 * directory, a passwd-file user whose mail process runs as an unprivileged account, a Maildir
 * holding the given messages, and its own loopback port. Never touches the system instance.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface DovecotUser {
  name: string;
  password: string;
  messages: Buffer[];
}

export interface Dovecot {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export function dovecotAvailable(): string | undefined {
  if (spawnSync('dovecot', ['--version'], { encoding: 'utf8' }).status === 0) return undefined;
  if (process.getuid?.() !== 0) return 'dovecot is not installed (apt-get install dovecot-pop3d)';
  spawnSync('apt-get', ['install', '-y', '-q', 'dovecot-pop3d'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return spawnSync('dovecot', ['--version'], { encoding: 'utf8' }).status === 0 ? undefined : 'dovecot-pop3d could not be installed';
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The unprivileged account the mail processes run as ("nobody" when started as root). */
function mailAccount(): { user: string; uid: number; gid: number } {
  if (process.getuid?.() !== 0) {
    const info = os.userInfo();
    return { user: info.username, uid: info.uid, gid: info.gid };
  }
  const id = (flag: string) => Number(spawnSync('id', [flag, 'nobody'], { encoding: 'utf8' }).stdout.trim());
  return { user: 'nobody', uid: id('-u'), gid: id('-g') };
}

export async function startDovecot(dir: string, users: DovecotUser[]): Promise<Dovecot> {
  const acct = mailAccount();
  const root = process.getuid?.() === 0;
  const port = await freePort();
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  const passwd: string[] = [];
  for (const u of users) {
    const home = path.join(dir, 'home', u.name);
    const md = path.join(home, 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) fs.mkdirSync(path.join(md, sub), { recursive: true });
    const base = 1_700_000_000;
    u.messages.forEach((m, i) => {
      // Stored with CRLF line ends and S= in the name: Dovecot's fastest path (no size scan, no LF conversion).
      fs.writeFileSync(path.join(md, 'cur', `${base + i}.M${i}P1.bench,S=${m.length},W=${m.length}:2,S`), m);
    });
    passwd.push(`${u.name}:{PLAIN}${u.password}:${acct.uid}:${acct.gid}::${home}::`);
  }
  if (root) spawnSync('chown', ['-R', `${acct.uid}:${acct.gid}`, path.join(dir, 'home')]);
  fs.writeFileSync(path.join(dir, 'passwd'), passwd.join('\n') + '\n');
  const conf = path.join(dir, 'dovecot.conf');
  const runUser = root ? 'dovenull' : acct.user;
  fs.writeFileSync(conf, `
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
instance_name = mailnest-bench
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = ${acct.uid}
first_valid_gid = ${acct.gid}
default_login_user = ${runUser}
default_internal_user = ${root ? 'dovecot' : acct.user}
${root ? '' : `default_internal_group = ${os.userInfo().username}`}
mail_location = maildir:~/Maildir
mail_save_crlf = yes
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/passwd
}
service pop3-login {
  inet_listener pop3 {
    port = ${port}
  }
  inet_listener pop3s {
    port = 0
  }
}
service pop3 {
  process_limit = 2000
}
service anvil {
  client_limit = 5000
}
default_client_limit = 5000
default_process_limit = 2000
`);
  const child: ChildProcess = spawn('dovecot', ['-F', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  // Wait until the port answers.
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (child.exitCode !== null || i > 100) {
      const log = fs.existsSync(path.join(dir, 'dovecot.log')) ? fs.readFileSync(path.join(dir, 'dovecot.log'), 'utf8') : '';
      throw new Error(`dovecot did not start: ${stderr}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
