import { test } from 'node:test';
import assert from 'node:assert/strict';
import { headerShape, withHeaderEnd } from '../../src/mime/header-section.ts';
import { completeSubmission } from '../../src/mime/submission.ts';

const C = { from: 'a@example.test', hostname: 'mx.example.test', now: new Date('2026-11-29T10:00:00Z') };
const DATE = 'Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n';

/** The message cut into chunks at every one of `cuts`. */
function chunked(text: string, cuts: number[]): Buffer[] {
  const b = Buffer.from(text);
  return [0, ...cuts].map((from, i) => b.subarray(from, cuts[i] ?? b.length));
}

test('a complete message is passed on as the same chunks', () => {
  const message = chunked(`From: x@example.test\r\n${DATE}Message-ID: <1@x>\r\n\r\nBcc: body line\r\n`, [5, 40]);
  const done = completeSubmission(message, C);
  assert.equal(done.message, message);
  assert.deepEqual(done.originators, [{ field: 'From', address: 'x@example.test' }]);
});

test('the header end is found wherever the chunks are cut, and the body chunks are kept', () => {
  const text = 'Subject: s\r\nBcc: b@remote.test\r\n\r\nbody\r\n\r\nBcc: not a field\r\n';
  const end = text.indexOf('\r\n\r\n');
  for (const cut of [1, end, end + 1, end + 2, end + 3, end + 4, end + 5]) {
    const message = chunked(text, [cut]);
    const out = completeSubmission(message, C).message;
    const got = Buffer.concat(out).toString().replace(/Message-ID: <[^>]+>/, 'Message-ID: <id>');
    assert.equal(got, `Subject: s\r\nFrom: a@example.test\r\n${DATE}Message-ID: <id>\r\n\r\nbody\r\n\r\nBcc: not a field\r\n`, `cut at ${cut}`);
    if (cut > end + 2) assert.equal(out[out.length - 1], message[1], 'the last chunk is not copied');
  }
});

test('the header\'s shape is read no further than its limit: a million lines are not all visited', () => {
  const received = /^received[ \t]*:/gim;
  const small = [Buffer.from('Received: a\r\nReceived: b\r\n c\r\nSubject: s\r\n\r\nbody\r\n')];
  assert.deepEqual(headerShape(small, 10, received), { lines: 4, fieldLines: 2, matching: 2, over: false });
  const flood = [Buffer.from('Subject: a\r\n'), Buffer.from(' \r\n'.repeat(1_000_000)), Buffer.from('\r\nbody\r\n')];
  const shape = headerShape(flood, 10_000, received);
  assert.equal(shape.over, true);
  assert.equal(shape.lines, 10_000);
  assert.equal(shape.fieldLines, 10_000);
  // A last line without its line end counts too.
  const exact = Buffer.from('X-A: b\r\n'.repeat(3));
  assert.equal(headerShape([exact], 3, received).over, false);
  assert.equal(headerShape([exact, Buffer.from('X-B: c')], 3, received).over, true);
  assert.equal(headerShape([exact, Buffer.from('X-B: c')], 4, received).lines, 4);
});

test('no header fields at all, and no body at all', () => {
  const none = Buffer.concat(completeSubmission(chunked('\r\nonly a body\r\n', [1]), { ...C, from: '"a b"@example.test' }).message).toString();
  assert.match(none, /^From: "a b"@example\.test\r\nDate: .+\r\nMessage-ID: <[0-9a-f-]+@mx\.example\.test>\r\n\r\nonly a body\r\n$/);
  const headerOnly = Buffer.concat(completeSubmission([Buffer.from(`Bcc: <x@y>\r\nFrom: f@example.test\r\n${DATE}Message-ID: <1@x>\r\n`)], C).message).toString();
  assert.equal(headerOnly, `From: f@example.test\r\n${DATE}Message-ID: <1@x>\r\n`);
});

