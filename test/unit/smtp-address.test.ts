import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lookupAddress, parsePath, parseMailbox, unquoteLocal } from '../../src/smtp/address.ts';

const ok = (text: string) => {
  const r = parsePath(text, { allowNull: true });
  assert.ok(r.ok, `${text}: ${!r.ok ? r.message : ''}`);
  return r;
};
const bad = (text: string) => {
  const r = parsePath(text, { allowNull: true });
  assert.ok(!r.ok, `${text} should be refused`);
  return r.message;
};

test('plain, quoted, null, literal and UTF-8 paths', () => {
  assert.deepEqual(ok('<a.b+c@example.test>').ok && ok('<a.b+c@example.test>').mailbox, { local: 'a.b+c', domain: 'example.test', utf8: false });
  assert.equal(ok('<>').mailbox, null);
  assert.equal(ok('<"a b"@example.test>').mailbox!.local, '"a b"');
  assert.equal(ok('<"a\\"b"@example.test>').mailbox!.local, '"a\\"b"');
  assert.equal(ok('<u@[192.0.2.1]>').mailbox!.domain, '[192.0.2.1]');
  assert.equal(ok('<u@[IPv6:2001:db8::1]>').mailbox!.domain, '[IPv6:2001:db8::1]');
  // UTF-8 is read (RFC 6531 §3.3) and said: whether the client may use it is the session's to judge.
  assert.equal(ok('<jürgen@bücher.example>').mailbox!.utf8, true);
  assert.equal(ok('<"jü rgen"@example.test>').mailbox!.utf8, true);
  assert.equal(ok('<a@example.test>').mailbox!.utf8, false);
  assert.equal(ok('<a@b.test> SIZE=10').rest, 'SIZE=10');
});

test('local parts longer than 64 octets (SRS, VERP, BATV senders) are accepted up to the 256-octet path', () => {
  const srs = `SRS0=HHH=TT=example.org=${'x'.repeat(60)}`;
  assert.equal(ok(`<${srs}@forwarder.test>`).mailbox!.local, srs);
  assert.equal(ok(`<${'x'.repeat(247)}@b.test>`).mailbox!.local.length, 247);
});

test('source routes are accepted and ignored (RFC 5321 §4.1.2)', () => {
  assert.deepEqual(ok('<@relay.test,@other.test:u@remote.test>').mailbox, { local: 'u', domain: 'remote.test', utf8: false });
  bad('<@relay.test u@remote.test>');
});

test('malformed paths are refused with a reason', () => {
  assert.match(bad('a@b.test'), /enclosed/);
  assert.match(bad('<a@b.test'), /missing >/);
  assert.match(bad('<a@b.test.>'), /must not end with a dot/);
  bad('<.a@b.test>');
  bad('<a..b@b.test>');
  bad('<a@-b.test>');
  bad('<a b@b.test>');
  bad('<a@b.test>x');
  bad('<u@[300.1.1.1]>');
  assert.match(bad(`<${'x'.repeat(248)}@b.test>`), /longer than 254 octets/);
  bad('<"unterminated@b.test>');
});

test('unquoteLocal', () => {
  assert.equal(unquoteLocal('"u@remote"'), 'u@remote');
  assert.equal(unquoteLocal('"a\\"b"'), 'a"b');
  assert.equal(unquoteLocal('plain'), 'plain');
  assert.equal(typeof parseMailbox('x'), 'string');
});

test('lookups use the local part unquoted: "bob"@x is bob@x, the same mailbox (RFC 5321 §4.1.2)', () => {
  const m = (text: string) => parseMailbox(text);
  const found = (text: string) => { const x = m(text); assert.ok(typeof x !== 'string', text); return lookupAddress(x); };
  assert.equal(found('"bob"@example.test'), 'bob@example.test');
  assert.equal(found('"b\\ob"@example.test'), 'bob@example.test');
  assert.equal(found('"u@x"@example.test'), 'u@x@example.test');
  assert.equal(found('bob@example.test'), 'bob@example.test');
});
