/**
 * Message transfer over a real socket: DATA (dot-unstuffing, end only at CRLF.CRLF, bytes kept
 * exactly), PIPELINING (RFC 2920), BDAT (RFC 3030), and the SMTP smuggling variants, which must
 * never end the data early nor run what follows as commands.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { cleanup, mailbox, splitTrace, startFixture, type Fixture } from '../helpers/smtp-fixture.ts';

let f: Fixture | undefined;
afterEach(async () => { await cleanup(f); f = undefined; });

async function bodies(fx: Fixture, address: string): Promise<string[]> {
  return (await mailbox(fx.dataDir, address)).map((m) => splitTrace(m).body.toString('latin1'));
}

/** Opens an smtp session and gets as far as the 354 for one recipient. */
async function inData(fx: Fixture, rcpt = 'alice@example.test'): Promise<SmtpClient> {
  const c = await fx.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd(`RCPT TO:<${rcpt}>`)).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  return c;
}

/** Writes `data` in small pieces, yielding between them so they tend to arrive apart. */
async function trickle(c: SmtpClient, data: Buffer, sizes: number[]): Promise<void> {
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const n = sizes[i++ % sizes.length]!;
    c.write(data.subarray(pos, pos + n));
    pos += n;
    await new Promise((r) => setImmediate(r));
  }
}

test('DATA: dot-stuffed lines are unstuffed and every byte is kept', async () => {
  f = await startFixture();
  const c = await inData(f);
  const eight = Buffer.from(Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== 10 && b !== 13 && b !== 0));
  const original = Buffer.concat([
    Buffer.from('Subject: dots\r\n\r\n.\r\n..\r\n. \r\n.x\r\nnot.a dot\r\n\r\n\r\n'),
    eight, Buffer.from('\r\n'),
    Buffer.from('trailing spaces   \r\n\ttab\r\n'),
  ]);
  // Dot-stuff as a client must (RFC 5321 §4.5.2).
  const stuffed = Buffer.from(original.toString('latin1').replace(/^\./gm, '..'), 'latin1');
  c.write(Buffer.concat([stuffed, Buffer.from('.\r\n')]));
  const r = await c.reply();
  assert.equal(r.code, 250, r.raw);
  c.destroy();
  const [stored] = await mailbox(f.dataDir, 'alice@example.test');
  assert.ok(stored);
  assert.ok(splitTrace(stored).body.equals(original), 'body differs from what was sent');
});

test('DATA: a large message sent in odd-sized pieces is stored exactly', async () => {
  f = await startFixture();
  const c = await inData(f);
  const lines: string[] = ['Subject: big', ''];
  for (let i = 0; i < 6000; i++) lines.push(i % 7 === 0 ? `.${i} line starting with a dot` : `${i} ${'x'.repeat(i % 90)}`);
  const original = Buffer.from(`${lines.join('\r\n')}\r\n`);
  const stuffed = Buffer.from(original.toString('latin1').replace(/^\./gm, '..'), 'latin1');
  await trickle(c, Buffer.concat([stuffed, Buffer.from('.\r\n')]), [1, 2, 3, 5, 4096, 7, 1, 1, 65536, 13]);
  const r = await c.reply();
  assert.equal(r.code, 250, r.raw);
  c.destroy();
  const [stored] = await mailbox(f.dataDir, 'alice@example.test');
  assert.ok(splitTrace(stored!).body.equals(original));
});

test('DATA: the end of data split across writes is still found', async () => {
  f = await startFixture();
  const c = await inData(f);
  c.write('Subject: split\r\n\r\nbody\r');
  await new Promise((r) => setTimeout(r, 20));
  c.write('\n.');
  await new Promise((r) => setTimeout(r, 20));
  c.write('\r');
  await new Promise((r) => setTimeout(r, 20));
  c.write('\nNOOP\r\n');
  assert.equal((await c.reply()).code, 250);
  assert.equal((await c.reply()).raw, '250 2.0.0 Ok\r\n');
  c.destroy();
  assert.deepEqual(await bodies(f, 'alice@example.test'), ['Subject: split\r\n\r\nbody\r\n']);
});

