/** The refused connection's log line: once a minute per client, the rest counted; bounded. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { RefusalLog } from '../../src/net/refusal-log.ts';

test('refused connections are logged once a minute per client (an IPv6 one by its /64), and past 10,000 clients in a minute the others share a line', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 0 });
  const lines: Record<string, unknown>[] = [];
  const log = { warn: (fields: Record<string, unknown>) => lines.push(fields) } as unknown as Logger;
  const r = new RefusalLog(log, 'http');
  for (let i = 0; i < 5; i++) r.refused('192.0.2.1', 'too many connections');
  for (let i = 1; i <= 5; i++) r.refused(`2001:db8:1:2::${i}`, 'too many connections');
  assert.deepEqual(lines.map((l) => l.client), ['192.0.2.1', '2001:db8:1:2::1']);
  t.mock.timers.tick(60_000);
  r.refused('192.0.2.1', 'too many connections');
  assert.deepEqual(lines.at(-1), { listener: 'http', client: '192.0.2.1', reason: 'too many connections', unlogged: 4 });
  // Ten thousand clients within the minute: the next ones share one line.
  const before = lines.length;
  for (let i = 0; i < 10_100; i++) r.refused(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 'too many connections');
  assert.ok(lines.length - before <= 10_000, `${lines.length - before} lines`);
  assert.equal(lines.filter((l) => l.client === 'others').length, 1);
});
