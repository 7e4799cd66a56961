/**
 * `mailnest sendmail` as cron, PHP's mail() and mail(1) call it: recipients from arguments or
 * from the headers (-t), Bcc stripped from every delivered copy, -f/-F, a lone dot, and exit
 * statuses: mailnest's 0/1/2, or sysexits.h's with --sysexits (as the /usr/sbin/sendmail wrapper
 * runs it).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addUser, baseConfig, cli, CLI, NODE, tempDir, writeConfig } from '../helpers/server.ts';
import { dataDirOf, mailbox } from '../helpers/mailbox.ts';
import { parseMail } from '../helpers/parse-mail.ts';
import { queueJson } from '../helpers/relay.ts';

describe('mailnest sendmail', () => {
  let dir: string;
  let configFile: string;
  const box = (a: string) => mailbox(dataDirOf(dir), a);

  before(() => {
    dir = tempDir();
    configFile = writeConfig(dir, baseConfig(dir, { relay: { routes: { 'remote.test': '127.0.0.1:9' } } }));
    for (const u of ['owner', 'alice', 'bob', 'carol']) addUser(configFile, `${u}@example.test`, `pw-${u}-123`);
    assert.equal(cli(configFile, ['alias', 'add', 'root@example.test', 'owner@example.test']).status, 0);
  });

  it('-t: To, Cc and Bcc all receive it; no copy shows the Bcc', async () => {
    const msg = [
      'From: Reports <reports@example.test>',
      'To: Alice <alice@example.test>',
      'Cc: bob@example.test',
      'Bcc: carol@example.test, audit@remote.test',
      'Subject: weekly report',
      '',
      'numbers are up',
      '',
    ].join('\n');
    const r = cli(configFile, ['sendmail', '-t', '-i'], msg);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    for (const who of ['alice', 'bob', 'carol']) {
      const [m] = await box(`${who}@example.test`);
      assert.ok(m, `${who} got nothing`);
      const p = parseMail(m);
      assert.ok(!p.headerNames.includes('bcc'), `${who}'s copy has a Bcc header`);
      assert.ok(!m.toString().includes('carol@example.test'), `${who}'s copy names the Bcc recipient carol`);
      assert.ok(!m.toString().includes('audit@remote.test'), `${who}'s copy names the Bcc recipient`);
      assert.equal(p.headers['subject'], 'weekly report');
      assert.equal(p.headers['from'], 'Reports <reports@example.test>');
      assert.equal(p.root.text, 'numbers are up\n');
      assert.ok(p.headers['date'] && p.headers['message-id'], 'Date/Message-ID not added');
    }
    // the remote Bcc went to the queue, its copy without the Bcc header either
    const q = queueJson(configFile);
    assert.equal(q.length, 1);
    assert.deepEqual(q[0]!.recipients.map((x) => x.address), ['audit@remote.test']);
  });

  it('recipients as arguments (cron style): bare names get the first domain, -F names the sender; -V ENVID is no version request', async () => {
    const r = cli(configFile, ['sendmail', '-FCronDaemon', '-i', '-B8BITMIME', '-oem', '-V', 'envid-1', 'root'],
      'Subject: Cron <root@host> /usr/local/bin/backup\nTo: root\n\nbackup done\n.\nstill part of the output\n');
    assert.equal(r.status, 0, r.stderr);
    const mails = await box('owner@example.test');
    const p = parseMail(mails[mails.length - 1]!);
    assert.equal(p.headers['subject'], 'Cron <root@host> /usr/local/bin/backup');
    assert.match(p.headers['from']!, /^CronDaemon <.+@example\.test>$/);
    assert.equal(p.root.text, 'backup done\n.\nstill part of the output\n');
  });

  it('root@localhost and root@<host name> are root at the first domain, as fail2ban and cron address them; nothing is queued', async () => {
    const before = (await box('owner@example.test')).length;
    for (const to of ['root@localhost', 'root@MX.example.test']) {
      const r = cli(configFile, ['sendmail', '-f', 'root@mx.example.test', to], `Subject: [Fail2Ban] sshd: banned for ${to}\n\nbanned\n`);
      assert.equal(r.status, 0, r.stderr);
    }
    const mails = await box('owner@example.test');
    assert.deepEqual(mails.slice(before).map((m) => parseMail(m).headers['subject']), ['[Fail2Ban] sshd: banned for root@localhost', '[Fail2Ban] sshd: banned for root@MX.example.test']);
    assert.ok(queueJson(configFile).every((q) => q.recipients.every((x) => !/@(localhost|mx\.example\.test)$/i.test(x.address))), 'nothing for the machine\'s names is queued');
    // An alias is made at the first domain; the machine's name is said to be no mail domain.
    const alias = cli(configFile, ['alias', 'add', 'ops@localhost', 'owner@example.test']);
    assert.equal(alias.status, 2);
    assert.equal(alias.stderr, "mailnest: alias ops@localhost: localhost is this machine's own name, not a mail domain; mail to ops@localhost goes to ops@example.test, so use that address\n");
    // No one there: the refusal names the address looked up, where an alias would go.
    const none = cli(configFile, ['sendmail', 'nobody@localhost'], 'Subject: x\n\ny\n');
    assert.deepEqual([none.status, none.stderr], [1, 'mailnest: no such local user or alias: nobody@localhost (nobody@example.test, which mail to it is for)\n']);
  });

  it('-f sets the envelope sender (Return-Path) and the From that is added', async () => {
    const r = cli(configFile, ['sendmail', '-f', 'smartd@example.test', 'alice@example.test'], 'Subject: SMART error\n\n/dev/sda: 8 pending sectors\n');
    assert.equal(r.status, 0, r.stderr);
    const mails = await box('alice@example.test');
    const m = mails[mails.length - 1]!;
    assert.match(m.toString(), /^Return-Path: <smartd@example\.test>\r\n/);
    assert.equal(parseMail(m).headers['from'], 'smartd@example.test');
  });

  it('without -i a lone dot ends the message', async () => {
    const r = cli(configFile, ['sendmail', 'bob@example.test'], 'Subject: dot\n\nfirst\n.\nignored\n');
    assert.equal(r.status, 0, r.stderr);
    const mails = await box('bob@example.test');
    assert.equal(parseMail(mails[mails.length - 1]!).root.text, 'first\n');
    // It ends the input too: a caller that writes the dot and waits, its pipe still open, gets
    // the exit status (the dot line cut between reads: test/unit/cli-read-limited.test.ts).
    const child = spawn(NODE, [CLI, '-c', configFile, 'sendmail', 'bob@example.test'], { stdio: ['pipe', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.stdin.write('Subject: still open\r\n\r\nsecond\r\n.');
    await new Promise((resolve) => setTimeout(resolve, 200));
    child.stdin.write('\r\nnever read\r\n');
    const timer = setTimeout(() => child.kill(), 30_000);
    assert.equal(await exited, 0, 'it exited on its own, the pipe open');
    clearTimeout(timer);
    child.stdin.destroy();
    const after = await box('bob@example.test');
    assert.equal(parseMail(after[after.length - 1]!).root.text, 'second\n');
  });

  it('exit statuses: 0/1/2 as every mailnest command, the sysexits.h ones with --sysexits', async () => {
    const before = (await box('alice@example.test')).length;
    const cases: [string[], string, number, RegExp][] = [
      [['nobody@example.test'], 'Subject: x\n\ny\n', 67, /no such local user or alias: nobody@example\.test/],
      [['alice@example.test', 'nobody@example.test'], 'Subject: x\n\ny\n', 67, /nobody@example\.test/],
      [[], 'Subject: x\n\ny\n', 64, /no recipients/],
      [['-t'], 'Subject: x\n\ny\n', 64, /none in the To, Cc or Bcc/],
      [['-Z', 'alice@example.test'], 'x\n', 64, /unknown option -Z/],
      [['-bs', 'alice@example.test'], '', 64, /^mailnest: -bs takes its recipients from RCPT TO, not as arguments\n$/],
      [['-bd'], '', 64, /^mailnest: -bd \(run as a daemon\) is not supported here: the server is "mailnest start"\n$/],
      // A configuration file named after "sendmail", where a sudo rule for this command alone
      // would let its user choose one (and read the first line of any file in the error).
      ...[['-c', '/etc/hostname'], ['--config=/etc/hostname'], ['-c/etc/hostname'], ['-f', '-c', '/etc/hostname']].map((given): [string[], string, number, RegExp] =>
        [[...given, 'alice@example.test'], 'x\n', 64, /^mailnest: -c\/--config is taken before "sendmail" only: mailnest -c FILE sendmail \.\.\.\n$/]),
      [['a@@example.test'], 'x\n', 65, /is not a valid address/],
      [['-f', 'Alice <a b@example.test>', 'alice@example.test'], 'x\n', 65, /-f "Alice <a b@example\.test>" is not a valid address/],
      [['-t'], 'To: alice@example.test\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n' + 'z'.repeat(1500) + '\n', 65, /line 1 is 1500 octets/],
    ];
    for (const [args, input, sysexit, message] of cases) {
      const r = cli(configFile, ['sendmail', '--sysexits', ...args], input);
      assert.equal(r.status, sysexit, `--sysexits ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      const own = cli(configFile, ['sendmail', ...args], input);
      assert.equal(own.status, sysexit === 64 ? 2 : 1, `${args.join(' ')}: ${own.stderr}`);
      assert.equal(own.stderr, r.stderr);
    }
    assert.equal((await box('alice@example.test')).length, before, 'a refused message was delivered');
    // a config that cannot be read is EX_CONFIG
    assert.equal(cli(`${dir}/missing.toml`, ['sendmail', '--sysexits', 'alice@example.test'], 'x\n').status, 78);
    assert.equal(cli(`${dir}/missing.toml`, ['sendmail', 'alice@example.test'], 'x\n').status, 1);
    // bad usage found before the command runs (an empty -c, as `-c "$CONF"` with CONF unset)
    const unset = spawnSync(process.execPath, [CLI, '-c', '', 'sendmail', '--sysexits', 'alice@example.test'], { input: 'x\n', encoding: 'utf8' });
    assert.deepEqual([unset.status, unset.stderr], [64, "mailnest: option '-c, --config <file>' argument '' is invalid. an empty file name; give the path of the config file (see --help)\n"]);
    assert.equal(spawnSync(process.execPath, [CLI, '-c', '', 'sendmail', 'alice@example.test'], { input: 'x\n' }).status, 2);
    // read past a problem, and not where it is a flag's value
    assert.equal(cli(configFile, ['sendmail', '-Z', '--sysexits', 'alice@example.test'], 'x\n').status, 64);
    const value = cli(configFile, ['sendmail', '-f', '--sysexits', 'nobody@example.test'], 'x\n');
    assert.deepEqual([value.status, value.stderr], [1, 'mailnest: no such local user or alias: nobody@example.test\n']);
    // after "--" it is a recipient, not the option
    const late = cli(configFile, ['sendmail', '--', '--sysexits'], 'x\n');
    assert.equal(late.status, 1, late.stderr);
    assert.equal(late.stderr, 'mailnest: no such local user or alias: --sysexits@example.test\n');
    // -bi (newaliases) succeeds and does nothing
    assert.equal(cli(configFile, ['sendmail', '-bi'], '').status, 0);
    // success is 0 either way
    assert.equal(cli(configFile, ['sendmail', '--sysexits', 'alice@example.test'], 'Subject: x\n\ny\n').status, 0);
    assert.equal((await box('alice@example.test')).length, before + 1);
  });

  it('-bs speaks SMTP on stdin and stdout, reply by reply as PHP mailers wait for them: no AUTH, any recipient, the message completed as submitted mail is', async (t) => {
    const child = spawn(NODE, [CLI, '-c', configFile, 'sendmail', '-bs', '-i'], { stdio: ['pipe', 'pipe', 'pipe'] });
    // Whatever happens, the child goes: a failed assertion must not leave the test waiting.
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    t.after(() => { clearTimeout(killer); child.kill('SIGKILL'); });
    let out = '';
    let err = '';
    let more: (() => void) | undefined;
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); more?.(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => { more?.(); resolve(code); }));
    /** The next whole reply (its last line "NNN "). */
    const reply = async (): Promise<string> => {
      for (;;) {
        const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3} [^\r\n]*\r\n/.exec(out);
        if (m) {
          out = out.slice(m[0].length);
          return m[0];
        }
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`no reply; stderr: ${err}`);
        await new Promise<void>((resolve) => { more = resolve; });
      }
    };
    const say = async (line: string) => {
      child.stdin.write(`${line}\r\n`);
      return reply();
    };
    assert.match(await reply(), /^220 /);
    const ehlo = await say('EHLO [127.0.0.1]');
    assert.match(ehlo, /^250-/);
    assert.ok(!/AUTH|STARTTLS/.test(ehlo), ehlo);
    assert.match(await say('AUTH PLAIN AGEAYg=='), /^503 5\.5\.1 Authentication is not needed/);
    assert.match(await say('MAIL FROM:<owner@example.test>'), /^250 /);
    assert.match(await say('RCPT TO:<alice@example.test> NOTIFY=SUCCESS'), /^250 /);
    assert.match(await say('RCPT TO:<ops@remote.test>'), /^250 /);
    assert.match(await say('RCPT TO:<nobody@example.test>'), /^550 5\.1\.1/);
    assert.match(await say('DATA'), /^354 /);
    const queued = await say('Subject: from php\r\nTo: alice@example.test\r\nBcc: hidden@remote.test\r\n\r\nhello\r\n..dot\r\n.');
    const id = /^250 2\.0\.0 OK queued as (\S+)\r\n$/.exec(queued)?.[1];
    assert.ok(id, queued);
    // The null sender: the From it lacks is the caller's, as the sendmail command writes it.
    assert.match(await say('MAIL FROM:<>'), /^250 /);
    // A user name alone, in the envelope and in the header, is at the first domain, as the
    // sendmail command's arguments are.
    assert.match(await say('RCPT TO:<bob>'), /^250 /);
    assert.match(await say('DATA'), /^354 /);
    assert.match(await say('Subject: from nobody\r\nTo: bob\r\nCc: "Doe, J" <owner>\r\n\r\nhi\r\n.'), /^250 /);
    assert.match(await say('QUIT'), /^221 /);
    child.stdin.end();
    assert.equal(await exited, 0, err);
    const m = (await box('alice@example.test')).find((x) => x.toString().includes('from php'));
    assert.ok(m, 'not delivered');
    const p = parseMail(m);
    assert.equal(p.root.text, 'hello\n.dot\n');
    assert.equal(p.headers['from'], 'owner@example.test');
    assert.ok(p.headers['date'] && p.headers['message-id'], 'Date/Message-ID not added');
    assert.ok(!p.headerNames.includes('bcc'), 'Bcc kept');
    const caller = (process.env.SUDO_USER ?? os.userInfo().username);
    assert.match(m.toString(), new RegExp(`authenticated as ${caller}`), 'the caller is not noted in Received');
    assert.deepEqual(queueJson(configFile).find((e) => e.id === id)?.recipients.map((r) => r.address), ['ops@remote.test']);
    assert.ok(cli(configFile, ['queue', 'remove', id]).status === 0);
    const nobody = (await box('bob@example.test')).find((x) => x.toString().includes('from nobody'));
    assert.ok(nobody, 'the null sender\'s message was not delivered');
    assert.equal(parseMail(nobody).headers['from'], `${caller}@example.test`);
    assert.match(nobody.toString(), /\r\nTo: bob@example\.test\r\nCc: "Doe, J" <owner@example\.test>\r\n/);
    // The "delivered" report NOTIFY=SUCCESS asked for was queued before the command ended.
    const reports = (await box('owner@example.test')).filter((x) => /^Content-Type: multipart\/report/im.test(x.toString()) && x.toString().includes(id!));
    assert.equal(reports.length, 1, 'no delivery report for owner@example.test');
  });

  it('-bs takes a script\'s LF-only lines as Postfix does, and an input that ends in the middle of a message is EX_DATAERR, not success', async () => {
    const before = (await box('alice@example.test')).length;
    const lf = cli(configFile, ['sendmail', '-bs'], 'HELO script\nMAIL FROM:<owner@example.test>\nRCPT TO:<alice@example.test>\nDATA\nSubject: printf\n\nline one\n..dot\n.\nQUIT\n');
    assert.equal(lf.status, 0, lf.stderr);
    assert.match(lf.stdout, /\r\n250 OK queued as \S+\r\n221 /);
    const m = (await box('alice@example.test')).find((x) => x.toString().includes('Subject: printf'));
    assert.ok(m, 'not delivered');
    assert.equal(parseMail(m).root.text, 'line one\n.dot\n');
    for (const [input, where] of [
      ['HELO script\nMAIL FROM:<owner@example.test>\nRCPT TO:<alice@example.test>\nDATA\nSubject: cut off\n\ntext\n', 'in the middle of DATA'],
      ['HELO script\nMAIL FROM:<owner@example.test>\nRCPT TO:<alice@example.test>\n', 'after MAIL FROM, before the message'],
    ] as const) {
      const r = cli(configFile, ['sendmail', '--sysexits', '-bs'], input);
      assert.equal(r.status, 65, r.stderr);
      assert.equal(r.stderr, `mailnest: the SMTP session ended ${where}: that message was not queued\n`);
    }
    assert.equal((await box('alice@example.test')).length, before + 1);
    // A session that ends between messages, QUIT or not, is a success; so is one that a QUIT
    // ends with a transaction begun (a recipient refused, say): the client chose to leave it.
    assert.equal(cli(configFile, ['sendmail', '-bs'], 'HELO script\nNOOP\n').status, 0);
    const quit = cli(configFile, ['sendmail', '-bs'], 'HELO script\nMAIL FROM:<owner@example.test>\nRCPT TO:<nosuch@example.test>\nQUIT\n');
    assert.deepEqual([quit.status, quit.stderr], [0, '']);
    assert.match(quit.stdout, /\r\n550 [^\r]*\r\n221 /);
  });

  it('-bs labels a script\'s 8-bit text as sendmail labels what it reads: quoted-printable with its charset outside MIME, MIME-Version where a Content-Type lacks it', async () => {
    const r = cli(configFile, ['sendmail', '-bs'], [
      'HELO script', 'MAIL FROM:<owner@example.test>', 'RCPT TO:<alice@example.test>', 'DATA',
      'Subject: Grüße plain', '', 'Привет', '.',
      'MAIL FROM:<owner@example.test>', 'RCPT TO:<alice@example.test>', 'DATA',
      'Subject: php mime', 'Content-Type: text/plain; charset=utf-8', '', 'Grüße', '.', 'QUIT', '',
    ].join('\n'));
    assert.equal(r.status, 0, r.stderr);
    const mail = await box('alice@example.test');
    const plain = mail.find((x) => x.toString().includes('Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= plain'));
    assert.ok(plain, 'not delivered');
    const p = parseMail(plain);
    assert.deepEqual([p.headers['mime-version'], p.root.contentType, p.root.charset, p.root.cte], ['1.0', 'text/plain', 'utf-8', 'quoted-printable']);
    assert.equal(p.root.text, 'Привет\n');
    const php = mail.find((x) => x.toString().includes('Subject: php mime'));
    assert.ok(php, 'not delivered');
    const q = parseMail(php);
    assert.deepEqual([q.headers['mime-version'], q.root.cte], ['1.0', '8bit']);
    assert.equal(q.root.text, 'Grüße\n');
  });

  it('refuses input over limits.max_message_size with EX_DATAERR', () => {
    const small = writeConfig(tempDir(), { ...baseConfig(dir), limits: { max_message_size: 1000 } });
    const r = cli(small, ['sendmail', '--sysexits', 'alice@example.test'], `Subject: big\n\n${'line of text\n'.repeat(200)}`);
    assert.equal(r.status, 65, r.stderr);
    assert.match(r.stderr, /too large/);
    // Within the limit as read, past it once its 8-bit text is made quoted-printable: said so.
    const grown = cli(small, ['sendmail', '--sysexits', 'alice@example.test'], `Subject: grown\n\n${'é'.repeat(400)}\n`);
    assert.equal(grown.status, 65, grown.stderr);
    assert.match(grown.stderr, /^mailnest: the message is \d+ bytes; at most 1000 are allowed \(limits\.max_message_size\); \d+ bytes were read, and their re-encoding \(quoted-printable, for lines over 998 octets or 8-bit text outside MIME\) took them past it\n$/);
    // What the command adds (From, Date, Message-ID, CRs before the LFs) is not counted: 1,000
    // bytes with nothing to re-encode are taken.
    const exact = `Subject: exact\n\n${'line of text\n'.repeat(75)}${'z'.repeat(1000 - 16 - 13 * 75 - 1)}\n`;
    assert.equal(exact.length, 1000);
    const taken = cli(small, ['sendmail', '--sysexits', 'alice@example.test'], exact);
    assert.equal(taken.status, 0, taken.stderr);
  });
});

