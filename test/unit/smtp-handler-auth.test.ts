/** The SMTP listeners' login against the real store: a session that closes while its login waits its turn gets no password check. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { hashPassword } from '../../src/auth/password.ts';
import { AuthThrottle } from '../../src/auth/throttle.ts';
import { parseConfig } from '../../src/config/load.ts';
import { openContext } from '../../src/context.ts';
import { smtpHandler } from '../../src/smtp/handler.ts';
import { FreeSpace } from '../../src/store/free-space.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('a login whose session closed while it waited for its turn is neither checked nor counted', async () => {
  const dir = tempDir('mailnest-smtp-auth-');
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  const ctx = openContext(parseConfig({ data_dir: dir, hostname: 'mx.example.test', domains: ['example.test'] }), log);
  await ctx.store.createUser('alice@example.test', await hashPassword('right'));
  const freeSpace = new FreeSpace(dir);
  const throttle = new AuthThrottle(2);
  const handler = smtpHandler(ctx, 'submission', throttle, freeSpace);
  const ip = '192.0.2.7';
  try {
    // Two checks from the address under way: as many as it has failures left.
    assert.ok(await throttle.begin(ip, Date.now()));
    assert.ok(await throttle.begin(ip, Date.now()));
    const session = handler.createSession({ remoteAddress: ip });
    let settled = false;
    const waiting = handler.perform({ kind: 'auth', client: ip, username: 'alice@example.test', password: 'a guess' }, session).finally(() => { settled = true; });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'the third waits for its turn');
    handler.ended!(session);
    throttle.succeed(ip, 'someone@example.test');
    assert.deepEqual(await waiting, { kind: 'auth', disconnect: true });
    assert.deepEqual(lines.filter((l) => l.msg === 'authentication failed'), [], 'no password was checked');
    // Nothing was counted: with both failures still left, two logins go at once again.
    throttle.abandon(ip);
    assert.ok(await throttle.begin(ip, Date.now()));
    const next = await Promise.race([throttle.begin(ip, Date.now()), new Promise((resolve) => setImmediate(() => resolve('waits')))]);
    assert.equal(next, true);
  } finally {
    freeSpace.close();
    ctx.store.close();
  }
});
