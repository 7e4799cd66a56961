/** The listings' table: columns as wide as their widest cell, for any number of rows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tableLines } from '../../src/cli/table.ts';

test('columns are as wide as their widest cell, the last left as it is', () => {
  assert.deepEqual(tableLines(['ID', 'TO', 'REPLY'], [['a', 'bob@example.test', 'ok'], ['long-id', 'x', '451 later']]), [
    'ID       TO                REPLY',
    'a        bob@example.test  ok',
    'long-id  x                 451 later',
  ]);
});

test('a table of 300,000 rows (a backed-up queue) is laid out like any other', () => {
  const rows = Array.from({ length: 300_000 }, (_, i) => [String(i), 'x']);
  const lines = tableLines(['ID', 'TO'], rows);
  assert.equal(lines.length, 300_001);
  assert.equal(lines[300_000], '299999  x');
  assert.equal(lines[0], 'ID      TO');
});

test('a control character in a cell (an escape sequence in a remote server\'s reply) is shown, not sent to the terminal', () => {
  const lines = tableLines(['ID', 'REPLY'], [['a', '451 \x1b]0;PWNED\x07\x1b[2Kfake\u009b']]);
  assert.equal(lines[1], 'a   451 \\x1b]0;PWNED\\x07\\x1b[2Kfake\\x9b');
});

test('a mark that turns text around (U+202E, U+2066) in a cell is shown as an escape, not obeyed', () => {
  const lines = tableLines(['ID', 'REPLY'], [['a', '550 \u202edelivered\u2066 ok\u2028']]);
  assert.equal(lines[1], 'a   550 \\u{202e}delivered\\u{2066} ok\\u{2028}');
});
