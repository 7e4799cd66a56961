/**
 * Outbound delivery when the next hop says no or is not there: retries on schedule and on
 * `queue retry`, 4xx then success, 5xx and expiry bounced to the local sender as RFC 3464
 * reports (checked with python's email parser), NOTIFY=NEVER honoured.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { baseConfig, cli, python, startMailnest, tempDir, writeConfig, addUser, type RunningMailnest } from '../helpers/server.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { SmtpSink, type SinkOptions } from '../helpers/smtp-sink.ts';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { mailbox } from '../helpers/mailbox.ts';
import { inject, injectAsync, queueJson, queueJsonAsync, until } from '../helpers/relay.ts';

const message = (subject: string) => [
  'From: alice@example.test', 'To: someone@remote.test', `Subject: ${subject}`, 'Message-ID: <' + subject.replace(/\W/g, '') + '@example.test>', '', 'body', '',
].join('\r\n');


const PARSE_REPORT = `
import sys, email, json
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
parts = list(m.iter_parts())
status = parts[1]
groups = status.get_payload()
print(json.dumps({
  "type": m.get_content_type(),
  "report_type": m.get_param("report-type"),
  "from": m["From"], "subject": m["Subject"],
  "parts": [p.get_content_type() for p in parts],
  "text": parts[0].get_content(),
  "per_message": dict(groups[0].items()),
  "recipients": [dict(g.items()) for g in groups[1:]],
  "original": parts[2].get_payload() if parts[2].get_content_type() == "text/rfc822-headers" else None,
}))
`;

function parseReport(raw: Buffer): any {
  const r = python(PARSE_REPORT, [], raw.toString('latin1'));
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('relay failures and bounces', () => {
  let dir: string;
  let sink: SmtpSink;
  /** A second destination, which refuses every recipient. */
  let refusing: SmtpSink;
  let server: RunningMailnest;
  let configFile: string;
  let deadPort: number;
  let replies: Map<string, string[]>;

  before(async () => {
    dir = tempDir();
    replies = new Map();
    // Scripted RCPT replies per address, one per attempt; the last repeats.
    sink = new SmtpSink({
      rcptReply: (a) => {
        const list = replies.get(a);
        if (!list || list.length === 0) return undefined;
        const r = list.length > 1 ? list.shift() : list[0];
        return r === '250' ? undefined : r;
      },
    });
    await sink.start();
    refusing = new SmtpSink({ rcptReply: (a) => `550 5.1.1 <${a}>: no such user here` });
    await refusing.start();
    const dead = new SmtpSink();
    deadPort = await dead.start();
    await dead.stop();
    configFile = writeConfig(dir, baseConfig(dir, {
      relay: { routes: { 'remote.test': `127.0.0.1:${sink.port}`, 'elsewhere.test': `127.0.0.1:${refusing.port}`, 'down.test': `127.0.0.1:${deadPort}`, 'slow.test': `127.0.0.1:${deadPort}`, 'named-down.test': `localhost:${deadPort}` } },
      // max_age long enough that a deferral outlasts the slow looks of a busy machine at it, short
      // enough for the expiry cases to wait for.
      queue: { retry: ['1s', '2s'], poll_interval: '200ms', max_age: '15s', delay_warning: '1s' },
    }));
    addUser(configFile, 'alice@example.test', 'secret-pw');
    // alice, the first, is the domain's postmaster; bob gets the mail of strangers.
    addUser(configFile, 'bob@example.test', 'bob-pw');
    assert.equal(cli(configFile, ['alias', 'add', 'old-friend@example.test', 'moved@remote.test']).status, 0);
    server = await startMailnest(dir, configFile);
  });

  /** The report alice gets about the message `message(subject)`, once it is there. */
  async function bounceOf(subject: string): Promise<any> {
    const messageId = `${subject.replace(/\W/g, '')}@example.test`;
    let report: any;
    await until(`the bounce of "${subject}"`, async () => {
      for (const m of await mailbox(path.join(dir, 'data'), 'alice@example.test')) {
        // Parsed (by a child process, which blocks this one and its next hop) only when it may be the one.
        if (!m.toString('latin1').includes(messageId)) continue;
        const p = parseReport(m);
        if (p.original?.includes(messageId)) report = p;
      }
      return report !== undefined;
    });
    return report;
  }

  after(async () => {
    await server?.stop();
    await sink?.stop();
    await refusing?.stop();
  });

  it('retries after 4xx and delivers when the peer accepts', async () => {
    replies.set('temp@remote.test', ['450 4.2.1 mailbox busy', '451 4.3.0 try later', '250']);
    const id = inject(configFile, 'alice@example.test', ['temp@remote.test'], message('four then two'));
    await until('delivery', () => sink.messages.some((m) => m.to.includes('temp@remote.test')));
    assert.ok(!queueJson(configFile).some((e) => e.id === id));
    const attempts = sink.commands.filter((c) => c === 'RCPT TO:<temp@remote.test>').length;
    assert.equal(attempts, 3);
  });

  it('bounces a 5xx at once: the sender gets a multipart/report naming the recipient', async () => {
    replies.set('gone@remote.test', ['550 5.1.1 <gone@remote.test>: no such user']);
    const id = inject(configFile, 'alice@example.test', ['gone@remote.test'], message('hard failure'));
    const dataDir = path.join(dir, 'data');
    const report = await bounceOf('hard failure');
    assert.equal(report.type, 'multipart/report');
    assert.equal(report.report_type, 'delivery-status');
    assert.deepEqual(report.parts, ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    assert.equal(report.per_message['Reporting-MTA'], 'dns; mx.example.test');
    assert.equal(report.recipients.length, 1);
    assert.equal(report.recipients[0]['Final-Recipient'], 'rfc822; gone@remote.test');
    assert.equal(report.recipients[0].Action, 'failed');
    assert.equal(report.recipients[0].Status, '5.1.1');
    assert.match(report.recipients[0]['Diagnostic-Code'], /^smtp; 550 5\.1\.1/);
    assert.match(report.subject, /Undelivered/);
    assert.ok(!queueJson(configFile).some((e) => e.id === id));
    // The bounce went in from the null sender and was not itself queued anywhere.
    const raw = (await mailbox(dataDir, 'alice@example.test')).find((m) => m.includes('hardfailure@example.test'))!;
    assert.match(raw.toString('latin1'), /^Return-Path: <>\r\n/);
  });

  it('recipients that fail at two destinations in one round get one report naming both, not one each', async () => {
    replies.set('gone3@remote.test', ['550 5.1.1 <gone3@remote.test>: no such user']);
    const id = inject(configFile, 'alice@example.test', ['gone3@remote.test', 'gone4@elsewhere.test'], message('two destinations'));
    const report = await bounceOf('two destinations');
    assert.deepEqual(report.recipients.map((r: any) => [r['Final-Recipient'], r.Action, r['Remote-MTA']]).sort(), [
      ['rfc822; gone3@remote.test', 'failed', 'dns; 127.0.0.1'],
      ['rfc822; gone4@elsewhere.test', 'failed', 'dns; 127.0.0.1'],
    ]);
    assert.match(report.text, /<gone3@remote\.test>: 550 5\.1\.1[\s\S]*<gone4@elsewhere\.test>: 550 5\.1\.1|<gone4@elsewhere\.test>: 550 5\.1\.1[\s\S]*<gone3@remote\.test>: 550 5\.1\.1/);
    // No second report follows.
    const reportsLogged = () => server.logs.filter((l) => l.msg === 'delivery status notification queued' && l.about === id).length;
    await until('the report logged', () => reportsLogged() > 0);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(reportsLogged(), 1);
    assert.equal((await mailbox(path.join(dir, 'data'), 'alice@example.test')).filter((m) => m.includes('twodestinations@example.test')).length, 1);
  });

  it('a bounce for a local sender that is no mailbox (cron\'s root@) goes to the domain\'s postmaster, not nowhere', async () => {
    replies.set('gone2@remote.test', ['550 5.1.1 <gone2@remote.test>: no such user']);
    inject(configFile, 'root@example.test', ['gone2@remote.test'], message('from root'));
    // alice is example.test's first user, and so its postmaster.
    const report = await bounceOf('from root');
    assert.equal(report.recipients[0]['Final-Recipient'], 'rfc822; gone2@remote.test');
    assert.equal(report.recipients[0].Action, 'failed');
    // The log line, read from the server's output, may come after the mailbox shows the report.
    await until('the log line', () => server.logs.some((l) => l.msg === 'delivery status notification for a local sender that does not exist goes to the postmaster' && l.sender === 'root@example.test'));
  });

  it('reports asked for from the internet with a forged local sender: no "delivered" one, and a failure goes to no one, not to the postmaster', async () => {
    assert.equal(cli(configFile, ['alias', 'add', 'forwards@example.test', 'refuses@remote.test']).status, 0);
    replies.set('refuses@remote.test', ['550 5.1.1 <refuses@remote.test>: no such user']);
    const c = await SmtpClient.connect(server.port('smtp'));
    await c.reply();
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<nobody@example.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<bob@example.test> NOTIFY=SUCCESS')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<forwards@example.test> NOTIFY=SUCCESS,FAILURE')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    assert.equal((await c.cmd('Message-ID: <forged@example.org>\r\nSubject: forged\r\n\r\nx\r\n.')).code, 250);
    await c.cmd('QUIT');
    // Its SPF is not checked here: nothing vouches for the sender, so no success is reported.
    await until('the message taken', () => server.logs.some((l) => l.msg === 'message accepted' && l.from === 'nobody@example.test'));
    assert.deepEqual(server.logs.find((l) => l.msg === 'message accepted' && l.from === 'nobody@example.test')!.dsn_not_honoured, ['NOTIFY=SUCCESS']);
    await until('the failure\'s report dropped', () => server.logs.some((l) => l.msg === 'delivery status notification dropped: the local sender does not exist' && l.to === 'nobody@example.test'));
    assert.equal((await mailbox(path.join(dir, 'data'), 'bob@example.test')).filter((m) => m.includes('forged@example.org')).length, 1);
    assert.deepEqual((await mailbox(path.join(dir, 'data'), 'alice@example.test')).filter((m) => m.includes('forged@example.org')), [], 'a report reached the postmaster');
  });

  it('control characters in a next hop\'s reply (escape sequences for the operator\'s terminal) are not kept', async () => {
    replies.set('esc@remote.test', ['451 4.3.0 \x1b]0;PWNED\x07\x1b[31mlater']);
    const id = inject(configFile, 'alice@example.test', ['esc@remote.test'], message('escapes'));
    let reply: string | null | undefined;
    await until('the deferral recorded', () => {
      reply = queueJson(configFile).find((e) => e.id === id)?.recipients[0]?.last_reply;
      return typeof reply === 'string';
    });
    assert.equal(reply, '451 4.3.0 ?]0;PWNED??[31mlater');
    const listed = cli(configFile, ['queue', 'list']);
    assert.equal(listed.status, 0);
    assert.doesNotMatch(listed.stdout, /[\x00-\x09\x0b-\x1f\x7f]/);
    assert.equal(cli(configFile, ['queue', 'remove', id]).status, 0);
  });

  it('a bounce for a copy an alias sent on names the address the sender used', async () => {
    replies.set('moved@remote.test', ['550 5.1.1 <moved@remote.test>: no such user']);
    inject(configFile, 'alice@example.test', ['old-friend@example.test'], message('via alias'));
    const report = await bounceOf('via alias');
    assert.equal(report.recipients[0]['Final-Recipient'], 'rfc822; moved@remote.test');
    assert.equal(report.recipients[0]['Original-Recipient'], 'rfc822;old-friend@example.test');
  });

  it('`queue list --json` gives a next attempt only to recipients still waiting', async () => {
    const id = inject(configFile, 'alice@example.test', ['done@remote.test', 'waits@down.test'], message('half delivered'));
    // Judged on the listing that showed it: by the next one, max_age may have ended the entry.
    let listed: ReturnType<typeof queueJson>[number]['recipients'] = [];
    await until('one delivered, one deferred', () => {
      listed = queueJson(configFile).find((e) => e.id === id)?.recipients ?? [];
      return listed.map((r) => r.status).join() === 'delivered,deferred';
    });
    const [done, waits] = listed;
    assert.equal(done!.next_attempt, null);
    assert.match(waits!.next_attempt ?? '', /^\d{4}-\d\d-\d\dT/);
    // Out of the way of the next cases (on a slow machine max_age, 15 s here, may have bounced it
    // already).
    const removed = cli(configFile, ['queue', 'remove', id]);
    assert.ok(removed.status === 0 || removed.stderr === `mailnest: no queue entry ${id}\n`, removed.stderr);
    const both = cli(configFile, ['queue', 'retry', id, '--all']);
    assert.deepEqual([both.status, both.stderr], [2, 'mailnest: give a queue id or --all, not both\n']);
    // An empty id (a script's unset variable) is bad usage, not an entry that is not there.
    for (const command of ['remove', 'retry']) {
      const empty = cli(configFile, ['queue', command, '']);
      assert.deepEqual([empty.status, empty.stderr], [2, 'mailnest: an empty queue id; `mailnest queue list` shows them\n'], command);
    }
  });

  it('a failure to connect to a host named in the configuration names it with the address tried', async () => {
    const id = inject(configFile, 'alice@example.test', ['x@named-down.test'], message('named hop down'));
    await until('a deferral', () => queueJson(configFile).find((e) => e.id === id)?.recipients[0]?.status === 'deferred');
    const reply = queueJson(configFile).find((e) => e.id === id)!.recipients[0]!.last_reply ?? '';
    assert.match(reply, new RegExp(`^localhost\\[(127\\.0\\.0\\.1|::1)\\]:${deadPort}: connection refused$`));
    assert.equal(cli(configFile, ['queue', 'remove', id]).status, 0);
  });

  it('delivers to a peer that was down, on `queue retry --all` and on schedule', async () => {
    const id = inject(configFile, 'alice@example.test', ['x@down.test'], message('was down'));
    await until('a deferral', () => queueJson(configFile).find((e) => e.id === id)?.recipients[0]?.status === 'deferred');
    const e = queueJson(configFile).find((x) => x.id === id)!;
    assert.match(e.recipients[0]!.last_reply ?? '', /ECONNREFUSED|connect/i);
    // Bring the peer up on the route's port; `queue retry --all` makes it due at once.
    const peer = new SmtpSink();
    await peer.start(deadPort);
    try {
      const r = cli(configFile, ['queue', 'retry', '--all']);
      assert.equal(r.status, 0, r.stderr);
      const [m] = await peer.waitFor(1);
      assert.deepEqual(m!.to, ['x@down.test']);
      await peer.stop();
      // Down again: the next message waits, then goes on the schedule alone once it is back.
      const id2 = inject(configFile, 'alice@example.test', ['y@down.test'], message('on schedule'));
      await until('a deferral', () => (queueJson(configFile).find((x) => x.id === id2)?.recipients[0]?.attempts ?? 0) >= 1);
      const peer2 = new SmtpSink();
      await peer2.start(deadPort);
      try {
        const [m2] = await peer2.waitFor(1);
        assert.deepEqual(m2!.to, ['y@down.test']);
      } finally {
        await peer2.stop();
      }
    } finally {
      await peer.stop().catch(() => undefined);
    }
  });

  // Both wait out max_age (15 s) on the same server, each for its own message: side by side.
  describe('past max_age', { concurrency: true }, () => {
    it('expires after max_age: a delay warning first, then a failure report with 4.4.7', async () => {
      const id = inject(configFile, 'alice@example.test', ['late@slow.test'], message('expires'));
      const dataDir = path.join(dir, 'data');
      let failed: any;
      let delayed: any;
      await until('the expiry bounce', async () => {
        for (const m of await mailbox(dataDir, 'alice@example.test')) {
          if (!m.toString('latin1').includes('expires@example.test')) continue;
          const p = parseReport(m);
          if (!p.original?.includes('expires@example.test')) continue;
          if (p.recipients[0]?.Action === 'failed') failed = p;
          if (p.recipients[0]?.Action === 'delayed') delayed = p;
        }
        return failed !== undefined;
      }, 60_000);
      assert.equal(failed.recipients[0].Status, '4.4.7');
      assert.equal(failed.recipients[0]['Final-Recipient'], 'rfc822; late@slow.test');
      // The Diagnostic-Code is the last failure alone (no SMTP reply: the peer was never reached,
      // which an address at the start does not make one); why the queue gave up is said in the
      // text, which also says that only the header came back.
      assert.match(failed.recipients[0]['Diagnostic-Code'], /^X-mailnest; 127\.0\.0\.1:\d+: connection refused$/);
      assert.doesNotMatch(failed.recipients[0]['Diagnostic-Code'], /gave up/);
      assert.match(failed.text, /Its header is attached below\./);
      assert.match(failed.text, /<late@slow\.test>: 127\.0\.0\.1:\d+: connection refused \(gave up: the message stayed in the queue too long\)/);
      assert.ok(delayed, 'a delay warning came first');
      assert.ok(delayed.recipients[0]['Will-Retry-Until']);
      assert.ok(!queueJson(configFile).some((e) => e.id === id));
    });

    it('a message whose body is gone from data_dir still has its failure reported, without the message', async () => {
      // Over 256 KiB: the body is a file of its own, which a restored copy of data_dir may lack.
      const big = message('body gone') + 'x'.repeat(76).concat('\r\n').repeat(4000);
      const id = inject(configFile, 'alice@example.test', ['lost-body@down.test'], big);
      const dataDir = path.join(dir, 'data');
      fs.rmSync(path.join(dataDir, 'bodies', id));
      let report: string | undefined;
      await until('the expiry bounce', async () => {
        report = (await mailbox(dataDir, 'alice@example.test')).map((m) => m.toString('utf8')).find((m) => m.includes('Action: failed') && m.includes('lost-body@down.test'));
        return report !== undefined;
      }, 60_000);
      const parsed = JSON.parse(python(`
import sys, email, json
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
print(json.dumps({"parts": [p.get_content_type() for p in m.iter_parts()], "text": next(m.iter_parts()).get_content(), "defects": len(m.defects)}))
`, [], report!).stdout);
      assert.deepEqual(parsed.parts, ['text/plain', 'message/delivery-status']);
      assert.equal(parsed.defects, 0);
      assert.match(parsed.text, /It could not be attached: it is no longer stored here\./);
      assert.match(parsed.text, /<lost-body@down\.test>: 127\.0\.0\.1:\d+: connection refused \(gave up/);
      assert.ok(!queueJson(configFile).some((e) => e.id === id));
    });
  });

  it('sends no report when NOTIFY=NEVER, and none for a bounce that bounces', async () => {
    replies.set('never@remote.test', ['550 5.1.1 no such user']);
    const dataDir = path.join(dir, 'data');
    const before = (await mailbox(dataDir, 'alice@example.test')).length;
    const id = inject(configFile, 'alice@example.test', ['never@remote.test|NEVER'], message('never notify'));
    // From the null sender: a failure is dropped, never reported.
    const id2 = inject(configFile, '', ['never@remote.test'], message('null sender'));
    await until('both to be settled', () => !queueJson(configFile).some((e) => e.id === id || e.id === id2));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await mailbox(dataDir, 'alice@example.test')).length, before);
  });
});

