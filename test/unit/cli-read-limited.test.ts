/** Reading a message from stdin: the size bound, and sendmail's dot line that ends the input. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { readLimited, TooLarge } from '../../src/cli/read-limited.ts';

const read = (chunks: string[], dot: boolean, max = 1000) => readLimited(max, dot, Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))));

test('a line of a single dot ends the input wherever the chunks are cut, with LF, CRLF or CR line ends', async () => {
  for (const text of ['a\n.\nrest\n', 'a\r\n.\r\nrest\r\n', 'a\r.\rrest\r', '.\nrest\n']) {
    const dot = text.indexOf('.');
    for (let cut = 1; cut < text.length; cut++) {
      const got = (await read([text.slice(0, cut), text.slice(cut)], true)).toString('latin1');
      assert.ok(got.startsWith(text.slice(0, dot + 2)) && !got.includes('rest'), `${JSON.stringify(text)} cut at ${cut}: ${JSON.stringify(got)}`);
    }
    // One octet at a time.
    assert.ok(!(await read([...text], true)).toString('latin1').includes('rest'));
  }
  // Not a dot line: a dot with more on its line, a dot at the input's end, or -i.
  assert.equal((await read(['a\n.x\n..\n', 'b\n.'], true)).toString(), 'a\n.x\n..\nb\n.');
  assert.equal((await read(['a\n.\n', 'rest\n'], false)).toString(), 'a\n.\nrest\n');
});

test('past the bound, TooLarge; what lies after the dot line does not count', async () => {
  await assert.rejects(read(['x'.repeat(600), 'y'.repeat(600)], false), TooLarge);
  assert.equal((await read(['a\n.\n', 'z'.repeat(2000)], true)).toString(), 'a\n.\n');
});
