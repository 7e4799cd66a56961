/** The caches' rule: an entry set is the newest, and a full map gives up its oldest. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { remember } from '../../src/bounded-map.ts';

test('a full map gives up its oldest entry; one set again is the newest', () => {
  const m = new Map<string, number>();
  for (const [k, v] of [['a', 1], ['b', 2], ['c', 3]] as const) remember(m, k, v, 3);
  remember(m, 'a', 10, 3);
  assert.deepEqual([...m], [['b', 2], ['c', 3], ['a', 10]]);
  remember(m, 'd', 4, 3);
  assert.deepEqual([...m], [['c', 3], ['a', 10], ['d', 4]]);
});