describe('what DNS says of a destination, in the queue and in reports', () => {
  let dir: string;
  let dns: DnsServer;
  let server: RunningMailnest;
  let configFile: string;

  before(async () => {
    dir = tempDir();
    dns = await startDnsServer({ failing: ['broken.test'] });
    const config = baseConfig(dir, {
      dns_servers: [dns.address],
      queue: { retry: ['1s'], poll_interval: '200ms', delay_warning: '1s' },
    });
    // Delivery by MX, through the stub server: no smarthost.
    config.relay = { dns_timeout: '2s' };
    configFile = writeConfig(dir, config);
    addUser(configFile, 'alice@example.test', 'secret-pw');
    server = await startMailnest(dir, configFile);
  });

  after(async () => {
    await server?.stop();
    await dns?.close();
  });

  /** alice's report about a message sent to `to`, with `action`, once it is there. */
  async function reportFor(to: string, action: string): Promise<any> {
    let report: any;
    await until(`a report "${action}" for ${to}`, async () => {
      for (const m of await mailbox(path.join(dir, 'data'), 'alice@example.test')) {
        // Parsed (by a child process, which blocks this one) only when it may be the one.
        if (!m.toString('latin1').includes(`Action: ${action}`)) continue;
        const p = parseReport(m);
        if (p.recipients[0]?.['Final-Recipient'] === `rfc822; ${to}` && p.recipients[0]?.Action === action) report = p;
      }
      return report !== undefined;
    }, 20_000);
    return report.recipients[0];
  }

  it('a failed lookup is a 4.4.3 delay, and a domain that does not exist a 5.1.2 bounce, both mailnest\'s own words (RFC 3464 §2.3.6)', async () => {
    // Without blocking this process, whose DNS server must keep answering.
    const deferred = await injectAsync(configFile, 'alice@example.test', ['a@broken.test'], message('dns failure'));
    await injectAsync(configFile, 'alice@example.test', ['b@nowhere.test'], message('no such domain'));
    const delayed = await reportFor('a@broken.test', 'delayed');
    assert.equal(delayed.Status, '4.4.3');
    assert.equal(delayed['Diagnostic-Code'], 'X-mailnest; 451 4.4.3 MX lookup for broken.test failed: ESERVFAIL');
    assert.equal(delayed['Remote-MTA'], undefined);
    assert.equal((await queueJsonAsync(configFile)).find((e) => e.id === deferred)?.recipients[0]?.last_reply, '451 4.4.3 MX lookup for broken.test failed: ESERVFAIL');
    const failed = await reportFor('b@nowhere.test', 'failed');
    assert.equal(failed.Status, '5.1.2');
    assert.equal(failed['Diagnostic-Code'], 'X-mailnest; 550 5.1.2 domain nowhere.test does not exist');
    assert.equal(failed['Remote-MTA'], undefined);
  });
});

