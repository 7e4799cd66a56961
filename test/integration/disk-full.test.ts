/**
 * A full disk under data_dir (a small tmpfs): SMTP answers 452 4.3.1 at MAIL when the room
 * left cannot hold the declared SIZE, and at the end of DATA when the message did not fit; the
 * HTTP API answers 507, `mailnest send` one clear line and `mailnest sendmail` EX_TEMPFAIL;
 * nothing is acknowledged that is not stored, the server keeps running, and once space is
 * freed mail is accepted again; a delivery whose outcome cannot be recorded is not made again.
 * Needs root to mount the tmpfs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { addUser, baseConfig, cli, startMailnest, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { dataDirOf, mailbox } from '../helpers/mailbox.ts';
import { queueJson, until } from '../helpers/relay.ts';
import { fillUp, mountTmpfs } from '../helpers/tmpfs.ts';

const disk = mountTmpfs('8m');
const dir = disk?.dir ?? '';

describe('a full disk under data_dir', { skip: disk ? false : 'needs root to mount a small tmpfs' }, () => {
  let m: RunningMailnest;
  let configFile: string;
  let token: string;
  const filler = path.join(dir, 'filler');
  const sink = new SmtpSink();

  before(async () => {
    await sink.start();
    configFile = writeConfig(dir, baseConfig(dir, {
      listen: { http: ['127.0.0.1:0'] },
      relay: { routes: { 'far.test': `127.0.0.1:${sink.port}` } },
      queue: { retry: ['5s'], poll_interval: '200ms' },
      // The DKIM key would be made at the first delivery, which the full disk would refuse.
      dkim: { enabled: false },
    }));
    addUser(configFile, 'alice@example.test', 'alice pass');
    const t = cli(configFile, ['token', 'create', 'cron']);
    assert.equal(t.status, 0, t.stderr);
    token = t.stdout.trim().split(/\s+/).pop()!;
    m = await startMailnest(dir, configFile);
  });

  after(async () => {
    await m?.stop();
    await sink.stop();
    await disk?.unmount();
  });

  /** Takes the free space of the tmpfs down to `leave` bytes (every byte when 0). */
  async function fillDisk(leave = 0): Promise<void> {
    fillUp(filler, leave);
    // The server reads the free space in the background once a second: with no room at all, it
    // shows it by refusing a MAIL; with some left, a reading is waited for.
    if (leave === 0) await until('the server to see the disk full', async () => (await mailFrom()).code === 452);
    else await new Promise((r) => setTimeout(r, 1500));
  }

  /** Frees the disk, and waits until the server's reading has room for a message of `size`. */
  async function freeDisk(size: number): Promise<void> {
    fs.rmSync(filler);
    await until('the server to see room again', async () => (await mailFrom(` SIZE=${size}`)).code === 250);
  }

  async function mailFrom(params = ''): Promise<{ code: number; text: string }> {
    const c = await SmtpClient.open(m.port('smtp'));
    await c.ehlo();
    const r = await c.cmd(`MAIL FROM:<bob@remote.test>${params}`);
    await c.quit();
    return { code: r.code, text: r.lines.join(' ') };
  }

  async function sendOver(body: string): Promise<{ code: number; text: string }> {
    const c = await SmtpClient.open(m.port('smtp'));
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<bob@remote.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(body);
    const r = await c.reply();
    await c.quit();
    return { code: r.code, text: r.lines.join(' ') };
  }

  const big = (subject: string) => `Subject: ${subject}\r\n\r\n${`${'x'.repeat(998)}\r\n`.repeat(3000)}.\r\n`;

  it('SMTP gets 452 4.3.1, the API 507, send a clear line; all work again once there is room', async () => {
    // 1.5 MiB left: enough to start a transaction, not for a declared 1 MB nor a 3 MB message.
    await fillDisk(1.5 * 1024 * 1024);
    const declared = await mailFrom(' SIZE=1000000');
    assert.equal(declared.code, 452);
    assert.match(declared.text, /^4\.3\.1 Insufficient system storage/);
    assert.equal((await mailFrom(' SIZE=1000')).code, 250);
    const refused = await sendOver(big('no room'));
    assert.equal(refused.code, 452);
    assert.match(refused.text, /^4\.3\.1 Insufficient system storage/);

    await fillDisk();
    assert.equal((await mailFrom()).code, 452, 'nothing is started with no room at all');

    const api = await fetch(`http://127.0.0.1:${m.port('http')}/api/v1/send`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ to: ['alice@example.test'], subject: 'no room either', text: 'y'.repeat(1_500_000) }),
    });
    assert.equal(api.status, 507);
    assert.match(((await api.json()) as { error: string }).error, /no room to store the message/);

    const send = cli(configFile, ['send', '--to', 'alice@example.test', '--subject', 'nor here'], 'z'.repeat(1_500_000));
    assert.equal(send.status, 1);
    assert.match(send.stderr, /^mailnest: the disk holding data_dir is (nearly )?full \(.*\): free some space and try again\n$/);
    const sendmail = cli(configFile, ['sendmail', '--sysexits', 'alice@example.test'], `Subject: from cron\n\n${'z'.repeat(1_500_000)}\n`);
    assert.equal(sendmail.status, 75, `sendmail exits EX_TEMPFAIL: ${sendmail.stderr}`);
    assert.match(sendmail.stderr, /cannot queue the message now: .*(disk is full|no space left on device|bytes are free, and a message)/);

    await freeDisk(big('room again').length);
    const accepted = await sendOver(big('room again'));
    assert.equal(accepted.code, 250, accepted.text);
    const list = cli(configFile, ['user', 'list', '--json']);
    const users = JSON.parse(list.stdout) as { address: string; messages: number }[];
    assert.deepEqual(users.map((u) => [u.address, u.messages]), [['alice@example.test', 1]]);
  });

  it('a 100 KiB message (for the body log) that meets a full disk after MAIL gets 452 4.3.1, and the next one is stored', async () => {
    const medium = (subject: string) => `Subject: ${subject}\r\n\r\n${`${'m'.repeat(998)}\r\n`.repeat(100)}.\r\n`;
    const c = await SmtpClient.open(m.port('smtp'));
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<bob@remote.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
    // The disk fills up between MAIL and the end of the message.
    await fillDisk();
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(medium('no room after all'));
    const r = await c.reply();
    assert.equal(r.code, 452, r.raw);
    assert.match(r.lines.join(' '), /^4\.3\.1 Insufficient system storage/);
    assert.equal((await c.cmd('NOOP')).code, 250, 'the session goes on');
    await c.quit();

    await freeDisk(medium('room again').length);
    const accepted = await sendOver(medium('room again'));
    assert.equal(accepted.code, 250, accepted.text);
    const users = JSON.parse(cli(configFile, ['user', 'list', '--json']).stdout) as { address: string; messages: number }[];
    assert.deepEqual(users.map((u) => [u.address, u.messages]), [['alice@example.test', 2]]);
  });

  it('a delivery whose outcome cannot be recorded is not made again while the disk is full, and is recorded once there is room', async () => {
    // The next hop puts the first attempt off, and holds the second's message until the disk is
    // full, so that it is taken then, whenever it comes.
    const port = sink.port;
    await sink.stop();
    let full!: () => void;
    const filled = new Promise<void>((r) => { full = r; });
    let attempts = 0;
    const hop = new SmtpSink({ rcptReply: () => (++attempts === 1 ? '451 4.3.0 not yet' : undefined), startGate: () => filled });
    await hop.start(port);
    try {
      const queued = cli(configFile, ['send', '--to', 'someone@far.test', '--subject', 'held'], 'the text\n');
      assert.equal(queued.status, 0, queued.stderr);
      await until('a first attempt, deferred', () => queueJson(configFile)[0]?.recipients[0]?.status === 'deferred');
      await fillDisk();
      full();
      // Then a scan every 200 ms: without the hold, the recipient, still due, went at every one.
      await until('the delivery', () => hop.messages.length > 0);
      await until('the outcome held', () => m.logs.some((l) => /could not record the outcome of a delivery/.test(String(l.msg))));
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(hop.messages.length, 1);
      assert.equal(queueJson(configFile)[0]?.recipients[0]?.status, 'deferred', 'and is not on disk yet');
      fs.rmSync(filler);
      await until('the outcome to be recorded', () => queueJson(configFile).length === 0);
      assert.equal(hop.messages.length, 1);
    } finally {
      fs.rmSync(filler, { force: true });
      await hop.stop();
      await sink.start(port);
    }
  });

  it('a failure whose report meets a full disk is reported once there is room, and once', async () => {
    const port = sink.port;
    await sink.stop();
    const queued = cli(configFile, ['send', '--from', 'alice@example.test', '--to', 'gone@far.test', '--subject', 'bounce on a full disk'], 'the text\n');
    assert.equal(queued.status, 0, queued.stderr);
    await until('a first attempt, deferred', () => queueJson(configFile)[0]?.recipients[0]?.status === 'deferred');
    await fillDisk();
    sink.opts.rcptReply = () => '550 5.1.1 no such user';
    await sink.start(port);
    const reports = async () => (await mailbox(dataDirOf(dir), 'alice@example.test')).filter((r) => r.includes('Subject: bounce on a full disk'));
    try {
      await until('the refusal', () => sink.commands.includes('RCPT TO:<gone@far.test>'));
      await new Promise((r) => setTimeout(r, 2000));
      assert.deepEqual(await reports(), [], 'no report while the disk is full');
    } finally {
      fs.rmSync(filler);
    }
    await until('the report', async () => (await reports()).length > 0);
    await new Promise((r) => setTimeout(r, 2000));
    const [report, ...more] = await reports();
    assert.deepEqual(more, [], 'one report');
    assert.match(report!.toString(), /^Final-Recipient: rfc822; gone@far\.test\r$/m);
    assert.deepEqual(queueJson(configFile), []);
    delete sink.opts.rcptReply;
  });

  it('the API, send and sendmail hold a message to the room SMTP does: none of them takes the 1 MiB that deletions need', async () => {
    const MiB = 1024 * 1024;
    // 1.5 MiB left: a 600 KB message fits on the disk, but not with room for twice it and 1 MiB.
    await fillDisk(1.5 * MiB);
    const text = 'n'.repeat(600_000);
    const api = await fetch(`http://127.0.0.1:${m.port('http')}/api/v1/send`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ to: ['alice@example.test'], subject: 'nearly full', text }),
    });
    assert.equal(api.status, 507);
    const send = cli(configFile, ['send', '--to', 'alice@example.test', '--subject', 'nearly full'], text);
    assert.equal(send.status, 1);
    assert.match(send.stderr, /^mailnest: the disk holding data_dir is nearly full \(\d+ bytes are free, and a message of \d+ bytes to 1 mailbox needs \d+: twice its size, 1 KiB a copy, and 1 MiB for deletions\): free some space and try again\n$/);
    const sendmail = cli(configFile, ['sendmail', '--sysexits', 'alice@example.test'], `Subject: nearly full\n\n${text}\n`);
    assert.equal(sendmail.status, 75, sendmail.stderr);
    const st = fs.statfsSync(dir);
    assert.ok(st.bavail * st.bsize >= MiB, `${st.bavail * st.bsize} bytes left`);
    // A small one still goes.
    assert.equal(cli(configFile, ['send', '--to', 'alice@example.test', '--subject', 'small'], 'fits').status, 0);
    fs.rmSync(filler);
  });

  it('messages that all passed MAIL within one reading of the free space do not take the reserve: the rest get 452 4.3.1', async () => {
    const MiB = 1024 * 1024;
    await fillDisk(3 * MiB);
    // No SIZE declared, all at once: each passes MAIL against the same reading.
    const body = (i: number) => `Subject: flood ${i}\r\n\r\n${`${'y'.repeat(998)}\r\n`.repeat(600)}.\r\n`;
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => sendOver(body(i))));
    const codes = replies.map((r) => r.code);
    assert.ok(codes.includes(250) && codes.includes(452), codes.join(' '));
    for (const r of replies) if (r.code === 452) assert.match(r.text, /^4\.3\.1 /);
    const st = fs.statfsSync(dir);
    // The reserve is still there, for the deletions that make room again.
    assert.ok(st.bavail * st.bsize >= MiB, `${st.bavail * st.bsize} bytes left`);
    fs.rmSync(filler);
  });
});
