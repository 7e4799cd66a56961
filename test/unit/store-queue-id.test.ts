import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newQueueId } from '../../src/store/queue-id.ts';

test('queue ids: 17 characters without vowels, sorted by time, distinct across many random-pool refills', () => {
  const ids = Array.from({ length: 20_000 }, () => newQueueId(1_800_000_000_000));
  for (const id of ids) assert.match(id, /^[0-9B-DF-HJ-NP-TV-Z]{17}$/);
  assert.equal(new Set(ids).size, ids.length);
  // The random tails use the whole alphabet, not a corner of it.
  assert.equal(new Set(ids.map((id) => id.slice(7)).join('')).size, 31);
  assert.ok(newQueueId(1_800_000_000_000) < newQueueId(1_800_000_001_000));
});