describe('a next hop that takes few messages per connection', () => {
  it('a 421 on a connection that carried mail sends the message on a fresh one, uncharged; on a fresh one it is a 4xx like any other', async () => {
    const dir = tempDir();
    const few = new SmtpSink({ messagesPerConnection: 1 });
    const none = new SmtpSink({ messagesPerConnection: 0 });
    await few.start();
    await none.start();
    const configFile = writeConfig(dir, baseConfig(dir, {
      relay: { routes: { 'few.test': `127.0.0.1:${few.port}`, 'none.test': `127.0.0.1:${none.port}` } },
      queue: { retry: ['1h'], poll_interval: '200ms', max_connections_per_destination: 1 },
    }));
    addUser(configFile, 'alice@example.test', 'secret-pw');
    // Queued before the server starts: due together, on one connection at a time.
    const ids = [1, 2, 3, 4].map((n) => inject(configFile, 'alice@example.test', [`r${n}@few.test`], message(`few ${n}`)));
    const refused = inject(configFile, 'alice@example.test', ['r@none.test'], message('none'));
    const server = await startMailnest(dir, configFile);
    try {
      await few.waitFor(4);
      assert.equal(few.connections, 4, 'one message per connection');
      assert.ok(!queueJson(configFile).some((e) => ids.includes(e.id)));
      assert.deepEqual(server.logs.filter((l) => l.msg === 'delivery deferred' && ids.includes(String(l.id))), []);
      // Refused on every fresh connection: deferred once, not tried again and again.
      await until('the deferral', () => queueJson(configFile).find((e) => e.id === refused)?.recipients[0]?.status === 'deferred');
      const [r] = queueJson(configFile).find((e) => e.id === refused)!.recipients;
      assert.equal(r!.attempts, 1);
      assert.match(r!.last_reply ?? '', /^421 4\.7\.0 too many messages/);
      assert.equal(none.connections, 1);
    } finally {
      await server.stop();
      await few.stop();
      await none.stop();
    }
  });
});

