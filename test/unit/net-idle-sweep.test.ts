import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdleSweep, type IdleMember } from '../../src/net/idle-sweep.ts';

test('the sweep ends a member idle for the whole limit (at most one step more), not one active meanwhile or in a wait of its own', (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const sweep = new IdleSweep(1000); // a sweep every 100 ms
  let ms = 0;
  const fired: string[] = [];
  const member = (name: string, waiting = false) => {
    const m: IdleMember & { lastActive: number | undefined } = {
      lastActive: waiting ? undefined : sweep.tick,
      timedOut() {
        fired.push(`${name}@${ms}`);
        m.lastActive = sweep.tick;
      },
    };
    sweep.add(m);
    return m;
  };
  const advance = (to: number) => {
    while (ms < to) {
      ms += 10;
      t.mock.timers.tick(10);
    }
  };
  const idle = member('idle');
  const busy = member('busy');
  const waiting = member('waiting', true);
  advance(550);
  busy.lastActive = sweep.tick; // active at 550 ms
  advance(1200);
  assert.deepEqual(fired, ['idle@1100'], 'idle since 0: ended after 1 to 1.1 s');
  advance(1700);
  assert.deepEqual(fired, ['idle@1100', 'busy@1600'], 'active at 550 ms: ended after at least 1 s more');
  sweep.delete(idle);
  sweep.delete(busy);
  advance(8000);
  assert.deepEqual(fired, ['idle@1100', 'busy@1600'], 'removed members are not swept; a member in its own wait never is');
  sweep.delete(waiting);
  sweep.delete(waiting);
});