test('PIPELINING: a whole session in the groups RFC 2920 §3.1 allows gets every group\'s replies in order', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  const group = async (lines: string[], n: number) => {
    c.write(`${lines.join('\r\n')}\r\n`);
    return c.replies(n);
  };
  const replies = [
    ...await group(['EHLO client.example.net'], 1),
    ...await group(['MAIL FROM:<sender@remote.test>', 'RCPT TO:<alice@example.test>', 'RCPT TO:<nobody@example.test>', 'RCPT TO:<elsewhere@remote.test>', 'RCPT TO:<bob@example.test>', 'DATA'], 6),
    // The message, then what follows it, up to a command that ends a group.
    ...await group(['Subject: first', '', '..one', '.', 'NOOP'], 2),
    ...await group(['MAIL FROM:<other@remote.test>', 'RCPT TO:<bob@example.test>', 'DATA'], 3),
    ...await group(['Subject: second', '', 'two', '.', 'RSET', 'VRFY bob@example.test'], 3),
    ...await group(['QUIT'], 1),
  ];
  assert.deepEqual(replies.map((r) => r.code), [250, 250, 250, 550, 550, 250, 354, 250, 250, 250, 250, 354, 250, 250, 252, 221]);
  assert.equal(replies[3]!.enhanced, '5.1.1');
  assert.equal(replies[4]!.enhanced, '5.7.1');
  assert.match(replies[7]!.raw, /^250 2\.0\.0 OK queued as /);
  assert.match(replies[12]!.raw, /^250 2\.0\.0 OK queued as /);
  assert.notEqual(replies[7]!.raw, replies[12]!.raw);
  assert.equal(await c.closedByServer(), '');
  assert.deepEqual(await bodies(f, 'alice@example.test'), ['Subject: first\r\n\r\n.one\r\n']);
  assert.deepEqual(await bodies(f, 'bob@example.test'), ['Subject: first\r\n\r\n.one\r\n', 'Subject: second\r\n\r\ntwo\r\n']);
});

test('PIPELINING: a whole session in one write, the message before the 354 it must wait for, is hung up on and nothing is stored', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  c.write('MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: early\r\n\r\nbody\r\n.\r\nQUIT\r\n');
  const replies = await c.replies(3);
  assert.deepEqual(replies.map((r) => r.code), [250, 250, 554]);
  assert.match(replies[2]!.raw, /^554 5\.5\.0 \S+ Protocol error: commands sent before the reply they had to wait for \(RFC 2920 section 3\.1\), closing connection\r\n$/);
  assert.equal(await c.closedByServer(), '');
  assert.deepEqual(await bodies(f, 'alice@example.test'), []);
});

test('PIPELINING: RFC 2920 style, the body sent only after 354', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  c.write('MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n');
  assert.deepEqual((await c.replies(4)).map((r) => r.code), [250, 250, 250, 354]);
  c.write('Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n');
  assert.deepEqual((await c.replies(2)).map((r) => r.code), [250, 221]);
  assert.equal((await bodies(f, 'alice@example.test')).length, 1);
  assert.equal((await bodies(f, 'bob@example.test')).length, 1);
});

test('BDAT: chunks, LAST, BDAT 0 LAST; bytes kept as sent (no dot handling)', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test> BODY=8BITMIME')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  const part1 = 'Subject: chunked\r\n\r\n.not stuffed\r\n';
  const part2 = '.\r\nQUIT\r\nMAIL FROM:<evil@remote.test>\r\n';
  c.write(`BDAT ${part1.length}\r\n${part1}`);
  const r1 = await c.reply();
  assert.equal(r1.raw, `250 2.0.0 ${part1.length} octets received\r\n`);
  // DATA and RCPT are out of sequence once BDAT has been used.
  assert.equal((await c.cmd('DATA')).code, 503);
  assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 503);
  c.write(`BDAT ${part2.length}\r\n${part2}`);
  assert.equal((await c.reply()).code, 250);
  const last = await c.cmd('BDAT 0 LAST');
  assert.match(last.raw, /^250 2\.0\.0 OK queued as \S+\r\n$/);
  // A second message in one chunk, pipelined with the commands around it.
  c.write(`MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 9 LAST\r\nline one\nNOOP\r\n`);
  const rs = await c.replies(4);
  assert.deepEqual(rs.map((r) => r.code), [250, 250, 550, 250], rs.map((r) => r.raw).join(''));
  assert.equal(rs[2]!.enhanced, '5.6.0', 'bare LF in a chunk is refused too');
  // A last chunk without a final CRLF.
  c.write('MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 12 LAST\r\nSubject: end');
  assert.deepEqual((await c.replies(3)).map((r) => r.code), [250, 250, 250]);
  await c.quit();
  assert.deepEqual(await bodies(f, 'alice@example.test'), [part1 + part2, 'Subject: end\r\n']);
});