describe('sendmail by a user who may not write the data directory', () => {
  it('exits 77 (EX_NOPERM) and names what it cannot write', (t) => {
    const asRoot = process.getuid?.() === 0;
    // As root the command runs as nobody, who must be able to read this checkout.
    if (asRoot && spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(CLI)})`], { uid: 65534, gid: 65534 }).status !== 0) {
      t.skip('nobody cannot read this checkout, so no user without write access can run the command');
      return;
    }
    const dir = tempDir();
    const configFile = writeConfig(dir, baseConfig(dir));
    addUser(configFile, 'alice@example.test', 'pw-alice-123');
    // The config readable by all, the data directory (0700) not: run as nobody when we are
    // root, otherwise take the write permission away from ourselves.
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(configFile, 0o644);
    const dataDir = path.join(dir, 'data');
    if (!asRoot) fs.chmodSync(dataDir, 0o500);
    try {
      const r = spawnSync(process.execPath, [CLI, '-c', configFile, 'sendmail', '--sysexits', 'alice@example.test'], {
        input: 'Subject: x\n\ny\n', encoding: 'utf8', timeout: 60_000, ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      });
      assert.equal(r.status, 77, r.stderr);
      assert.equal(r.stderr, `mailnest: cannot open the store: data_dir ${dataDir} is not writable by this user; run mailnest as the user that owns data_dir\n`);
    } finally {
      fs.chmodSync(dataDir, 0o700);
    }
  });

  it('run by root on a data_dir another user owns, it works as that user: what it makes is theirs, and nothing they put there leads root elsewhere', { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
    const own = tempDir();
    fs.chmodSync(own, 0o755);
    const cfg = writeConfig(own, baseConfig(own));
    const data = path.join(own, 'data');
    fs.mkdirSync(data, { mode: 0o755 });
    const NOBODY = 65534;
    // Given to the user alone (`chown nobody`): its group stays root's.
    fs.chownSync(data, NOBODY, 0);
    // As root, as a cron job would: the database, a body for the log, one for a file of its own,
    // a DKIM key; an attachment only root may read.
    const added = cli(cfg, ['user', 'add', 'u@example.test', '--password-stdin'], 'pw-nobody-123\n');
    assert.equal(added.status, 0, added.stderr);
    for (const size of [100 * 1024, 600 * 1024]) {
      const r = cli(cfg, ['sendmail', 'u@example.test'], `Subject: ${size}\n\n${'x'.repeat(size)}\n`);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.equal(cli(cfg, ['dns', 'example.test']).status, 0);
    const secret = path.join(own, 'root-only.txt');
    fs.writeFileSync(secret, 'for root\n', { mode: 0o600 });
    const sent = cli(cfg, ['send', '--to', 'u@example.test', '--subject', 'attached', '--text', 'see', '--attach', secret]);
    assert.equal(sent.status, 0, sent.stderr);
    const made: string[] = [];
    const walk = (d: string) => {
      for (const name of fs.readdirSync(d)) {
        const f = path.join(d, name);
        made.push(f);
        if (fs.statSync(f).isDirectory()) walk(f);
      }
    };
    walk(data);
    assert.ok(made.some((f) => f.includes('body-log')) && made.some((f) => f.includes('bodies')) && made.some((f) => f.includes('dkim')), made.join(' '));
    assert.deepEqual(made.filter((f) => fs.statSync(f).uid !== NOBODY), [], 'everything belongs to the owner of data_dir');
    // In the user's own group (nobody's is nogroup), none of root's: the command kept none.
    assert.deepEqual(made.filter((f) => fs.statSync(f).gid !== NOBODY), [], 'everything is in the owner\'s own group');
    assert.equal(fs.statSync(path.join(data, 'mailnest.sqlite')).mode & 0o077, 0, 'the database is private');
    // The default sender is still the caller's login name, root.
    const cron = cli(cfg, ['sendmail', 'someone@remote.test'], 'Subject: from cron\n\nnightly\n');
    assert.equal(cron.status, 0, cron.stderr);
    assert.deepEqual(queueJson(cfg).map((e) => e.from), ['root@example.test']);
    const asNobody = spawnSync(process.execPath, [CLI, '-c', cfg, 'user', 'list', '--json'], { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 60_000 });
    assert.equal(asNobody.status, 0, asNobody.stderr);
    assert.equal((JSON.parse(asNobody.stdout) as { messages: number }[])[0]!.messages, 3);

    // What the owner of data_dir points elsewhere is not written through by root.
    const victim = path.join(own, 'victim');
    fs.mkdirSync(victim, { mode: 0o700 });
    fs.rmSync(path.join(data, 'bodies'), { recursive: true });
    fs.symlinkSync(victim, path.join(data, 'bodies'));
    fs.lchownSync(path.join(data, 'bodies'), NOBODY, NOBODY);
    const through = cli(cfg, ['sendmail', 'u@example.test'], `Subject: big\n\n${'y'.repeat(600 * 1024)}\n`);
    assert.notEqual(through.status, 0);
    assert.deepEqual(fs.readdirSync(victim), []);
    assert.equal(fs.statSync(victim).uid, 0);
  });

  it('run by root where the user owns the directory above data_dir: it works as that user, so a data_dir swapped for a link leads nowhere; init too', { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
    const NOBODY = 65534;
    const own = tempDir();
    fs.chmodSync(own, 0o755);
    const home = path.join(own, 'home');
    fs.mkdirSync(home, { mode: 0o755 });
    fs.chownSync(home, NOBODY, NOBODY);
    // init as root, in the user's directory: the DKIM key it makes is the user's.
    const init = spawnSync(process.execPath, [CLI, '-c', path.join(home, 'mailnest.toml'), 'init', '--hostname', 'mail.example.test', '--domain', 'example.test'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(init.status, 0, init.stderr);
    assert.equal(fs.statSync(path.join(home, 'data', 'dkim')).uid, NOBODY);
    // The user puts a link to a directory of root's where data_dir was.
    const rootDir = path.join(own, 'root-only');
    fs.mkdirSync(rootDir, { mode: 0o755 });
    fs.renameSync(path.join(home, 'data'), path.join(home, 'data.old'));
    fs.symlinkSync(rootDir, path.join(home, 'data'));
    fs.lchownSync(path.join(home, 'data'), NOBODY, NOBODY);
    const r = cli(path.join(home, 'mailnest.toml'), ['sendmail', 'u@example.test'], 'Subject: s\n\nx\n');
    assert.notEqual(r.status, 0);
    assert.deepEqual(fs.readdirSync(rootDir), []);
    // A data_dir of a second user's under the first's: no one user to be, so nothing is done.
    fs.rmSync(path.join(home, 'data'));
    fs.renameSync(path.join(home, 'data.old'), path.join(home, 'data'));
    fs.chownSync(path.join(home, 'data'), 1234, 1234);
    const two = cli(path.join(home, 'mailnest.toml'), ['user', 'list']);
    assert.equal(two.status, 1);
    assert.match(two.stderr, /its path has parts of more than one user \(uids 65534, 1234\); make the directories above it root's/);
    // init refuses such a data_dir before it writes anything; with data_dir the user's again,
    // init --force never writes through a link put where the config was: it names it.
    fs.chownSync(path.join(home, 'data'), NOBODY, NOBODY);
    const victim = path.join(own, 'victim.txt');
    fs.writeFileSync(victim, 'root\'s own\n');
    fs.rmSync(path.join(home, 'mailnest.toml'));
    fs.symlinkSync(victim, path.join(home, 'mailnest.toml'));
    const again = spawnSync(process.execPath, [CLI, '-c', path.join(home, 'mailnest.toml'), 'init', '--force', '--hostname', 'mail.example.test', '--domain', 'example.test'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(again.status, 1, again.stderr);
    assert.match(again.stderr, /mailnest\.toml is a symbolic link to .*victim\.txt: name the file itself/);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'root\'s own\n', again.stderr);
  });
});
