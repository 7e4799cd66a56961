/** Connections to one destination: a slow start, a ceiling where the next hop refused one more,
 *  raised again by one a minute while deliveries go well, and one at a time when unreachable. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUSY_PAUSE_MS, CEILING_PROBE_MS, DestinationConcurrency } from '../../src/delivery/concurrency.ts';

test('starts at 5 and grows by one per delivery that goes well, up to the maximum', () => {
  const c = new DestinationConcurrency(10);
  assert.equal(c.limit, 5);
  for (let i = 0; i < 10; i++) c.wentWell(0);
  assert.equal(c.limit, 10);
  assert.equal(new DestinationConcurrency(3).limit, 3);
});

test('a refusal while others are open holds it to those; a minute on, deliveries that go well raise that by one a minute', () => {
  const c = new DestinationConcurrency(10);
  c.tooMany(4, 1_000);
  assert.equal(c.limit, 4);
  for (let i = 0; i < 5; i++) c.wentWell(2_000);
  assert.equal(c.limit, 4, 'not past the ceiling within the minute');
  c.wentWell(1_000 + CEILING_PROBE_MS);
  assert.equal(c.limit, 5);
  c.wentWell(1_000 + CEILING_PROBE_MS + 1);
  assert.equal(c.limit, 5, 'one a minute');
  c.wentWell(1_000 + 2 * CEILING_PROBE_MS + 1);
  assert.equal(c.limit, 6);
  // Refused again: held to those open then.
  c.tooMany(5, 1_000 + 3 * CEILING_PROBE_MS);
  assert.equal(c.limit, 5);
  c.tooMany(0, 1_000 + 3 * CEILING_PROBE_MS);
  assert.equal(c.limit, 1, 'never below one');
});

test('unreachable: one at a time, growing again as deliveries go well', () => {
  const c = new DestinationConcurrency(10);
  c.unreachable();
  assert.equal(c.limit, 1);
  c.wentWell(0);
  assert.equal(c.limit, 2);
});

test('a refusal just after a delivery went well: told apart for ten seconds; a pause holds new connections for a second', () => {
  const c = new DestinationConcurrency(10);
  assert.equal(c.justWentWell(0), false, 'nothing went well yet');
  c.wentWell(1_000);
  assert.equal(c.justWentWell(5_000), true);
  assert.equal(c.justWentWell(11_000), false);
  c.pause(20_000);
  assert.equal(c.mayOpen(20_500), false);
  assert.equal(c.mayOpen(20_000 + BUSY_PAUSE_MS), true);
});
