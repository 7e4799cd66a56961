/** The charset of a script's text, read from its bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readsAsUtf8, textCharset } from '../../src/mime/text-charset.ts';

const utf8 = Buffer.from('Température: 21°C — état\n'.repeat(3));

test('UTF-8 text cut inside a character at either end (head -c, tail -c) is still UTF-8', () => {
  assert.equal(textCharset(utf8), 'utf-8');
  const é = utf8.lastIndexOf(Buffer.from('é'));
  const dash = utf8.indexOf(Buffer.from('—'));
  assert.ok(readsAsUtf8(utf8.subarray(0, é + 1)), 'the last character cut after its first byte');
  assert.ok(readsAsUtf8(utf8.subarray(0, dash + 2)), 'a three-byte character cut after two');
  assert.ok(readsAsUtf8(utf8.subarray(dash + 1)), 'the first character cut: two continuation bytes left');
  assert.ok(readsAsUtf8(utf8.subarray(dash + 2, é + 1)), 'cut at both ends');
  assert.equal(textCharset(utf8.subarray(0, é + 1)), 'utf-8');
});

test('Latin-1 text is Latin-1, also when its only bytes beyond ASCII are at its ends, and so is UTF-8 broken inside', () => {
  assert.equal(textCharset(Buffer.from('Température: 21°C\n', 'latin1')), 'iso-8859-1');
  assert.equal(textCharset(Buffer.from('°C is fine\n', 'latin1')), 'iso-8859-1', 'a Latin-1 "°" first is no cut character');
  assert.equal(textCharset(Buffer.from('ends in é', 'latin1')), 'iso-8859-1', 'nor an "é" last');
  const broken = Buffer.concat([utf8.subarray(0, 10), Buffer.from([0xe9]), utf8.subarray(10)]);
  assert.equal(textCharset(broken), 'iso-8859-1', 'a bad byte within the text is no cut at an end');
  assert.equal(textCharset(Buffer.from('plain\n')), 'us-ascii');
});
