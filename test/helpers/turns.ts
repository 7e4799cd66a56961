/** Counting turns of the event loop, for tests of what one turn does. */
import type { TestContext } from 'node:test';

/** A count that goes up once per turn (in its check phase) until the test ends. */
export function countTurns(t: TestContext): { readonly turn: number } {
  const counter = { turn: 0 };
  let counting = true;
  const count = () => {
    counter.turn++;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  t.after(() => { counting = false; });
  return counter;
}
