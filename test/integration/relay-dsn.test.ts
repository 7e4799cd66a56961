/**
 * DSN requests on the way out (RFC 3461 §5.2): a next hop that offers DSN is handed RET, ENVID,
 * NOTIFY and ORCPT and reports from there on; to one that does not, mailnest answers
 * NOTIFY=SUCCESS itself with a "relayed" report.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { inject, until } from '../helpers/relay.ts';
import { cleanup, mailbox, queue, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { cli } from '../helpers/server.ts';

let f: Fixture | undefined;
const sinks: SmtpSink[] = [];
after(async () => {
  await cleanup(f);
  for (const s of sinks) await s.stop();
});

/** alice submits a message with the MAIL and RCPT lines given (their parameters and all), then
 *  waits until the queue has delivered it. */
async function submit(fixture: Fixture, mail: string, rcpts: string[]): Promise<void> {
  const c = await fixture.openAuthenticated('alice@example.test');
  for (const line of [mail, ...rcpts]) assert.equal((await c.cmd(line)).code, 250, line);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('From: alice@example.test\r\nSubject: dsn\r\n\r\nx\r\n.')).code, 250);
  await c.quit();
  await until('every delivery', async () => (await queue(fixture.dataDir)).length === 0);
}

/** The report in alice's mailbox that holds `text`, once it is there. */
async function reportTo(fixture: Fixture, text: string): Promise<string> {
  let report = '';
  await until(`a report with "${text}"`, async () => {
    report = (await mailbox(fixture.dataDir, 'alice@example.test')).map((m) => m.toString('latin1')).find((m) => m.includes(text)) ?? '';
    return report !== '';
  });
  return report;
}

test('the sender\'s DSN requests go to a next hop that offers DSN, which then reports; without DSN a "relayed" report answers SUCCESS', async () => {
  // An ORCPT naming a non-ASCII address goes on as RFC 6533's utf-8 type, in its ASCII form.
  const withDsn = new SmtpSink({ dsn: true });
  const without = new SmtpSink();
  sinks.push(withDsn, without);
  await withDsn.start();
  await without.start();
  f = await startFixture({ config: { relay: { routes: { 'dsn.test': `127.0.0.1:${withDsn.port}`, 'plain.test': `127.0.0.1:${without.port}` } }, queue: { poll_interval: '200ms' } } });
  await submit(f, 'MAIL FROM:<alice@example.test> RET=HDRS ENVID=env+2B1', [
    'RCPT TO:<a@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Ba@dsn.test',
    'RCPT TO:<b@dsn.test> NOTIFY=NEVER',
    'RCPT TO:<c@dsn.test>',
    'RCPT TO:<d@dsn.test>',
    'RCPT TO:<e@dsn.test> ORCPT=utf-8;a\\x{FC}\\x{2B}b@dsn.test',
    'RCPT TO:<g@dsn.test> ORCPT=rfc822;g+C3+BC@dsn.test',
    'RCPT TO:<h@dsn.test> ORCPT=utf-8;h\\x{2B}x@dsn.test',
    'RCPT TO:<p@plain.test> NOTIFY=SUCCESS',
  ]);
  // Recipients alike in NOTIFY and ORCPT share a transaction; the others have one each (on
  // connections of their own, perhaps, and so in any order).
  assert.deepEqual(withDsn.messages.map((m) => m.to).sort(), [['a@dsn.test'], ['b@dsn.test'], ['c@dsn.test', 'd@dsn.test'], ['e@dsn.test'], ['g@dsn.test'], ['h@dsn.test']]);
  assert.deepEqual(withDsn.messages.map((m) => /RET=HDRS ENVID=env\+2B1$/.test(m.mailParams)), [true, true, true, true, true, true]);
  assert.deepEqual(withDsn.commands.filter((l) => l.startsWith('RCPT')).sort(), [
    'RCPT TO:<a@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Ba@dsn.test',
    'RCPT TO:<b@dsn.test> NOTIFY=NEVER',
    'RCPT TO:<c@dsn.test>',
    'RCPT TO:<d@dsn.test>',
    'RCPT TO:<e@dsn.test> ORCPT=utf-8;a\\x{FC}\\x{2B}b@dsn.test',
    'RCPT TO:<g@dsn.test> ORCPT=utf-8;g\\x{FC}@dsn.test',
    // Of the utf-8 type in ASCII, as received: not xtext, whose "+2B" it may not hold.
    'RCPT TO:<h@dsn.test> ORCPT=utf-8;h\\x{2B}x@dsn.test',
  ]);
  assert.deepEqual(without.commands.filter((l) => l.startsWith('RCPT')), ['RCPT TO:<p@plain.test>']);
  // The report is stored just after the delivery's outcome: for p@ alone.
  const report = await reportTo(f, 'Action: relayed');
  assert.match(report, /Final-Recipient: rfc822; p@plain\.test\r\nAction: relayed/);
  assert.equal((await mailbox(f.dataDir, 'alice@example.test')).length, 1);
});

