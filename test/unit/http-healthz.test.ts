/** /healthz asks the store: 200 while it answers, 503 once it does not (here: closed under the service). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';
import { openContext } from '../../src/context.ts';
import { HttpService } from '../../src/http/server.ts';
import { createLogger } from '../../src/log.ts';
import { roomNow } from '../../src/store/free-space.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('/healthz is 200 while the store answers a query, 503 when it does not', async () => {
  const config = parseConfig({ data_dir: tempDir('mailnest-health-'), listen: { http: ['127.0.0.1:0'] } });
  const ctx = openContext(config, createLogger('silent'));
  const service = new HttpService(ctx, roomNow(config.data_dir));
  const [address] = await service.start();
  try {
    const get = () => fetch(`http://${address}/healthz`);
    const ok = await get();
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { status: 'ok' });
    ctx.store.close();
    const down = await get();
    assert.equal(down.status, 503);
    assert.equal((await down.json() as { status: string }).status, 'unavailable');
  } finally {
    await service.stop();
  }
});
