import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newQueueId } from '../../src/store/queue-id.ts';

test('queue ids: 17 characters without vowels, sorted by time, distinct across many random-pool refills', () => {
  const ids = Array.from({ length: 20_000 }, () => newQueueId(1_800_000_000_000));
  for (const id of ids) assert.match(id, /^[0-9B-DF-HJ-NP-TV-Z]{17}$/);
  assert.equal(new Set(ids).size, ids.length);
  // The random tails use the whole alphabet, each letter as often as the others. A byte taken
  // modulo 31 would make the first 8 letters (256 = 8 × 31 + 8) 9/8 as likely as the rest; here
  // their share is within 5% of the others' (the spread of 200,000 fair draws is under 1%).
  const counts = new Map<string, number>();
  for (const letter of ids.map((id) => id.slice(7)).join('')) counts.set(letter, (counts.get(letter) ?? 0) + 1);
  assert.equal(counts.size, 31);
  const mean = (letters: string[]) => letters.reduce((n, l) => n + counts.get(l)!, 0) / letters.length;
  const alphabet = [...counts.keys()].sort((a, b) => (a < b ? -1 : 1));
  const ratio = mean(alphabet.slice(0, 8)) / mean(alphabet.slice(8));
  assert.ok(ratio > 0.95 && ratio < 1.05, `the first 8 letters come ${ratio.toFixed(3)} times as often as the rest`);
  assert.ok(newQueueId(1_800_000_000_000) < newQueueId(1_800_000_001_000));
});