test('recipients that differ in their DSN requests are a transaction each, and a limit per connection defers none of them', async () => {
  const few = new SmtpSink({ dsn: true, messagesPerConnection: 2 });
  sinks.push(few);
  await few.start();
  await cleanup(f);
  // One connection at a time, so that the third message meets the limit.
  f = await startFixture({ config: { relay: { routes: { 'few.test': `127.0.0.1:${few.port}` } }, queue: { poll_interval: '200ms', retry: ['1h'], max_connections_per_destination: 1 } } });
  await submit(f, 'MAIL FROM:<alice@example.test> RET=FULL', ['RCPT TO:<a@few.test> NOTIFY=FAILURE', 'RCPT TO:<b@few.test> NOTIFY=NEVER', 'RCPT TO:<c@few.test> NOTIFY=DELAY']);
  assert.deepEqual(few.messages.map((m) => /RET=FULL$/.test(m.mailParams)), [true, true, true]);
  assert.deepEqual(few.messages.map((m) => m.to), [['a@few.test'], ['b@few.test'], ['c@few.test']]);
  assert.equal(few.connections, 2, 'the third went on a fresh connection');
  assert.deepEqual(f.server.logs.filter((l) => l.msg === 'delivery deferred'), []);
});

test('a delay warning carries the header alone, also under RET=FULL, which asks for the whole message in a failure\'s report only (RFC 3461 §4.3); the log names the server that deferred it', async () => {
  const later = new SmtpSink({ rcptReply: () => '451 4.3.0 try later' });
  sinks.push(later);
  await later.start();
  await cleanup(f);
  f = await startFixture({ config: { relay: { routes: { 'later.test': `127.0.0.1:${later.port}` } }, queue: { poll_interval: '200ms', retry: ['1s'], delay_warning: '1s' } } });
  const c = await f.openAuthenticated('alice@example.test');
  for (const line of ['MAIL FROM:<alice@example.test> RET=FULL', 'RCPT TO:<w@later.test> NOTIFY=DELAY,FAILURE']) assert.equal((await c.cmd(line)).code, 250, line);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('From: alice@example.test\r\nSubject: waiting\r\n\r\nthe body of the message\r\n.')).code, 250);
  await c.quit();
  const fixture = f;
  const warning = await reportTo(fixture, 'Action: delayed');
  assert.match(warning, /Content-Type: text\/rfc822-headers\r\n/);
  assert.match(warning, /Subject: waiting\r\n/);
  assert.doesNotMatch(warning, /message\/rfc822|the body of the message/);
  // Log lines come through the server's output, which may trail the store.
  const deferredLine = () => fixture.server.logs.find((l) => l.msg === 'delivery deferred' && String(l.reply).startsWith('451 '));
  await until('the deferral logged', () => deferredLine() !== undefined);
  assert.equal(deferredLine()!.relay, '127.0.0.1');
});

test('a failure report under RET=FULL returns a message with a line over 998 octets as its header only (mail from the internet goes on as it came)', async () => {
  const refusing = new SmtpSink({ rcptReply: () => '550 5.1.1 no such user' });
  sinks.push(refusing);
  await refusing.start();
  await cleanup(f);
  f = await startFixture({ aliases: { 'fwd@example.test': ['gone@refusing.test'] }, config: { relay: { routes: { 'refusing.test': `127.0.0.1:${refusing.port}` } }, queue: { poll_interval: '100ms' } } });
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<alice@example.test> RET=FULL')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<fwd@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd(`Subject: long line\r\n\r\n${'z'.repeat(2000)}\r\n.`)).code, 250);
  await c.quit();
  const report = await reportTo(f, 'Action: failed');
  assert.match(report, /Content-Type: text\/rfc822-headers\r\n/);
  assert.match(report, /Subject: long line\r\n/);
  assert.doesNotMatch(report, /message\/rfc822|zzzz/);
});

