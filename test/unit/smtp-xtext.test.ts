/** RFC 3461's xtext and RFC 6533's utf-8 address type, both ways. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeUtf8Address, decodeXtext, encodeUtf8Address } from '../../src/smtp/xtext.ts';

test('utf-8-addr-xtext: what may not stand bare is \\x{HEX} in two digits at least, and reads back as it was', () => {
  for (const [address, encoded] of [
    ['a\u00fcb@example.test', 'a\\x{FC}b@example.test'],
    ['a+b=c\\d@example.test', 'a\\x{2B}b\\x{3D}c\\x{5C}d@example.test'],
    ['"a b"@example.test', '"a\\x{20}b"@example.test'],
    ['\u{1F600}@example.test', '\\x{1F600}@example.test'],
    ['plain@example.test', 'plain@example.test'],
  ]) {
    assert.equal(encodeUtf8Address(address!), encoded);
    assert.equal(decodeUtf8Address(encoded!, false), address);
  }
  // No address holds a control character: there is nothing to send on.
  assert.equal(encodeUtf8Address('a\tb@example.test'), undefined);
  assert.equal(encodeUtf8Address('a\u007fb@example.test'), undefined);
});

test('xtext: "+XX" octets, read as UTF-8 when they are that', () => {
  assert.equal(decodeXtext('a+2Bb'), 'a+b');
  assert.equal(decodeXtext('g+C3+BC'), 'g\u00fc');
  assert.equal(decodeXtext('caf+E9'), 'caf\u00e9');
  assert.equal(decodeXtext('a+2b'), undefined);
  assert.equal(decodeXtext('a=b'), undefined);
});

test('a \\x{HEX} beyond Unicode, or a surrogate, is no character: the address is refused, never an exception', () => {
  for (const bad of ['a\\x{110000}b', 'a\\x{D800}b', 'a\\x{DFFF}b', 'a\\x{FFFFFF}b']) assert.equal(decodeUtf8Address(bad, false), undefined, bad);
  assert.equal(decodeUtf8Address('a\\x{10FFFF}b', false), 'a\u{10FFFF}b');
});
