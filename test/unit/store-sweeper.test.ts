/** The hourly sweep of a running server: it runs the store's sweep, logs what it did, stops. */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { StoreSweeper } from '../../src/store/sweeper.ts';

test('once an hour the sweeper removes body files left without a row, and logs how many', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-sweeper-'));
  const store = new SqliteStore(dir);
  const orphan = path.join(dir, 'bodies', 'ORPHAN00000001');
  fs.writeFileSync(orphan, 'the first half of a message');
  const old = new Date(Date.now() - 2 * 3600_000);
  fs.utimesSync(orphan, old, old);
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const sweeper = new StoreSweeper(store, log);
    await sweeper.start();
    mock.timers.tick(59 * 60_000);
    assert.ok(fs.existsSync(orphan), 'not before the hour');
    mock.timers.tick(60_000);
    await sweeper.stop();
    assert.equal(fs.existsSync(orphan), false);
    assert.deepEqual(lines.map((l) => [l.msg, l.removed]), [['store sweep removed leftovers of an interrupted write', 1]]);
  } finally {
    mock.timers.reset();
    store.close();
  }
});