test('a message removed from the queue while it waits for a busy destination is not sent, its removal is no failure, and the ids of its recipients may serve again', async () => {
  // The first message's DATA is answered once the test says so.
  let release = () => {};
  const released = new Promise<void>((resolve) => { release = resolve; });
  const slow = new SmtpSink({ dataGate: () => released });
  const fast = new SmtpSink();
  sinks.push(slow, fast);
  await slow.start();
  await fast.start();
  // A port where nothing listens, so that a recipient there stays queued.
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadPort = (closed.address() as net.AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  await cleanup(f);
  f = await startFixture({ config: { relay: { routes: { 'slow.test': `127.0.0.1:${slow.port}`, 'fast.test': `127.0.0.1:${fast.port}`, 'dead.test': `127.0.0.1:${deadPort}` } }, queue: { poll_interval: '100ms', retry: ['1h'], max_connections_per_destination: 1 } } });
  const message = (subject: string) => `From: alice@example.test\r\nSubject: ${subject}\r\n\r\nx\r\n`;
  // Both queued before the server starts, so that its first look at the queue takes both: the
  // second to go once the first's connection is free.
  await f.stop();
  inject(f.configFile, 'alice@example.test', ['a@slow.test', 'z@dead.test'], message('first'));
  const second = inject(f.configFile, 'alice@example.test', ['b@slow.test'], message('second'));
  await f.restart();
  await until('the first in its DATA', () => slow.commands.includes('DATA'));
  assert.equal(cli(f.configFile, ['queue', 'remove', second]).status, 0);
  release();
  const fixture = f;
  await until('the removal noticed', () => fixture.server.logs.some((l) => l.msg === 'removed from the queue before it was sent' && l.id === second));
  assert.deepEqual(fixture.server.logs.filter((l) => l.id === second && /^delivery (failed|deferred)/.test(String(l.msg))), []);
  // SQLite gives the removed message's recipient id to the next one (z@ keeps a lower one
  // queued): that one is sent all the same.
  inject(fixture.configFile, 'alice@example.test', ['c@fast.test'], message('third'));
  await until('the third sent', () => fast.messages.length === 1);
  await until('the first sent', () => slow.messages.length === 1);
  assert.deepEqual(slow.messages.map((m) => m.to), [['a@slow.test']]);
});

test('a large message removed while its transfer waits for the 354: the transfer is cut off, said as the removal, neither deferred nor reported', async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => { release = resolve; });
  const slow = new SmtpSink({ startGate: () => released });
  sinks.push(slow);
  await slow.start();
  await cleanup(f);
  f = await startFixture({ config: { relay: { routes: { 'slow.test': `127.0.0.1:${slow.port}` } }, queue: { poll_interval: '100ms' } } });
  // Over 256 KiB: its body is read from the store as it is sent, after the 354.
  const id = inject(f.configFile, 'alice@example.test', ['a@slow.test'], `From: alice@example.test\r\nSubject: big\r\n\r\n${'x'.repeat(76).concat('\r\n').repeat(4000)}`);
  await until('the transfer at DATA', () => slow.commands.includes('DATA'));
  assert.equal(cli(f.configFile, ['queue', 'remove', id]).status, 0);
  release();
  const fixture = f;
  await until('the removal noticed', () => fixture.server.logs.some((l) => l.msg === 'removed from the queue while it was being sent; the transfer was cut off' && l.id === id));
  assert.deepEqual(fixture.server.logs.filter((l) => l.id === id && /^delivery (failed|deferred)|^delivered/.test(String(l.msg))), []);
  assert.equal(slow.messages.length, 0);
  assert.equal((await mailbox(fixture.dataDir, 'alice@example.test')).length, 0);
});

test('a message removed from the queue while its transfer is under way: the failure that transfer ends in is reported to no one, and no error is logged', async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => { release = resolve; });
  const slow = new SmtpSink({ dataGate: () => released, dataReply: () => '554 5.6.0 content refused' });
  sinks.push(slow);
  await slow.start();
  await cleanup(f);
  f = await startFixture({ config: { relay: { routes: { 'slow.test': `127.0.0.1:${slow.port}` } }, queue: { poll_interval: '100ms' } } });
  const id = inject(f.configFile, 'alice@example.test', ['a@slow.test'], 'From: alice@example.test\r\nSubject: gone\r\n\r\nx\r\n');
  await until('the message in its DATA', () => slow.commands.includes('DATA'));
  assert.equal(cli(f.configFile, ['queue', 'remove', id]).status, 0);
  release();
  const fixture = f;
  await until('the outcome settled', () => fixture.server.logs.some((l) => l.msg === 'no delivery status notification: the message was removed from the queue' && l.id === id));
  assert.deepEqual(fixture.server.logs.filter((l) => l.level === 50 || l.level === 'error'), []);
  assert.deepEqual((await mailbox(fixture.dataDir, 'alice@example.test')).length, 0);
});