describe('a next hop that takes few connections at once', () => {
  const FEWER = 'a connection failed while others to the destination are open or just closed; fewer are opened';

  /** `count` messages to a sink with `sink`'s limits, queued before the server starts (so due
   *  together, and several connections are opened at once); `check` runs once all arrived (and
   *  may queue more with `queueMore`), and then the queue must empty with none deferred. */
  async function throughCappedHop(sink: SinkOptions, queue: Record<string, unknown>, count: number, check: (capped: SmtpSink, server: RunningMailnest, queueMore: (n: number) => void) => void | Promise<void>): Promise<void> {
    const dir = tempDir();
    const capped = new SmtpSink(sink);
    await capped.start();
    const configFile = writeConfig(dir, baseConfig(dir, {
      relay: { routes: { 'capped.test': `127.0.0.1:${capped.port}` } },
      queue: { retry: ['1h'], poll_interval: '200ms', ...queue },
    }));
    addUser(configFile, 'alice@example.test', 'secret-pw');
    const ids = Array.from({ length: count }, (_, n) => inject(configFile, 'alice@example.test', [`r${n}@capped.test`], message(`capped ${n}`)));
    const server = await startMailnest(dir, configFile);
    try {
      await capped.waitFor(count);
      await check(capped, server, (n) => {
        for (let i = 0; i < n; i++) ids.push(inject(configFile, 'alice@example.test', [`more${i}@capped.test`], message(`more ${i}`)));
      });
      await until('an empty queue', () => !queueJson(configFile).some((e) => ids.includes(e.id)));
      assert.deepEqual(server.logs.filter((l) => l.msg === 'delivery deferred').map((l) => l.id), []);
    } finally {
      await server.stop();
      await capped.stop();
    }
  }

  it('one refused at the greeting is one too many, not the destination down: the open ones carry all the mail, none deferred', async () => {
    await throughCappedHop({ maxConnections: 2 }, { max_connections_per_destination: 10, messages_per_connection: 100 }, 20, async (capped, server) => {
      assert.ok(capped.connections > 2, `only ${capped.connections} connections were opened: the limit was never met`);
      assert.ok(capped.mostOpen <= 2);
      await until('the refusal logged', () => server.logs.some((l) => l.msg === FEWER));
    });
  });

  it('refused just after one closed, which the next hop still counts: the mail waits a moment, none deferred, also when it comes after the queue ran empty', async () => {
    // One at a time, each counted 1.5 s after it closes; a connection carries two messages.
    await throughCappedHop({ maxConnections: 1, slotLag: 1500 }, { max_connections_per_destination: 1, messages_per_connection: 2 }, 4, async (capped, _server, queueMore) => {
      assert.ok(capped.connections > 2, `${capped.connections} connections: none was refused`);
      // The last connection has just closed, and still counts there: new mail meets it.
      const before = capped.connections;
      queueMore(2);
      await capped.waitFor(6);
      assert.ok(capped.connections > before + 1, 'the new mail met the connection before');
    });
  });

  it('refused while the others are still being greeted, it leaves as many as those, not one', async () => {
    // Four at once, greeted slowly: the fifth is refused before any of the four is made.
    await throughCappedHop({ maxConnections: 4, greetingDelay: 300 }, { max_connections_per_destination: 10, messages_per_connection: 2 }, 24, async (capped, server) => {
      // The server's log comes on its own pipe, maybe after the mail.
      await until('the limit met', () => server.logs.some((l) => l.msg === FEWER));
      const refusal = server.logs.find((l) => l.msg === FEWER)!;
      assert.equal(refusal.others, 4);
      // After the first four, connections went on side by side: the limit stayed at four.
      const later = capped.openWith.slice(4);
      assert.ok(later.some((n) => n >= 3), `open with each later connection: ${later.join(' ')}`);
      assert.ok(capped.mostOpen <= 4);
    });
  });
});

