/**
 * POP3 over real sockets against a running mailnest with `[auth] allow_insecure = true`:
 * python's poplib on the plain port, a raw client for exact replies, pipelining, dropped
 * connections, the maildrop lock, UIDL stability, curl, and shutdown.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { newQueueId } from '../../src/store/queue-id.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { assertDownload, createUsers, RawPop3, smtpSend, storeBig, unstuff } from '../helpers/pop3.ts';
import { baseConfig, python, startMailnest, tempDir, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { until } from '../helpers/relay.ts';

const msg = (subject: string, body: string) => Buffer.from(`From: bob@example.org\r\nTo: x@example.test\r\nSubject: ${subject}\r\n\r\n${body}`);

describe('POP3 integration (plain port, allow_insecure)', () => {
  let m: RunningMailnest;
  let pop3: number;
  let smtp: number;
  let dir: string;

  before(async () => {
    dir = tempDir('mailnest-pop3-');
    const cfg = writeConfig(dir, baseConfig(dir, { auth: { allow_insecure: true } }));
    await createUsers(`${dir}/data`, ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hana'].map((u) => [`${u}@example.test`, `${u} pass`]));
    m = await startMailnest(dir, cfg);
    pop3 = m.port('pop3');
    smtp = m.port('smtp');
  });

  after(async () => {
    await m?.stop();
  });

  async function login(user: string): Promise<RawPop3> {
    const { client } = await RawPop3.connect(pop3);
    assert.match(await client.command(`USER ${user}@example.test`), /^\+OK/);
    assert.match(await client.command(`PASS ${user} pass`), /^\+OK/);
    return client;
  }

  it('python poplib: USER/PASS, STAT, LIST, UIDL, RETR, TOP, DELE, QUIT', () => {
    smtpSend(smtp, 'bob@example.org', 'alice@example.test', [msg('first', 'one\r\n.dotted line\r\n'), msg('second', 'two\r\n')]);
    const r = python(`
import poplib, sys, json
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=30)
out = {'welcome': p.getwelcome().decode(), 'capa': sorted(p.capa().keys())}
p.user('alice@example.test'); p.pass_('alice pass')
out['stat'] = list(p.stat())
out['list'] = [x.decode() for x in p.list()[1]]
out['uidl'] = [x.decode() for x in p.uidl()[1]]
resp, lines, octets = p.retr(1)
out['retr'] = {'resp': resp.decode(), 'lines': [l.decode() for l in lines], 'octets': octets}
out['top'] = [l.decode() for l in p.top(2, 0)[1]]
out['dele'] = p.dele(1).decode()
out['quit'] = p.quit().decode()
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=30)
p.user('alice@example.test'); p.pass_('alice pass')
out['after'] = [x.decode() for x in p.uidl()[1]]
p.quit()
print(json.dumps(out))
`, [String(pop3)]);
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout);
    assert.match(o.welcome, /^\+OK /);
    assert.deepEqual(o.capa, ['AUTH-RESP-CODE', 'EXPIRE', 'IMPLEMENTATION', 'LOGIN-DELAY', 'PIPELINING', 'RESP-CODES', 'SASL', 'STLS', 'TOP', 'UIDL', 'USER']);
    assert.equal(o.stat[0], 2);
    assert.deepEqual(o.uidl, ['1 1', '2 2']);
    const size = Number(o.list[0].split(' ')[1]);
    assert.equal(o.retr.resp, `+OK ${size} octets`);
    // poplib removes the stuffing: the line comes back as it was sent.
    assert.ok(o.retr.lines.includes('.dotted line'));
    assert.equal(o.retr.lines[0].startsWith('Return-Path: <bob@example.org>'), true);
    assert.deepEqual(o.top.slice(-2), ['Subject: second', '']);
    assert.match(o.dele, /^\+OK/);
    assert.match(o.quit, /^\+OK .*\(1 message left\)/);
    assert.deepEqual(o.after, ['1 2']);
  });

  it('RETR sends exactly the octets LIST announced, byte-stuffed', async () => {
    const sent = msg('stuffing', '.a\r\n..b\r\nc.\r\n.\r\nend\r\n');
    smtpSend(smtp, 'bob@example.org', 'bob@example.test', [sent]);
    const c = await login('bob');
    const size = Number((await c.command('LIST 1')).split(' ')[2]);
    c.send('RETR 1\r\n');
    const { status, body } = await c.multi();
    assert.equal(status, `+OK ${size} octets`);
    assert.match(body, /\r\n\.\.a\r\n\.\.\.b\r\nc\.\r\n\.\.\r\nend\r\n$/);
    const original = unstuff(body);
    assert.equal(Buffer.byteLength(original, 'latin1'), size);
    assert.ok(original.endsWith(sent.toString('latin1')));
    await c.command('QUIT');
  });

  it('AUTH PLAIN and AUTH LOGIN (RFC 5034), same [AUTH] reply for unknown user and wrong password', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const { client: a } = await RawPop3.connect(pop3);
    assert.equal(await a.command(`AUTH PLAIN ${b64('\0nobody@example.test\0carol pass')}`), '-ERR [AUTH] invalid user name or password');
    assert.equal(await a.command(`AUTH PLAIN ${b64('\0carol@example.test\0wrong')}`), '-ERR [AUTH] invalid user name or password');
    assert.match(await a.command(`AUTH PLAIN ${b64('\0carol@example.test\0carol pass')}`), /^\+OK maildrop has 0 messages/);
    assert.match(await a.command('QUIT'), /^\+OK/);
    const { client: b } = await RawPop3.connect(pop3);
    assert.equal(await b.command('AUTH LOGIN'), `+ ${b64('Username:')}`);
    assert.equal(await b.command(b64('CAROL@example.test')), `+ ${b64('Password:')}`);
    assert.match(await b.command(b64('carol pass')), /^\+OK/);
    assert.match(await b.command('QUIT'), /^\+OK/);
    // Each failure is a line of its own, as SMTP's are, for fail2ban and its kind (the log
    // comes on the server's stdout, a little after the replies).
    await until('the failures logged', () => m.logs.filter((l) => l.msg === 'authentication failed').length >= 2);
    const failed = m.logs.filter((l) => l.msg === 'authentication failed').map((l) => [l.listener, l.client, l.user]);
    assert.deepEqual(failed, [['pop3', '127.0.0.1', 'nobody@example.test'], ['pop3', '127.0.0.1', 'carol@example.test']]);
  });

  it('DELE + RSET + QUIT deletes nothing; DELE + QUIT deletes; a dropped connection deletes nothing', async () => {
    smtpSend(smtp, 'bob@example.org', 'dave@example.test', [msg('d1', 'x\r\n'), msg('d2', 'y\r\n'), msg('d3', 'z\r\n')]);
    let c = await login('dave');
    assert.equal(await c.command('DELE 1'), '+OK message 1 deleted');
    assert.match(await c.command('RSET'), /^\+OK maildrop has 3 messages/);
    assert.match(await c.command('QUIT'), /^\+OK/);
    c = await login('dave');
    assert.match(await c.command('STAT'), /^\+OK 3 /);
    await c.command('DELE 2');
    await c.command('DELE 3');
    c.drop();
    // The lock of the dropped session is released once the server sees the close.
    c = await loginEventually('dave');
    assert.match(await c.command('STAT'), /^\+OK 3 /);
    await c.command('DELE 2');
    assert.match(await c.command('QUIT'), /^\+OK .*\(2 messages left\)/);
    c = await login('dave');
    c.send('UIDL\r\n');
    assert.equal((await c.multi()).body, '1 1\r\n2 3\r\n');
    await c.command('QUIT');
  });

  it('a message whose body is not in data_dir (left out of a restored copy): "no longer in the store", the session goes on, and DELE removes it', async () => {
    const bodies = () => new Set(fs.readdirSync(`${dir}/data/bodies`));
    const before = bodies();
    smtpSend(smtp, 'bob@example.org', 'hana@example.test', [msg('h1', 'small\r\n'), msg('h2', `${'x'.repeat(998)}\r\n`.repeat(300)), msg('h3', 'last\r\n')]);
    const [file] = [...bodies()].filter((f) => !before.has(f));
    fs.rmSync(`${dir}/data/bodies/${file!}`);
    let c = await login('hana');
    assert.equal(await c.command('RETR 2'), '-ERR message is no longer in the store');
    assert.equal(await c.command('TOP 2 0'), '-ERR message is no longer in the store');
    c.send('RETR 3\r\n');
    assert.match((await c.multi()).body, /\r\n\r\nlast\r\n$/);
    assert.equal(await c.command('DELE 2'), '+OK message 2 deleted');
    assert.match(await c.command('QUIT'), /^\+OK .*\(2 messages left\)/);
    c = await login('hana');
    assert.match(await c.command('STAT'), /^\+OK 2 /);
    await c.command('QUIT');
    await until('the log line', () => m.logs.some((l) => l.msg === 'a message cannot be read: its body is not in data_dir; deleting it is all that can be done'));
  });

  async function loginEventually(user: string): Promise<RawPop3> {
    for (let i = 0; ; i++) {
      const { client } = await RawPop3.connect(pop3);
      await client.command(`USER ${user}@example.test`);
      const r = await client.command(`PASS ${user} pass`);
      if (r.startsWith('+OK')) return client;
      assert.match(r, /^-ERR \[IN-USE\]/);
      await client.command('QUIT');
      if (i > 200) throw new Error('the lock was never released');
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  it('UIDL is stable across sessions, deletions and new mail; the maildrop is fixed during a session', async () => {
    smtpSend(smtp, 'bob@example.org', 'erin@example.test', [msg('e1', '1\r\n'), msg('e2', '2\r\n'), msg('e3', '3\r\n')]);
    let c = await login('erin');
    c.send('UIDL\r\n');
    assert.equal((await c.multi()).body, '1 1\r\n2 2\r\n3 3\r\n');
    await c.command('DELE 2');
    // New mail while the session is open is not shown until the next session.
    smtpSend(smtp, 'bob@example.org', 'erin@example.test', [msg('e4', '4\r\n')]);
    assert.match(await c.command('STAT'), /^\+OK 2 /);
    assert.match(await c.command('QUIT'), /^\+OK/);
    c = await login('erin');
    c.send('UIDL\r\n');
    // Message numbers are renumbered; unique ids are not, and 2 is never given again.
    assert.equal((await c.multi()).body, '1 1\r\n2 3\r\n3 4\r\n');
    await c.command('DELE 3');
    await c.command('QUIT');
    smtpSend(smtp, 'bob@example.org', 'erin@example.test', [msg('e5', '5\r\n')]);
    c = await login('erin');
    c.send('UIDL\r\n');
    assert.equal((await c.multi()).body, '1 1\r\n2 3\r\n3 5\r\n');
    await c.command('QUIT');
  });

  it('the maildrop lock: a second session gets [IN-USE] until the first quits (RFC 1939 §8)', async () => {
    const first = await login('frank');
    const { client: second } = await RawPop3.connect(pop3);
    await second.command('USER frank@example.test');
    assert.equal(await second.command('PASS frank pass'), '-ERR [IN-USE] maildrop is locked by another session');
    // Still in AUTHORIZATION: it may try again once the first session is gone.
    assert.match(await first.command('QUIT'), /^\+OK/);
    await second.command('USER frank@example.test');
    assert.match(await second.command('PASS frank pass'), /^\+OK/);
    await second.command('QUIT');
  });

  it('the server\'s side of a session has TCP keepalive, so a client gone without a word lets go of its lock in about 70 s, not at the 10-minute autologout', async (t) => {
    const first = await login('frank');
    // ss shows one timer: the keepalive one once what was sent has been acknowledged.
    const timer = () => spawnSync('ss', ['-tnoH', 'state', 'established', `( sport = :${pop3} and dport = :${first.localPort} )`], { encoding: 'utf8' });
    let ss = timer();
    for (let i = 0; i < 50 && !ss.error && !/keepalive/.test(ss.stdout); i++) {
      await new Promise((r) => setTimeout(r, 100));
      ss = timer();
    }
    if (ss.error) {
      t.skip('needs ss (iproute2)');
    } else {
      assert.match(ss.stdout, /timer:\(keepalive,/, ss.stdout);
    }
    await first.command('QUIT');
  });

  it('pipelining: every command in one write, answers in order', async () => {
    smtpSend(smtp, 'bob@example.org', 'gina@example.test', [msg('g1', 'a\r\n'), msg('g2', '.b\r\n')]);
    const { client } = await RawPop3.connect(pop3);
    client.send('CAPA\r\nUSER gina@example.test\r\nPASS gina pass\r\nSTAT\r\nLIST\r\nRETR 1\r\nRETR 2\r\nTOP 2 0\r\nUIDL 2\r\nDELE 1\r\nNOOP\r\nRSET\r\nQUIT\r\n');
    const capa = await client.multi();
    assert.match(capa.body, /^PIPELINING$/m);
    assert.equal(await client.line(), '+OK send PASS');
    assert.match(await client.line(), /^\+OK maildrop has 2 messages/);
    assert.match(await client.line(), /^\+OK 2 \d+$/);
    assert.match((await client.multi()).status, /^\+OK 2 messages/);
    assert.match((await client.multi()).body, /Subject: g1\r\n\r\na\r\n$/);
    assert.match((await client.multi()).body, /Subject: g2\r\n\r\n\.\.b\r\n$/);
    assert.match((await client.multi()).body, /Subject: g2\r\n\r\n$/);
    assert.equal(await client.line(), '+OK 2 2');
    assert.equal(await client.line(), '+OK message 1 deleted');
    assert.equal(await client.line(), '+OK');
    assert.match(await client.line(), /^\+OK maildrop has 2 messages/);
    assert.match(await client.line(), /^\+OK .*signing off/);
    await client.closed();
  });

  it('garbage, wrong state and overlong lines get -ERR and the session goes on', async () => {
    const { client } = await RawPop3.connect(pop3);
    assert.equal(await client.command('RETR 1'), '-ERR RETR is not valid in the AUTHORIZATION state');
    assert.equal(await client.command('HELO there'), '-ERR unknown command');
    client.send(Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a]));
    assert.equal(await client.line(), '-ERR unknown command');
    assert.equal(await client.command('X'.repeat(10_000)), '-ERR command line too long');
    assert.equal(await client.command('PASS x'), '-ERR send USER first');
    assert.match(await client.command('QUIT'), /^\+OK/);
  });

  it('curl pop3://: LIST, RETR and DELE', () => {
    smtpSend(smtp, 'bob@example.org', 'carol@example.test', [msg('c1', 'curl one\r\n'), msg('c2', 'curl two\r\n')]);
    const base = `pop3://127.0.0.1:${pop3}/`;
    const auth = ['--user', 'carol@example.test:carol pass', '--noproxy', '*', '-s', '-S'];
    const list = spawnSync('curl', [...auth, base], { encoding: 'utf8' });
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^1 \d+\r\n2 \d+\r\n$/);
    const retr = spawnSync('curl', [...auth, `${base}2`], { encoding: 'utf8' });
    assert.equal(retr.status, 0, retr.stderr);
    assert.match(retr.stdout, /Subject: c2\r\n\r\ncurl two\r\n$/);
    const dele = spawnSync('curl', [...auth, '-X', 'DELE', '-I', `${base}1`], { encoding: 'utf8' });
    assert.equal(dele.status, 0, dele.stderr);
    const after = spawnSync('curl', [...auth, base], { encoding: 'utf8' });
    assert.match(after.stdout, /^1 \d+\r\n$/);
    const check = spawnSync('curl', [...auth, `${base}1`], { encoding: 'utf8' });
    assert.match(check.stdout, /Subject: c2/);
  });

  it('a pipelined download to a client that stops reading: the server waits with little memory, then sends every byte', { timeout: 120_000 }, async () => {
    // 48 messages of 1 MiB and 16 small ones in between.
    const messages = await storeBig(`${m.dir}/data`, 'hank', Array.from({ length: 64 }, (_, i) => (i % 4 === 3 ? 2_000 : 1024 * 1024)));
    const socket = net.connect({ host: '127.0.0.1', port: pop3 });
    const received: Buffer[] = [];
    let seen = '';
    socket.on('data', (d: Buffer) => {
      received.push(d);
      seen = (seen + d.toString('latin1')).slice(-200);
    });
    const replyMatching = async (re: RegExp) => {
      while (!re.test(seen)) await new Promise((r) => setTimeout(r, 10));
    };
    socket.write('USER hank@example.test\r\nPASS hank pass\r\n');
    await replyMatching(/\+OK maildrop has 64 messages/);
    received.length = 0;
    const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${m.process.pid}/status`, 'utf8'))![1]) / 1024;
    const before = rssMiB();
    socket.pause();
    socket.write(messages.map((_, i) => `RETR ${i + 1}\r\n`).join('') + 'QUIT\r\n');
    await new Promise((r) => setTimeout(r, 1500));
    // Unread, the replies would be 50 MB; the server keeps a bounded buffer and the kernel the rest.
    const growth = rssMiB() - before;
    assert.ok(growth < 40, `server RSS grew by ${growth.toFixed(0)} MiB while the client read nothing`);
    socket.resume();
    await replyMatching(/\+OK mailnest POP3 server signing off[^\n]*\r\n$/);
    socket.destroy();
    assertDownload(Buffer.concat(received).toString('latin1'), messages);
  });

  it('large messages back to back: the read buffers one message used serve the next only once its bytes are sent', { timeout: 60_000 }, async () => {
    // Files of 1 to 3 pieces whose last piece is short: it is still queued when the next
    // message is read, unless the connection hands it to the network first.
    const messages = await storeBig(`${m.dir}/data`, 'iris', Array.from({ length: 24 }, (_, i) => 300_000 + 100_003 * (i % 5)));
    const { client } = await RawPop3.connect(pop3);
    assert.match(await client.command('USER iris@example.test'), /^\+OK/);
    assert.match(await client.command('PASS iris pass'), /^\+OK maildrop has 24 messages/);
    client.send(messages.map((_, i) => `RETR ${i + 1}\r\n`).join('') + 'QUIT\r\n');
    assertDownload(await client.rest(), messages);
  });

  it('a pipelined download to a client that keeps up does not hold up other sessions', { timeout: 120_000 }, async () => {
    await createUsers(`${m.dir}/data`, [['ivan@example.test', 'ivan pass']]);
    const body = Buffer.from(`Subject: small\r\n\r\n${'a line of text in a small message\r\n'.repeat(280)}`);
    const store = new SqliteStore(`${m.dir}/data`);
    try {
      const user = (await store.findUser('ivan@example.test'))!;
      await Promise.all(Array.from({ length: 5000 }, () => store.accept({ id: newQueueId(), body: [body], sender: 'bob@example.org', local: [{ userId: user.id, prefix: Buffer.alloc(0) }] })));
    } finally {
      store.close();
    }
    const other = await login('frank');
    const fast = net.connect({ host: '127.0.0.1', port: pop3 });
    let bytes = 0;
    let tail = '';
    let downloaded = false;
    let underWay: () => void = () => {};
    const started = new Promise<void>((resolve) => { underWay = resolve; });
    const done = new Promise<void>((resolve) => {
      fast.on('data', (d: Buffer) => {
        bytes += d.length;
        if (bytes > 1024 * 1024) underWay();
        tail = (tail + d.toString('latin1')).slice(-200);
        if (/signing off[^\n]*\r\n$/.test(tail)) {
          downloaded = true;
          resolve();
        }
      });
    });
    fast.write(`USER ivan@example.test\r\nPASS ivan pass\r\n${Array.from({ length: 5000 }, (_, i) => `RETR ${i + 1}\r\n`).join('')}QUIT\r\n`);
    await started;
    assert.equal(await other.command('NOOP'), '+OK');
    assert.equal(downloaded, false, 'the NOOP was answered only after the whole 50 MB download');
    await done;
    fast.destroy();
    await other.command('QUIT');
  });

  it('shutdown: an idle session gets -ERR [SYS/TEMP] and its deletions are not applied', async () => {
    smtpSend(smtp, 'bob@example.org', 'alice@example.test', [msg('keep', 'keep me\r\n')]);
    const c = await login('alice');
    const stat = await c.command('STAT');
    const count = Number(stat.split(' ')[1]);
    for (let n = 1; n <= count; n++) assert.match(await c.command(`DELE ${n}`), /^\+OK/);
    const code = m.stop();
    assert.equal(await c.line(), '-ERR [SYS/TEMP] server shutting down, try again later');
    await c.closed();
    assert.equal(await code, 0);
    const store = new SqliteStore(`${m.dir}/data`);
    try {
      const user = await store.findUser('alice@example.test');
      assert.equal((await store.listMailbox(user!.id)).length, count);
    } finally {
      store.close();
    }
  });
});