test('the header ends at the first line that is not a field: the fields added go before it, and the empty line is put in', () => {
  const id = (text: string) => text.replace(/Message-ID: <[^>]+>/, 'Message-ID: <id>');
  const added = `From: a@example.test\r\n${DATE}Message-ID: <id>\r\n`;
  // A body and no header: every cut, through every line.
  const bodyOnly = 'just a text line\r\nsecond: not a field, as the first line is not one\r\n';
  for (let cut = 1; cut < bodyOnly.length; cut++) {
    const got = id(Buffer.concat(completeSubmission(chunked(bodyOnly, [cut]), C).message).toString());
    assert.equal(got, `${added}\r\n${bodyOnly}`, `cut at ${cut}`);
  }
  // Fields, then the text without the empty line (a folded field first).
  const unseparated = 'Subject: s\r\n  folded\r\nthe text\r\n';
  for (let cut = 1; cut < unseparated.length; cut++) {
    const got = id(Buffer.concat(completeSubmission(chunked(unseparated, [cut]), C).message).toString());
    assert.equal(got, `Subject: s\r\n  folded\r\n${added}\r\nthe text\r\n`, `cut at ${cut}`);
  }
  // Nothing to add, and still the empty line is put in.
  const complete = `From: x@example.test\r\n${DATE}Message-ID: <1@x>\r\nthe text\r\n`;
  assert.equal(Buffer.concat(completeSubmission([Buffer.from(complete)], C).message).toString(), `From: x@example.test\r\n${DATE}Message-ID: <1@x>\r\n\r\nthe text\r\n`);
});

test('a message that begins with a space is all body: the From checked is the one added, and what follows is no header (a forged From, a Bcc)', () => {
  const text = ' x\r\nFrom: CEO <ceo@bank.example>\r\nBcc: secret@remote.example\r\nSubject: spoof\r\n\r\nbody\r\n';
  for (let cut = 1; cut < text.length; cut += 7) {
    const done = completeSubmission(chunked(text, [cut]), C);
    assert.deepEqual(done.originators, [{ field: 'From', address: 'a@example.test' }]);
    const out = Buffer.concat(done.message).toString().replace(/Message-ID: <[^>]+>/, 'Message-ID: <id>');
    assert.equal(out, `From: a@example.test\r\n${DATE}Message-ID: <id>\r\n\r\n${text}`, `cut at ${cut}`);
    // What acceptance does next finds the same header end.
    assert.deepEqual(withHeaderEnd(done.message), done.message);
  }
});

test('folded Bcc and Resent-Bcc go whole, field names in any case', () => {
  const out = Buffer.concat(completeSubmission([Buffer.from(`BCC: a@r.test,\r\n\tb@r.test\r\nresent-bcc:\r\n c@r.test\r\nFrom: f@example.test\r\n${DATE}Message-ID: <1@x>\r\n\r\nx\r\n`)], C).message).toString();
  // A Resent-Bcc makes the message one resent: the rest of its block is added (see below).
  assert.match(out, /^From: f@example\.test\r\nDate: [^\r]+\r\nMessage-ID: <1@x>\r\nResent-From: a@example\.test\r\nResent-Date: [^\r]+\r\nResent-Message-ID: <[^>]+@mx\.example\.test>\r\n\r\nx\r\n$/);
});

test('a message resent (RFC 5322 §3.6.6) gets the Resent- fields its block lacks', () => {
  const out = (header: string) => Buffer.concat(completeSubmission([Buffer.from(`${header}\r\nx\r\n`)], C).message).toString();
  assert.match(out(`From: author@remote.test\r\n${DATE}Message-ID: <1@x>\r\nResent-To: r@remote.test\r\n`), /^From: author@remote\.test\r\nDate: [^\r]+\r\nMessage-ID: <1@x>\r\nResent-To: r@remote\.test\r\nResent-From: a@example\.test\r\nResent-Date: [^\r]+\r\nResent-Message-ID: <[^>]+>\r\n\r\nx\r\n$/);
  // What the block has stays as it is.
  const kept = out(`From: author@remote.test\r\n${DATE}Message-ID: <1@x>\r\nResent-From: me@example.test\r\nResent-Date: Mon, 30 Nov 2026 07:00:00 +0000\r\nResent-Message-ID: <2@x>\r\nResent-To: r@remote.test\r\n`);
  assert.equal(kept.split('\r\n').filter((l) => /^Resent-(From|Date|Message-ID):/.test(l)).length, 3);
  assert.doesNotMatch(out(`From: f@example.test\r\n${DATE}Message-ID: <1@x>\r\n`), /Resent-/);
});

