import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { parseSendRequest } from '../../src/http/send-request.ts';

test('an attachment of several MiB is checked as base64 without recursion, and decoded', () => {
  const big = crypto.randomBytes(6 * 1024 * 1024 + 1);
  const r = parseSendRequest({ to: 'a@example.test', attachments: [{ filename: 'big.bin', content: big.toString('base64') }] });
  assert.ok(r.attachments[0]!.content.equals(big));
});

test('base64: whole quanta, padding only at the end, line breaks ignored', () => {
  const content = (c: string) => parseSendRequest({ to: 'a@example.test', attachments: [{ filename: 'a', content: c }] }).attachments[0]!.content.toString();
  assert.equal(content('aGk='), 'hi');
  assert.equal(content('aGVs\r\nbG8='), 'hello');
  for (const bad of ['aGk', 'aG=k', 'a===', '====', 'aGk=aGk=', 'aGk!']) {
    assert.throws(() => content(bad), /attachments\[0\]\.content: not valid base64/, bad);
  }
});

test('headers: at most 100 fields, counted before any is checked', () => {
  const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-H${i}`, 'v']));
  assert.equal(parseSendRequest({ to: 'a@example.test', headers: fields(100) }).headers.length, 100);
  assert.throws(() => parseSendRequest({ to: 'a@example.test', headers: fields(101) }), /^Error: headers: expected at most 100 header fields$/);
  // A million is refused by their count, with no message about any one of them.
  assert.throws(() => parseSendRequest({ to: 'a@example.test', headers: { ...fields(1_000_000), 'X-Bad': 1 } }), /^Error: headers: expected at most 100 header fields$/);
  assert.throws(() => parseSendRequest({ to: 'a@example.test', headers: ['X-A: b'] }), /headers: expected an object of "Name": "value" pairs/);
  assert.throws(() => parseSendRequest({ to: 'a@example.test', headers: { 'X-A': 1 } }), /headers\.X-A: expected a string value/);
});
