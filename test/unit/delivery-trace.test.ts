import { test } from 'node:test';
import assert from 'node:assert/strict';
import { receivedHeader } from '../../src/delivery/trace.ts';

const BASE = { by: 'mx.example.test', with: 'ESMTP', id: 'ID1', date: new Date('2026-11-29T10:00:00Z'), clientIp: '192.0.2.1' };

test('Received: the HELO name is printable ASCII without "(", ")" or ";"', () => {
  const r = receivedHeader({ ...BASE, helo: 'a(b;Mon,_1_Jan_2001)\u00fcn\u00ef.test' });
  assert.equal(r.split('\r\n')[0], 'Received: from a?b?Mon,_1_Jan_2001??n?.test ([192.0.2.1])');
  // The one ";" left is the one before the date (RFC 5322 §3.6.7).
  assert.equal(r.split(';').length, 2, r);
  assert.match(r, /;\r\n\tSun, 29 Nov 2026 10:00:00 \+0000\r\n$/);
});