test('NOTIFY=SUCCESS to an alias that also sends the message on is answered "expanded", and SUCCESS is not passed on; to an alias of one remote address all of it is (RFC 3461 §6.2.7)', async () => {
  const hop = new SmtpSink({ dsn: true });
  sinks.push(hop);
  await hop.start();
  await cleanup(f);
  f = await startFixture({ config: { relay: { routes: { 'dsn.test': `127.0.0.1:${hop.port}` } }, queue: { poll_interval: '200ms' } } });
  assert.equal(cli(f.configFile, ['alias', 'add', 'list@example.test', 'bob@example.test', 'far@dsn.test', 'near@dsn.test']).status, 0);
  assert.equal(cli(f.configFile, ['alias', 'add', 'single@example.test', 'one@dsn.test']).status, 0);
  // near@ is named by the sender too: what it asked of that address holds, not the alias's.
  await submit(f, 'MAIL FROM:<alice@example.test>', ['RCPT TO:<list@example.test> NOTIFY=SUCCESS,FAILURE', 'RCPT TO:<single@example.test> NOTIFY=SUCCESS', 'RCPT TO:<near@dsn.test> NOTIFY=SUCCESS,FAILURE']);
  assert.deepEqual(hop.commands.filter((l) => l.startsWith('RCPT')).sort(), [
    'RCPT TO:<far@dsn.test> NOTIFY=FAILURE ORCPT=rfc822;list@example.test',
    'RCPT TO:<near@dsn.test> NOTIFY=SUCCESS,FAILURE',
    'RCPT TO:<one@dsn.test> NOTIFY=SUCCESS ORCPT=rfc822;single@example.test',
  ]);
  const fixture = f;
  let reports: string[] = [];
  await until('the report', async () => (reports = (await mailbox(fixture.dataDir, 'alice@example.test')).map((m) => m.toString('latin1'))).length > 0);
  assert.equal(reports.length, 1);
  assert.match(reports[0]!, /Final-Recipient: rfc822; list@example\.test\r\nAction: expanded\r\n/);
  assert.doesNotMatch(reports[0]!, /single@example\.test|Action: delivered/);
});

test('mail from the null sender holds half the outbound connections at most: reports to a server that keeps them waiting leave the users\' mail its way', async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => { release = resolve; });
  // A stranger's server, named by two of its domains, that takes its time over every message.
  const tarpit = new SmtpSink({ dataGate: () => released });
  const friend = new SmtpSink();
  sinks.push(tarpit, friend);
  await tarpit.start();
  await friend.start();
  await cleanup(f);
  const routes = { 'tarpit.test': `127.0.0.1:${tarpit.port}`, 'tarpit2.test': `127.0.0.1:${tarpit.port}`, 'friend.test': `127.0.0.1:${friend.port}` };
  f = await startFixture({ config: { relay: { routes }, queue: { poll_interval: '100ms', max_connections: 2 } } });
  const message = (subject: string) => `From: alice@example.test\r\nSubject: ${subject}\r\n\r\nx\r\n`;
  // Two reports, queued before the server starts so that its first look at the queue takes both.
  await f.stop();
  inject(f.configFile, '', ['a@tarpit.test'], message('report one'));
  inject(f.configFile, '', ['b@tarpit2.test'], message('report two'));
  await f.restart();
  await until('a report held after its data', () => tarpit.commands.includes('DATA'));
  // A report first in the line of alice's destination does not hold her mail back: the users'
  // half of the connections carries it, and the report with it.
  inject(f.configFile, '', ['r@friend.test'], message('report three'));
  inject(f.configFile, 'alice@example.test', ['c@friend.test'], message('from alice'));
  await until('alice\'s mail sent', () => friend.messages.length === 2);
  assert.deepEqual(friend.messages.map((m) => m.from), ['alice@example.test', '']);
  assert.equal(tarpit.connections, 1, 'the other report waits for the first one\'s connection');
  release();
  await until('both reports sent', () => tarpit.messages.length === 2);
});

test('one message of a user\'s among reports to the same server opens one connection for it: the reports beside it keep to their share', async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => { release = resolve; });
  let held = 0;
  const tarpit = new SmtpSink({ dataGate: () => { held++; return released; } });
  sinks.push(tarpit);
  await tarpit.start();
  await cleanup(f);
  f = await startFixture({ config: { relay: { routes: { 'tarpit.test': `127.0.0.1:${tarpit.port}` } }, queue: { poll_interval: '100ms', max_connections: 4 } } });
  const message = (subject: string) => `From: alice@example.test\r\nSubject: ${subject}\r\n\r\nx\r\n`;
  await f.stop();
  for (let i = 0; i < 6; i++) inject(f.configFile, '', [`r${i}@tarpit.test`], message(`report ${i}`));
  inject(f.configFile, 'alice@example.test', ['a@tarpit.test'], message('from alice'));
  await f.restart();
  // One connection for alice's message, two (half of four) for the reports.
  await until('three held after their data', () => held === 3);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(tarpit.mostOpen, 3);
  release();
  await until('all sent', () => tarpit.messages.length === 7);
});
