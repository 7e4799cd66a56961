/** The API holds a send to the server's gauge of free space, the one SMTP counts its messages
 *  off: sends at once cannot each count the same free bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';
import { openContext } from '../../src/context.ts';
import { HttpService } from '../../src/http/server.ts';
import { hashToken, newToken } from '../../src/http/tokens.ts';
import { createLogger } from '../../src/log.ts';
import type { Room } from '../../src/store/free-space.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('a send takes its room from the server\'s gauge: 507 once it has none left, nothing stored', async () => {
  const config = parseConfig({ data_dir: tempDir('mailnest-room-'), domains: ['example.test'], listen: { http: ['127.0.0.1:0'] } });
  const ctx = openContext(config, createLogger('silent'));
  const user = await ctx.store.createUser('a@example.test', 'h');
  const token = newToken();
  await ctx.store.addToken('t', hashToken(token));
  // A gauge with room for one message of any size, as SMTP's is after others took the rest.
  const taken: number[] = [];
  const room: Room = { bytes: 5_000_000, take: (size) => taken.push(size) === 1 };
  const service = new HttpService(ctx, room);
  const [address] = await service.start();
  try {
    const send = (text: string) => fetch(`http://${address}/api/v1/send`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ to: 'a@example.test', text }),
    });
    assert.equal((await send('first')).status, 202);
    const second = await send('second');
    assert.equal(second.status, 507);
    assert.equal(taken.length, 2);
    assert.ok(taken.every((n) => n > 0));
    assert.equal((await ctx.store.listMailbox(user.id)).length, 1);
  } finally {
    await service.stop();
    ctx.store.close();
  }
});
