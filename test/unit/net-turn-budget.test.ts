/**
 * The input budget of one turn of the event loop: spent once its time has gone, renewed in the
 * next turn; input put off goes on in later turns, in the order it came, at least one a turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { TurnBudget } from '../../src/net/turn-budget.ts';
import { countTurns } from '../helpers/turns.ts';

test('the budget is spent once its time has gone in a turn, and renewed in the next', async () => {
  let clock = 0;
  const budget = new TurnBudget(10, () => clock);
  assert.equal(budget.spent(), false, 'the first call starts the turn');
  clock += 9;
  assert.equal(budget.spent(), false);
  clock += 1;
  assert.equal(budget.spent(), true);
  await nextTurn();
  assert.equal(budget.spent(), false, 'a new turn');
  clock += 10;
  assert.equal(budget.spent(), true);
});

test('put-off input goes on in later turns, first come first, as much as each turn\'s budget allows and at least one', async (t) => {
  let clock = 0;
  const budget = new TurnBudget(10, () => clock);
  const ran: [number, number][] = [];
  const turns = countTurns(t);
  // Each takes 4 ms, and the last one 30.
  for (let i = 0; i < 7; i++) {
    budget.defer(() => {
      ran.push([i, turns.turn]);
      clock += i === 6 ? 30 : 4;
    });
  }
  budget.defer(() => ran.push([7, turns.turn]));
  while (ran.length < 8) await nextTurn();
  assert.deepEqual(ran.map(([i]) => i), [0, 1, 2, 3, 4, 5, 6, 7], 'in the order they came');
  const perTurn = new Map<number, number>();
  for (const [, n] of ran) perTurn.set(n, (perTurn.get(n) ?? 0) + 1);
  // 4 + 4 + 4 ms spend a 10 ms budget: three a turn; the 30 ms one ends its turn alone.
  assert.deepEqual([...perTurn.values()], [3, 3, 1, 1]);
});
