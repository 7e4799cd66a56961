/** A queue whose store fails at every scan is said to fail once a minute, not at every poll. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';
import type { Context } from '../../src/context.ts';
import { QueueRunner } from '../../src/delivery/queue-runner.ts';
import type { Logger } from '../../src/log.ts';
import { Metrics } from '../../src/metrics.ts';
import type { Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('scans that keep failing are logged once a minute, and their end once', async () => {
  const lines: [string, string][] = [];
  const at = (level: string) => (_fields: object, msg: string) => { lines.push([level, msg]); };
  const log = { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') } as unknown as Logger;
  let broken = true;
  const store = {
    dueRecipients: async () => {
      if (broken) throw new Error('database disk image is malformed');
      return [];
    },
    queueDepth: async () => 0,
    entriesWithReports: async () => [],
  } as unknown as Store;
  const config = parseConfig({ data_dir: tempDir('mailnest-scan-'), dkim: { enabled: false } });
  let now = 1_000_000;
  const runner = new QueueRunner({ config, store, log, metrics: new Metrics(), recipients: undefined as never } as Context, { now: () => now });
  const scan = async () => {
    runner.poll();
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  for (let i = 0; i < 10; i++) {
    await scan();
    now += 500;
  }
  assert.deepEqual(lines, [['error', 'queue scan failed']], 'ten failures within five seconds: one line');
  now += 60_000;
  await scan();
  assert.equal(lines.filter(([, m]) => m === 'queue scan failed').length, 2, 'and one more a minute on');
  broken = false;
  await scan();
  await scan();
  assert.deepEqual(lines.at(-1), ['info', 'queue scans work again']);
  assert.equal(lines.filter(([, m]) => m === 'queue scans work again').length, 1);
});