describe('a next hop that takes few recipients per message', () => {
  for (const overLimit of ['452 4.5.3 Error: too many recipients', '552 5.5.3 Too many recipients']) it(`the recipients over its limit (${overLimit}) go at once in further transactions, none deferred or bounced`, async () => {
    const dir = tempDir();
    const few = new SmtpSink({ recipientsPerMessage: 2, overLimit });
    await few.start();
    const configFile = writeConfig(dir, baseConfig(dir, {
      relay: { routes: { 'few.test': `127.0.0.1:${few.port}` } },
      queue: { retry: ['1h'], poll_interval: '200ms' },
    }));
    addUser(configFile, 'alice@example.test', 'secret-pw');
    const server = await startMailnest(dir, configFile);
    try {
      const rcpts = [1, 2, 3, 4, 5].map((n) => `r${n}@few.test`);
      const id = inject(configFile, 'alice@example.test', rcpts, message('many recipients'));
      await until('every recipient', () => few.messages.flatMap((m) => m.to).length === 5);
      assert.deepEqual(few.messages.map((m) => m.to.length), [2, 2, 1]);
      assert.deepEqual(few.messages.flatMap((m) => m.to).sort(), rcpts);
      await until('the entry to go', () => !queueJson(configFile).some((e) => e.id === id));
      assert.deepEqual(server.logs.filter((l) => l.msg === 'delivery deferred'), []);
    } finally {
      await server.stop();
      await few.stop();
    }
  });
});

