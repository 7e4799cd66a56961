/** The send API's check for a JSON member name given twice (RFC 8259 §4). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { repeatedName } from '../../src/http/repeated-name.ts';

test('the first repeated name is found at any depth, named as the API names fields', () => {
  const cases: [string, string | undefined][] = [
    ['{"to": "a@x", "text": "hi"}', undefined],
    ['{"to": "a@x", "text": "hi", "to": "b@x"}', 'to'],
    // the same name once escaped is the same name
    ['{"to": "a@x", "t\\u006f": "b@x"}', 'to'],
    ['{"attachments": [{"filename": "a", "content": ""}, {"filename": "b", "content": "", "filename": "c"}]}', 'attachments[1].filename'],
    ['{"headers": {"X-A": "1", "X-B": "2", "X-A": "3"}}', 'headers["X-A"]'],
    // names repeated in different objects, or values that look like names, are no repeat
    ['{"a": {"x": 1}, "b": {"x": 2}, "c": ["x", "x"], "d": "\\"x\\": 1, \\"d\\": 2"}', undefined],
    ['{"a": "ends in a backslash\\\\", "a": 2}', 'a'],
    ['[{"x": 1}, {"x": 2, "y": [1, {"z": 0, "z": 1}]}]', '[1].y[1].z'],
    ['"just a string"', undefined],
    ['{}', undefined],
  ];
  for (const [text, expected] of cases) {
    JSON.parse(text); // every case is valid JSON, as the function requires
    assert.equal(repeatedName(text), expected, text);
  }
});

test('nesting as deep as JSON.parse takes, and megabytes of string, in one pass', () => {
  const deep = `${'['.repeat(100_000)}{"k": 1, "k": 2}${']'.repeat(100_000)}`;
  assert.equal(repeatedName(deep)?.endsWith('[0].k'), true);
  const big = JSON.stringify({ to: 'a@x', attachments: [{ filename: 'f', content: 'QUFB'.repeat(4_000_000) }], to2: 1 });
  assert.equal(repeatedName(big), undefined);
  assert.equal(repeatedName(`${big.slice(0, -1)}, "attachments": []}`), 'attachments');
});