test('BDAT: before MAIL or without recipients the chunk is consumed, then 503/554', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  // The 9 bytes "NOOP\r\nQUI" are data, not commands.
  c.write('BDAT 9\r\nNOOP\r\nQUINOOP\r\n');
  const r = await c.reply();
  assert.equal(r.code, 503, r.raw);
  assert.equal(r.enhanced, '5.5.1');
  assert.equal((await c.reply()).raw, '250 2.0.0 Ok\r\n');
  assert.equal(c.pending, '');
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<nobody@example.test>')).code, 550);
  c.write('BDAT 6 LAST\r\nRSET\r\nNOOP\r\n');
  const noRcpt = await c.reply();
  assert.equal(noRcpt.code, 554, noRcpt.raw);
  assert.equal((await c.reply()).code, 250);
  // BDAT 0 LAST with nothing to finish.
  assert.equal((await c.cmd('RSET')).code, 250);
  assert.equal((await c.cmd('BDAT 0 LAST')).code, 503);
  c.destroy();
  assert.equal((await bodies(f, 'alice@example.test')).length, 0);
});

test('BDAT: the size limit is enforced over all chunks; the session goes on', async () => {
  f = await startFixture({ config: { limits: { max_message_size: 1000 } } });
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  const chunk = `${'y'.repeat(598)}\r\n`;
  c.write(`BDAT 600\r\n${chunk}`);
  assert.equal((await c.reply()).code, 250);
  c.write(`BDAT 600 LAST\r\n${chunk}`);
  const over = await c.reply();
  assert.equal(over.code, 552, over.raw);
  assert.equal(over.enhanced, '5.3.4');
  // The transaction is over; a new one, within the limit, works.
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 503);
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  c.write(`BDAT 600 LAST\r\n${chunk}`);
  assert.equal((await c.reply()).code, 250);
  // One chunk alone over the limit: its bytes are still read, not taken as commands.
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  c.write(`BDAT 5000 LAST\r\n${'NOOP\r\n'.repeat(833)}NO`);
  assert.equal((await c.reply()).code, 552);
  assert.equal((await c.cmd('NOOP')).raw, '250 2.0.0 Ok\r\n');
  assert.equal(c.pending, '');
  c.destroy();
  // No header field: the line is the body, after the empty line the trace fields need.
  assert.deepEqual(await bodies(f, 'alice@example.test'), [`\r\n${chunk}`]);
});

