/**
 * POP3 with TLS against a running mailnest on its defaults (`allow_insecure` off): credentials
 * refused in the clear, STLS and pop3s with python's poplib, large messages pipelined over
 * pop3s, and Debian's mpop downloading MIME messages with attachments that were sent through
 * SMTP, compared byte for byte.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertDownload, createUsers, ensureMpop, mimeMessage, RawPop3, smtpSend, storeBig, unstuff } from '../helpers/pop3.ts';
import { baseConfig, python, startMailnest, tempDir, writeConfig, type RunningMailnest } from '../helpers/server.ts';

describe('POP3 integration (TLS, real clients)', () => {
  let m: RunningMailnest;
  let dir: string;
  let ca: Buffer;

  before(async () => {
    dir = tempDir('mailnest-pop3tls-');
    const cfg = writeConfig(dir, baseConfig(dir));
    await createUsers(`${dir}/data`, [['alice@example.test', 'alice pass'], ['bob@example.test', 'bob pass'], ['mia@example.test', 'mia pass']]);
    m = await startMailnest(dir, cfg);
    ca = fs.readFileSync(m.certFile);
  });

  after(async () => {
    await m?.stop();
  });

  it('the plain port refuses credentials before STLS and does not offer USER/SASL', async () => {
    const { client } = await RawPop3.connect(m.port('pop3'));
    client.send('CAPA\r\n');
    const capa = await client.multi();
    assert.match(capa.body, /^STLS$/m);
    assert.doesNotMatch(capa.body, /^USER$|^SASL/m);
    assert.match(await client.command('USER alice@example.test'), /^-ERR \[AUTH\] /);
    assert.match(await client.command(`AUTH PLAIN ${Buffer.from('\0alice@example.test\0alice pass').toString('base64')}`), /^-ERR \[AUTH\] /);
    // After STLS the same session may log in.
    assert.equal(await client.stls(ca), '+OK begin TLS negotiation');
    client.send('CAPA\r\n');
    const secure = await client.multi();
    assert.match(secure.body, /^USER$/m);
    assert.match(secure.body, /^SASL PLAIN LOGIN$/m);
    assert.doesNotMatch(secure.body, /^STLS$/m);
    assert.match(await client.command(`AUTH PLAIN ${Buffer.from('\0alice@example.test\0alice pass').toString('base64')}`), /^\+OK/);
    assert.match(await client.command('QUIT'), /^\+OK/);
  });

  it('python poplib over STLS and over pop3s, verifying the certificate', async () => {
    smtpSend(m.port('smtp'), 'carl@example.org', 'bob@example.test', [Buffer.from('Subject: tls\r\n\r\nover tls\r\n')]);
    const r = python(`
import poplib, ssl, sys, json
ctx = ssl.create_default_context(cafile=sys.argv[3])
out = {}
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=30)
try:
    p.user('bob@example.test')
except poplib.error_proto as e:
    out['clear'] = e.args[0].decode()
p.stls(ctx)
p.user('bob@example.test'); p.pass_('bob pass')
out['stls'] = [l.decode() for l in p.retr(1)[1]][-1]
p.quit()
p = poplib.POP3_SSL('127.0.0.1', int(sys.argv[2]), context=ctx, timeout=30)
out['capa'] = sorted(p.capa().keys())
p.user('bob@example.test'); p.pass_('bob pass')
out['pop3s'] = [l.decode() for l in p.retr(1)[1]][-1]
out['uidl'] = [x.decode() for x in p.uidl()[1]]
p.quit()
print(json.dumps(out))
`, [String(m.port('pop3')), String(m.port('pop3s')), m.certFile]);
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout);
    assert.match(o.clear, /^-ERR \[AUTH\] /);
    assert.equal(o.stls, 'over tls');
    assert.equal(o.pop3s, 'over tls');
    assert.ok(!o.capa.includes('STLS'));
    assert.ok(o.capa.includes('USER'));
    assert.deepEqual(o.uidl, ['1 1']);
    // Both sessions' log lines say they were encrypted, and how, as SMTP's do.
    const sessions = () => m.logs.filter((l) => l.msg === 'session' && l.user === 'bob@example.test' && l.outcome === 'quit');
    for (let i = 0; i < 100 && sessions().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const lines = sessions();
    assert.deepEqual(lines.map((l) => l.listener).sort(), ['pop3', 'pop3s']);
    for (const l of lines) assert.match(String(l.tls), /^TLSv1\.[23] \S+$/, JSON.stringify(l));
  });

  it('the lock is shared between the pop3 and pop3s listeners', async () => {
    const { client: a } = await RawPop3.connect(m.port('pop3s'), { tls: true, ca });
    await a.command('USER bob@example.test');
    assert.match(await a.command('PASS bob pass'), /^\+OK/);
    const { client: b } = await RawPop3.connect(m.port('pop3'));
    await b.stls(ca);
    await b.command('USER bob@example.test');
    assert.match(await b.command('PASS bob pass'), /^-ERR \[IN-USE\] /);
    await a.command('QUIT');
    await b.command('QUIT');
  });

  it('large messages pipelined over pop3s arrive byte for byte (read buffers reused only once encrypted and sent)', { timeout: 60_000 }, async () => {
    const messages = await storeBig(`${dir}/data`, 'nora', Array.from({ length: 12 }, (_, i) => 300_000 + 150_001 * (i % 4)));
    const { client } = await RawPop3.connect(m.port('pop3s'), { tls: true, ca });
    assert.match(await client.command('USER nora@example.test'), /^\+OK/);
    assert.match(await client.command('PASS nora pass'), /^\+OK maildrop has 12 messages/);
    client.send(messages.map((_, i) => `RETR ${i + 1}\r\n`).join('') + 'QUIT\r\n');
    assertDownload(await client.rest(), messages);
  });

  it('curl over STLS downloads the message', () => {
    const r = spawnSync('curl', ['-s', '-S', '--noproxy', '*', '--ssl-reqd', '--cacert', m.certFile, '--user', 'bob@example.test:bob pass', `pop3://localhost:${m.port('pop3')}/1`, '--resolve', `localhost:${m.port('pop3')}:127.0.0.1`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\r\n\r\nover tls\r\n$/);
  });

  it('mpop downloads MIME messages with attachments byte for byte as sent through SMTP', async (t) => {
    const mpop = ensureMpop();
    if ('missing' in mpop) {
      t.skip(mpop.missing);
      return;
    }
    const sent = [mimeMessage(1, 3000), mimeMessage(2, 200_000), mimeMessage(3, 70_000)];
    smtpSend(m.port('smtp'), 'bob@example.org', 'mia@example.test', sent);
    // What the server holds: trace headers + the message as sent; RETR must give exactly that.
    const { client } = await RawPop3.connect(m.port('pop3s'), { tls: true, ca });
    await client.command('USER mia@example.test');
    await client.command('PASS mia pass');
    const held: string[] = [];
    for (let n = 1; n <= sent.length; n++) {
      const size = Number((await client.command(`LIST ${n}`)).split(' ')[2]);
      client.send(`RETR ${n}\r\n`);
      const original = unstuff((await client.multi()).body);
      assert.equal(Buffer.byteLength(original, 'latin1'), size);
      assert.ok(original.endsWith(sent[n - 1]!.toString('latin1')), `message ${n} differs from what was sent`);
      assert.match(original, /^Return-Path: <bob@example\.org>\r\nReceived: /);
      held.push(original);
    }
    await client.command('QUIT');

    const out = path.join(dir, 'mpop-out');
    fs.mkdirSync(out);
    const deliver = path.join(dir, 'deliver.sh');
    fs.writeFileSync(deliver, `#!/bin/sh\nn=$(ls "${out}" | wc -l)\ncat > "${out}/$n.eml"\n`, { mode: 0o755 });
    const r = spawnSync(mpop.path, [
      '--host=127.0.0.1', `--port=${m.port('pop3')}`, '--user=mia@example.test', '--passwordeval=echo mia pass',
      '--tls=on', '--tls-starttls=on', `--tls-trust-file=${m.certFile}`, '--auth=user',
      `--deliver=mda,${deliver}`, '--keep=off', '--received-header=off', '--only-new=off', '--pipelining=on',
    ], { encoding: 'utf8', env: { ...process.env, HOME: dir }, timeout: 60_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const got = fs.readdirSync(out).sort().map((f) => fs.readFileSync(path.join(out, f), 'latin1'));
    assert.equal(got.length, sent.length);
    // mpop hands messages to the MDA with LF line ends (the local convention); otherwise identical.
    for (let i = 0; i < sent.length; i++) assert.equal(got[i], held[i]!.replace(/\r\n/g, '\n'), `mpop copy of message ${i + 1}`);
    // --keep=off: mpop deleted them with DELE + QUIT.
    const { client: after } = await RawPop3.connect(m.port('pop3s'), { tls: true, ca });
    await after.command('USER mia@example.test');
    assert.match(await after.command('PASS mia pass'), /^\+OK maildrop has 0 messages/);
    await after.command('QUIT');
  });
});
