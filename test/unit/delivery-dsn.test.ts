/** RFC 3464 reports: structure checked with python's email parser, status codes, RET. */
import { describe, it, test } from 'node:test';
import { unvouchedDsn } from '../../src/delivery/dsn-trust.ts';
import assert from 'node:assert/strict';
import { buildDsn, deliveryStatus, headerSection, statusOf } from '../../src/delivery/dsn.ts';
import { python } from '../helpers/server.ts';

const ORIGINAL = Buffer.from('Received: by mx.example.test\r\nFrom: a@example.test\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nthe body\r\n');

const PARSE = `
import sys, email, json
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
parts = list(m.iter_parts())
groups = parts[1].get_payload()
third = parts[2]
print(json.dumps({
  "type": m.get_content_type(), "report_type": m.get_param("report-type"), "defects": len(m.defects),
  "parts": [p.get_content_type() for p in parts],
  "per_message": dict(groups[0].items()),
  "recipients": [dict(g.items()) for g in groups[1:]],
  "third": third.get_payload() if third.get_content_type() == "text/rfc822-headers" else third.get_payload()[0].get_payload(),
}))
`;

function parse(raw: Buffer): any {
  const r = python(PARSE, [], raw.toString('latin1'));
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('delivery status notifications', () => {
  it('the header section of an original ends at its first line that is not a field', () => {
    assert.equal(headerSection(Buffer.from('Subject: hi\r\n  folded\r\n\r\nbody\r\n')).toString(), 'Subject: hi\r\n  folded\r\n');
    // Without the empty line, the text is still no header of it.
    assert.equal(headerSection(Buffer.from('Subject: hi\r\nthe text, which is private\r\n')).toString(), 'Subject: hi\r\n');
    assert.equal(headerSection(Buffer.from('Subject: hi\r\n'.repeat(10)), 40).length, 40);
  });

  it('derives the status from the enhanced code, else the basic code', () => {
    assert.equal(statusOf('550 5.1.1 no such user', 'failed'), '5.1.1');
    assert.equal(statusOf('554 transaction failed', 'failed'), '5.0.0');
    assert.equal(statusOf('451-4.7.1 greylisted', 'delayed'), '4.7.1');
    assert.equal(statusOf('mx.remote.test[192.0.2.1]:25: ESOCKET: connect ECONNREFUSED 192.0.2.1:25', 'delayed'), '4.4.1');
    assert.equal(statusOf('192.0.2.1:25: ETIMEDOUT: Connection timeout', 'delayed'), '4.4.1');
    assert.equal(statusOf('192.0.2.1:25: ETIMEDOUT: Greeting never received', 'delayed'), '4.4.1');
    assert.equal(statusOf('connection closed before the reply', 'delayed'), '4.4.2');
    // A reply that never came mid-session (after the final dot): a bad connection, not no answer.
    assert.equal(statusOf('127.0.0.1:2525: ETIMEDOUT: Timeout', 'delayed'), '4.4.2');
    // The same in the words replies are kept in now (the codes above are earlier versions').
    for (const reply of ['connection refused', 'host is unreachable', 'network is unreachable', 'connection timed out', 'Connection timeout', 'Greeting never received']) {
      assert.equal(statusOf(`mx.remote.test[192.0.2.1]:25: ${reply}`, 'failed'), '5.4.1', reply);
    }
    for (const reply of ['connection reset by peer', 'broken pipe', 'no reply within relay.command_timeout', 'Connection closed unexpectedly']) {
      assert.equal(statusOf(`192.0.2.1:25: ${reply}`, 'delayed'), '4.4.2', reply);
    }
    assert.equal(statusOf('something else went wrong', 'delayed'), '4.0.0');
    // A 5xx that is not taken as final (a refused greeting) leaves a delayed recipient transient.
    assert.equal(statusOf('554 5.7.1 go away', 'delayed'), '4.7.1');
    assert.equal(statusOf('554 go away', 'delayed'), '4.0.0');
    assert.equal(statusOf('554 5.7.1 go away', 'failed'), '5.7.1');
  });

  it('builds a multipart/report with per-recipient fields and the original headers', () => {
    const raw = buildDsn({
      reportingMta: 'mx.example.test', from: 'MAILER-DAEMON@mx.example.test', to: 'a@example.test', queueId: 'Q1', envid: 'env-1',
      arrivalDate: new Date('2026-11-22T05:00:00Z'), ret: 'HDRS', original: ORIGINAL,
      recipients: [
        { address: 'b@remote.test', orcpt: 'rfc822;B@remote.test', action: 'failed', reply: '550 5.1.1 no such user', remoteMta: 'mx.remote.test', lastAttempt: new Date('2026-11-22T05:01:00Z') },
        { address: 'c@remote.test', action: 'delayed', reply: '451 4.3.0 later', willRetryUntil: new Date('2026-11-27T05:00:00Z') },
        { address: 'd@remote.test', action: 'failed', reply: '554 5.6.3 the message has 8-bit data and the next hop does not offer 8BITMIME (RFC 6152)', ownReply: true },
      ],
    });
    const p = parse(raw);
    assert.equal(p.type, 'multipart/report');
    assert.equal(p.report_type, 'delivery-status');
    assert.equal(p.defects, 0);
    assert.deepEqual(p.parts, ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    assert.equal(p.per_message['Reporting-MTA'], 'dns; mx.example.test');
    assert.equal(p.per_message['Original-Envelope-Id'], 'env-1');
    assert.equal(p.recipients.length, 3);
    // mailnest's own refusal: no next hop said it.
    assert.equal(p.recipients[2].Status, '5.6.3');
    assert.equal(p.recipients[2]['Remote-MTA'], undefined);
    assert.match(p.recipients[2]['Diagnostic-Code'], /^X-mailnest; 554 5\.6\.3 /);
    assert.deepEqual(
      [p.recipients[0]['Original-Recipient'], p.recipients[0]['Final-Recipient'], p.recipients[0].Action, p.recipients[0].Status, p.recipients[0]['Remote-MTA'], p.recipients[0]['Diagnostic-Code']],
      ['rfc822;B@remote.test', 'rfc822; b@remote.test', 'failed', '5.1.1', 'dns; mx.remote.test', 'smtp; 550 5.1.1 no such user'],
    );
    assert.equal(p.recipients[1].Action, 'delayed');
    assert.equal(p.recipients[1].Status, '4.3.0');
    assert.ok(p.recipients[1]['Will-Retry-Until']);
    assert.match(p.third, /Subject: hi/);
    assert.doesNotMatch(p.third, /the body/);
  });

  it('names an address beyond ASCII as utf-8 in a message/global-delivery-status, and returns a UTF-8 header as message/global-headers (RFC 6533)', () => {
    const original = Buffer.from('From: J\u00f6rg <j\u00f6rg@example.test>\r\nTo: dest@b\u00fccher.test\r\nSubject: hi\r\n\r\nthe body\r\n', 'utf8');
    const report = (recipients: { address: string }[], orig: Buffer, ret: 'HDRS' | 'FULL' = 'HDRS') => buildDsn({
      reportingMta: 'mx.example.test', from: 'MAILER-DAEMON@mx.example.test', to: 'j\u00f6rg@example.test', queueId: 'Q3',
      arrivalDate: new Date(), ret, original: orig,
      recipients: recipients.map((r) => ({ ...r, action: 'failed' as const, reply: '553 5.6.7 a non-ASCII address and the next hop does not offer SMTPUTF8', ownReply: true })),
    }).toString('utf8');
    const types = (raw: string) => [...raw.matchAll(/^Content-Type: ([^;\r]+)/gm)].map((m) => m[1]);
    const utf8 = report([{ address: 'dest@b\u00fccher.test' }, { address: 'ok@remote.test' }], original);
    assert.deepEqual(types(utf8), ['multipart/report', 'text/plain', 'message/global-delivery-status', 'message/global-headers']);
    // The report-type names the status part's subtype (RFC 6522 §3).
    assert.match(utf8, /^Content-Type: multipart\/report; report-type=global-delivery-status;/m);
    assert.match(report([{ address: 'ok@remote.test' }], original), /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    assert.match(utf8, /^Final-Recipient: utf-8; dest@b\u00fccher\.test\r$/m);
    assert.match(utf8, /^Final-Recipient: rfc822; ok@remote\.test\r$/m);
    assert.deepEqual(types(report([{ address: 'dest@b\u00fccher.test' }], original, 'FULL')).slice(2), ['message/global-delivery-status', 'message/global']);
    // ASCII addresses: the delivery status stays message/delivery-status, whatever the header.
    assert.deepEqual(types(report([{ address: 'ok@remote.test' }], original)).slice(2), ['message/delivery-status', 'message/global-headers']);
    assert.deepEqual(types(report([{ address: 'ok@remote.test' }], ORIGINAL)).slice(2), ['message/delivery-status', 'text/rfc822-headers']);
    // Each part with 8-bit text says so (RFC 2045 §6.1: it would be 7bit); the others need not.
    const encodings = (raw: string) => raw.split(/\r\n--[^\r]+\r\n/).slice(1, -1).map((part) => /^Content-Transfer-Encoding: (\S+)/m.exec(part.split('\r\n\r\n')[0]!)?.[1] ?? null);
    assert.deepEqual(encodings(utf8), ['8bit', '8bit', '8bit']);
    assert.deepEqual(encodings(report([{ address: 'ok@remote.test' }], ORIGINAL)), [null, null, null]);
  });

  it('returns the whole message for RET=FULL', () => {
    const raw = buildDsn({
      reportingMta: 'mx.example.test', from: 'MAILER-DAEMON@mx.example.test', to: 'a@example.test', queueId: 'Q2',
      arrivalDate: new Date(), ret: 'FULL', original: ORIGINAL,
      recipients: [{ address: 'b@remote.test', action: 'failed', reply: '550 5.7.1 refused' }],
    });
    const p = parse(raw);
    assert.deepEqual(p.parts, ['text/plain', 'message/delivery-status', 'message/rfc822']);
    assert.match(p.third, /the body/);
  });
});

test('a sender nothing vouches for keeps failure reports with the header alone: SUCCESS alone is NEVER, no NOTIFY is FAILURE, RET=FULL is HDRS', () => {
  const asked = [
    { address: 'a@x.test', notify: ['SUCCESS' as const] },
    { address: 'b@x.test' },
    { address: 'c@x.test', notify: ['NEVER' as const] },
    { address: 'd@x.test', notify: ['SUCCESS' as const, 'FAILURE' as const, 'DELAY' as const], orcpt: 'rfc822;d@x.test' },
  ];
  const limited = unvouchedDsn({ ret: 'FULL', envid: 'e1' }, asked);
  assert.deepEqual(limited.dsn, { ret: 'HDRS', envid: 'e1' });
  assert.deepEqual(limited.recipients.map((r) => r.notify), [['NEVER'], ['FAILURE'], ['NEVER'], ['FAILURE']]);
  assert.equal(limited.recipients[3]!.orcpt, 'rfc822;d@x.test');
  assert.deepEqual(limited.dropped, ['RET=FULL', 'NOTIFY=SUCCESS', 'NOTIFY=DELAY']);
  assert.deepEqual(unvouchedDsn({ ret: 'HDRS' }, [{ address: 'a@x.test', notify: ['FAILURE'] }]).dropped, []);
});

test('a next hop\'s reply or name with line breaks in it cannot add fields to the delivery status (each stays one line)', () => {
  const text = deliveryStatus({
    reportingMta: 'mx.example.test', from: 'MAILER-DAEMON@mx.example.test', to: 's@example.test', queueId: 'Q1', arrivalDate: new Date(0), ret: 'HDRS',
    recipients: [{ address: 'r@remote.test', action: 'failed', reply: '550 5.1.1 gone\r\nX-Injected: yes', remoteMta: 'mx.remote.test\nX-Also: no', lastAttempt: new Date(0) }],
  });
  assert.doesNotMatch(text, /^X-(Injected|Also):/m);
  assert.match(text, /^Diagnostic-Code: smtp; 550 5\.1\.1 gone X-Injected: yes$/m);
  assert.match(text, /^Remote-MTA: dns; mx\.remote\.test X-Also: no$/m);
});