test('BDAT and DATA mixed: RSET ends a chunked transaction, then DATA works', async () => {
  f = await startFixture();
  const c = await f.open('smtp');
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  c.write('BDAT 7\r\ncancel\n');
  assert.equal((await c.reply()).code, 250);
  assert.equal((await c.cmd('RSET')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.equal((await c.cmd('Subject: data after bdat\r\n\r\nok\r\n.')).code, 250);
  c.destroy();
  assert.deepEqual(await bodies(f, 'alice@example.test'), ['Subject: data after bdat\r\n\r\nok\r\n']);
});

// The SMTP smuggling variants: a line end other than CRLF around a dot, followed by a second
// transaction. Each must neither end the data nor run the text after it as commands.
const SMUGGLE: [string, string][] = [
  ['LF.LF', '\n.\n'],
  ['CRLF.LF', '\r\n.\n'],
  ['LF.CRLF', '\n.\r\n'],
  ['CR.CR', '\r.\r'],
  ['CR.CRLF', '\r.\r\n'],
  ['CRLF.CR', '\r\n.\r'],
  ['CRLF.CRCRLF', '\r\n.\r\r\n'],
];

const SMUGGLED = 'MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n';

test('smuggling: each variant neither ends the data early nor runs a command; the message is refused whole', async () => {
  f = await startFixture();
  for (const [name, ending] of SMUGGLE) {
    const c = await inData(f);
    // Everything up to and including the smuggled commands; no real end of data yet.
    c.write(`Subject: innocent\r\n\r\nbefore${ending}${SMUGGLED}`);
    // Then the real end. Had the data ended early, MAIL/RCPT/DATA replies would come first.
    c.write('.\r\nNOOP\r\n');
    const end = await c.reply();
    assert.equal(end.code, 550, `${name}: expected the refusal first, got ${end.raw}`);
    assert.equal(end.enhanced, '5.6.0', name);
    assert.equal((await c.reply()).raw, '250 2.0.0 Ok\r\n', name);
    assert.equal(c.pending, '', name);
    // The session is in a clean state: no transaction from the smuggled text.
    assert.equal((await c.cmd('RCPT TO:<bob@example.test>')).code, 503, name);
    assert.equal((await c.cmd('DATA')).code, 503, name);
    // And a proper message afterwards goes through, bytes exact.
    assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250, name);
    assert.equal((await c.cmd('RCPT TO:<alice@example.test>')).code, 250, name);
    assert.equal((await c.cmd('DATA')).code, 354, name);
    assert.equal((await c.cmd(`Subject: clean ${name}\r\n\r\nclean\r\n.`)).code, 250, name);
    await c.quit();
  }
  assert.deepEqual(await bodies(f, 'alice@example.test'), SMUGGLE.map(([name]) => `Subject: clean ${name}\r\n\r\nclean\r\n`));
  assert.deepEqual(await bodies(f, 'bob@example.test'), [], 'a smuggled message was stored');
});

test('smuggling: every variant, with what follows it, in one write after the 354, also split byte by byte', async () => {
  f = await startFixture();
  for (const [name, ending] of SMUGGLE) {
    for (const split of [false, true]) {
      const c = await inData(f);
      const text = `Subject: ${name}\r\n\r\nbefore${ending}${SMUGGLED}.\r\nQUIT\r\n`;
      if (split) await trickle(c, Buffer.from(text), [1]);
      else c.write(text);
      const replies = await c.replies(2);
      assert.deepEqual(replies.map((r) => r.code), [550, 221], `${name} split=${split}: ${replies.map((r) => r.raw).join('')}`);
      assert.equal(await c.closedByServer(), '');
    }
  }
  assert.deepEqual(await bodies(f, 'alice@example.test'), []);
  assert.deepEqual(await bodies(f, 'bob@example.test'), []);
});

test('smuggling through an otherwise valid message: the real end is the only end', async () => {
  f = await startFixture();
  const c = await inData(f);
  // Lines that look like the end or like commands, all CRLF-correct and dot-stuffed.
  const original = `Subject: looks like commands\r\n\r\n.\r\n${SMUGGLED}.\r\nQUIT\r\n`;
  const stuffed = original.replace(/^\./gm, '..');
  c.write(`${stuffed}.\r\n`);
  const r = await c.reply();
  assert.equal(r.code, 250);
  assert.equal((await c.cmd('NOOP')).code, 250);
  c.destroy();
  assert.deepEqual(await bodies(f, 'alice@example.test'), [original]);
  assert.deepEqual(await bodies(f, 'bob@example.test'), []);
});

test('a message whose first line is no header field gets the empty line that begins its body, after the trace fields; one with it is stored as sent', async () => {
  f = await startFixture();
  const c = await inData(f);
  assert.equal((await c.cmd('no headers at all, just a line\r\n.')).code, 250);
  await c.cmd('MAIL FROM:<sender@remote.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  await c.cmd('DATA');
  assert.equal((await c.cmd('Subject: s\r\nthe body, with no empty line before it\r\n.')).code, 250);
  await c.cmd('MAIL FROM:<sender@remote.test>');
  await c.cmd('RCPT TO:<alice@example.test>');
  await c.cmd('DATA');
  assert.equal((await c.cmd('Subject: s\r\n\r\nbody\r\n.')).code, 250);
  c.destroy();
  assert.deepEqual(await bodies(f, 'alice@example.test'), [
    '\r\nno headers at all, just a line\r\n',
    'Subject: s\r\n\r\nthe body, with no empty line before it\r\n',
    'Subject: s\r\n\r\nbody\r\n',
  ]);
});
