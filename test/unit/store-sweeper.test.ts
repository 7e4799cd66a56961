/** The sweep of a running server: five minutes after start, then hourly; it runs the store's sweep, logs what it did, stops. */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { StoreSweeper } from '../../src/store/sweeper.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('five minutes after start, then once an hour, the sweeper removes body files left without a row, and logs how many', async () => {
  const dir = tempDir('mailnest-sweeper-');
  const store = new SqliteStore(dir);
  const orphan = path.join(dir, 'bodies', 'ORPHAN00000001');
  fs.writeFileSync(orphan, 'the first half of a message');
  const old = new Date(Date.now() - 2 * 3600_000);
  fs.utimesSync(orphan, old, old);
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
  try {
    const sweeper = new StoreSweeper(store, log);
    await sweeper.start();
    mock.timers.tick(4 * 60_000);
    assert.ok(fs.existsSync(orphan), 'not before five minutes');
    mock.timers.tick(60_000);
    await settle(() => lines.length === 1);
    assert.equal(fs.existsSync(orphan), false, 'swept after five minutes');
    const second = `${orphan}2`;
    fs.writeFileSync(second, 'another half');
    fs.utimesSync(second, old, old);
    mock.timers.tick(54 * 60_000);
    assert.ok(fs.existsSync(second), 'not again before the hour');
    mock.timers.tick(60_000);
    await sweeper.stop();
    assert.equal(fs.existsSync(second), false);
    assert.deepEqual(lines.map((l) => [l.msg, l.removed]), [['store sweep removed files no message needs any more', 1], ['store sweep removed files no message needs any more', 1]]);
  } finally {
    mock.timers.reset();
    store.close();
  }
});

/** Lets real I/O run (the timers are mocked) until `done` or two seconds have passed. */
async function settle(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
}