it('`queue retry` while an attempt is under way: the deferral it ends in does not put the retry off', async () => {
  // The next hop holds the first attempt's message until released, then asks for a later try.
  let reached!: () => void;
  const held = new Promise<void>((resolve) => { reached = resolve; });
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  let attempts = 0;
  const hop = new SmtpSink({
    dataReply: () => (++attempts === 1 ? '451 4.3.0 try again later' : undefined),
    dataGate: () => { reached(); return released; },
  });
  await hop.start();
  const dir = tempDir();
  const configFile = writeConfig(dir, baseConfig(dir, {
    relay: { routes: { 'remote.test': `127.0.0.1:${hop.port}` } },
    queue: { retry: ['1h'], poll_interval: '200ms' },
  }));
  addUser(configFile, 'alice@example.test', 'secret-pw');
  const id = inject(configFile, 'alice@example.test', ['x@remote.test'], message('retried while held'));
  const server = await startMailnest(dir, configFile);
  try {
    await held;
    const r = cli(configFile, ['queue', 'retry', id]);
    release();
    assert.equal(r.status, 0, r.stderr);
    // Without the retry, the next attempt would be an hour away.
    const [m] = await hop.waitFor(1);
    assert.deepEqual(m!.to, ['x@remote.test']);
    assert.equal(attempts, 2);
    await until('the queue empty', async () => !(await queueJsonAsync(configFile)).some((e) => e.id === id));
  } finally {
    release();
    await server.stop();
    await hop.stop();
  }
});
