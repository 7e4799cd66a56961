import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PiecePool } from '../../src/store/sqlite/piece-pool.ts';

test('a piece handed back (or a slice of it) serves the next take; a foreign or second give is ignored', () => {
  const pool = new PiecePool(16, 2);
  const a = pool.take(16);
  const b = pool.take(5);
  assert.equal(b.length, 5);
  assert.notEqual(a.buffer, b.buffer);
  pool.give(b.subarray(1, 3));
  pool.give(b);
  pool.give(Buffer.alloc(16));
  const c = pool.take(16);
  assert.equal(c.buffer, b.buffer, 'b came back once');
  assert.notEqual(pool.take(16).buffer, b.buffer, 'and only once');
  assert.throws(() => pool.take(17), RangeError);
});

test('at most `keep` buffers wait unused', () => {
  const pool = new PiecePool(8, 1);
  const a = pool.take(8);
  const b = pool.take(8);
  pool.give(a);
  pool.give(b);
  assert.equal(pool.take(8).buffer, a.buffer);
  const next = pool.take(8);
  assert.notEqual(next.buffer, a.buffer);
  assert.notEqual(next.buffer, b.buffer, 'b was not kept');
});
