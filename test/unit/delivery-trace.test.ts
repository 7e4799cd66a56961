import { test } from 'node:test';
import assert from 'node:assert/strict';
import { receivedHeader, returnPathHeader } from '../../src/delivery/trace.ts';

const BASE = { by: 'mx.example.test', with: 'ESMTP', id: 'ID1', date: new Date('2026-11-29T10:00:00Z'), clientIp: '192.0.2.1' };

test('Received: the HELO name is printable ASCII without "(", ")" or ";"', () => {
  const r = receivedHeader({ ...BASE, helo: 'a(b;Mon,_1_Jan_2001)\u00fcn\u00ef.test' });
  assert.equal(r.split('\r\n')[0], 'Received: from a?b?Mon,_1_Jan_2001??n?.test ([192.0.2.1])');
  // The one ";" left is the one before the date (RFC 5322 §3.6.7).
  assert.equal(r.split(';').length, 2, r);
  assert.match(r, /;\r\n\tSun, 29 Nov 2026 10:00:00 \+0000\r\n$/);
});

test('Return-Path and the "for" clause hold the address as given, quoted pairs and parentheses in a quoted local part included (RFC 5321 §4.4)', () => {
  for (const address of ['"a\\"b"@sender.test', '"a(b)c"@sender.test', '"a\\\\b"@sender.test', '"x y"@[IPv6:::1]']) {
    assert.equal(returnPathHeader(address), `Return-Path: <${address}>\r\n`);
    assert.match(receivedHeader({ ...BASE, helo: 'c.test', for: address }), new RegExp(`\r\n\tfor <${address.replace(/[\\()[\]"]/g, '\\$&')}>;\r\n`));
  }
  assert.equal(returnPathHeader(''), 'Return-Path: <>\r\n');
  // The login in the comment cannot end it early.
  assert.match(receivedHeader({ ...BASE, auth: 'a(b)\\c' }), /\(authenticated as a\?b\?\?c\)/);
  // A user of an internationalised domain is named in A-labels: the field stays ASCII.
  assert.match(receivedHeader({ ...BASE, auth: 'Carol@b\u00fccher.example' }), /\(authenticated as Carol@xn--bcher-kva\.example\)/);
});

test('Received: an IPv6 client is an address literal with its tag (RFC 5321 §4.1.3)', () => {
  assert.equal(receivedHeader({ ...BASE, helo: 'h.test', clientIp: '2001:db8::1' }).split('\r\n')[0], 'Received: from h.test ([IPv6:2001:db8::1])');
  assert.equal(receivedHeader({ ...BASE, helo: 'h.test' }).split('\r\n')[0], 'Received: from h.test ([192.0.2.1])');
});