test('the From addresses: display names, groups, folding and several fields aside; the added one', () => {
  const from = (header: string) => completeSubmission([Buffer.from(`${header}${DATE}Message-ID: <1@x>\r\n\r\nx\r\n`)], C).originators.map((o) => o.address);
  assert.deepEqual(from('From: "Doe, J." <j@example.test>,\r\n =?utf-8?q?B=C3=A9a?= <b@remote.test>\r\n'), ['j@example.test', 'b@remote.test']);
  assert.deepEqual(from('From: team: x@example.test, y@example.test;\r\nFROM: z@example.test\r\n'), ['x@example.test', 'y@example.test', 'z@example.test']);
  assert.deepEqual(from('Subject: none\r\n'), ['a@example.test']);
  // A From that names no address is not taken for one that names nobody in particular.
  assert.deepEqual(from('From: victim\r\n'), ['']);
  // A field too long to be read (megabytes of list cost the parser seconds) names nobody either.
  const long = completeSubmission([Buffer.from(`From: alice@example.test${',\r\n alice@example.test'.repeat(1000)}\r\n${DATE}\r\nx\r\n`)], C).originators;
  assert.deepEqual(long, [{ field: 'From', address: '', tooLong: true }]);
  assert.deepEqual(from('From: undisclosed:;\r\n'), ['']);
  assert.deepEqual(from('From : <x@example.test>\r\n'), ['x@example.test']);
  // Nor is one that readers read in different ways.
  assert.deepEqual(from('From: bob@example.test <alice@example.test>\r\n'), ['']);
  assert.deepEqual(from('From: <alice@example.test>bob@example.test\r\n'), ['']);
  assert.deepEqual(from('From: alice@example.test: eve@example.net;\r\n'), ['']);
  assert.deepEqual(from('From: eve@example.net, alice@example.test:;\r\n'), ['']);
  // The address as its own display name, as printers and scripts write it, is one mailbox.
  assert.deepEqual(from('From: me@example.test <me@example.test>\r\n'), ['me@example.test']);
});

test('Sender, Resent-From and Resent-Sender name originators too, each with its field', () => {
  const done = completeSubmission([Buffer.from(`From: f@example.test\r\nsender: S <s@example.test>\r\nResent-From: r1@example.test, r2@remote.test\r\nResent-Sender: victim\r\nReply-To: x@remote.test\r\n${DATE}Message-ID: <1@x>\r\n\r\nx\r\n`)], C);
  assert.deepEqual(done.originators, [
    { field: 'From', address: 'f@example.test' },
    { field: 'sender', address: 's@example.test' },
    { field: 'Resent-From', address: 'r1@example.test' },
    { field: 'Resent-From', address: 'r2@remote.test' },
    { field: 'Resent-Sender', address: '' },
  ]);
});

test('a Date or Message-ID left empty (a script\'s unset variable) is replaced, as if missing; one with a value stays', () => {
  const out = (header: string) => Buffer.concat(completeSubmission([Buffer.from(`${header}\r\nx\r\n`)], C).message).toString();
  assert.match(out('From: f@example.test\r\nDate: \r\nSubject: s\r\nMessage-ID:\r\n  \r\n'), /^From: f@example\.test\r\nSubject: s\r\nDate: Sun, 29 Nov 2026 10:00:00 \+0000\r\nMessage-ID: <[^>]+@mx\.example\.test>\r\n\r\nx\r\n$/);
  assert.match(out('From: f@example.test\r\nResent-To: r@remote.test\r\nResent-Date:\r\nDate: Mon, 30 Nov 2026 07:00:00 +0000\r\nMessage-ID: <1@x>\r\n'), /^From: f@example\.test\r\nResent-To: r@remote\.test\r\nDate: Mon, 30 Nov 2026 07:00:00 \+0000\r\nMessage-ID: <1@x>\r\nResent-From: a@example\.test\r\nResent-Date: Sun, 29 Nov 2026 10:00:00 \+0000\r\nResent-Message-ID: <[^>]+>\r\n\r\nx\r\n$/);
  // An empty Subject is a subject (RFC 5322 §3.6.5 allows it).
  assert.match(out(`From: f@example.test\r\n${DATE}Message-ID: <1@x>\r\nSubject:\r\n`), /\r\nSubject:\r\n\r\nx/);
});
