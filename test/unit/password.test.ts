/** Password hashes: scrypt, checked two at a time so that the thread pool keeps room for flushes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

test('at most two password hashes are computed at once; the rest wait their turn, round the clients, and every answer is right', async () => {
  let running = 0;
  let most = 0;
  /** The passwords in the order their hashes began. */
  const started: string[] = [];
  const real = crypto.scrypt;
  // Watched before the module under test takes its copy of it.
  (crypto as { scrypt: unknown }).scrypt = (...args: unknown[]) => {
    running++;
    most = Math.max(most, running);
    started.push(String(args[0]));
    const done = args.at(-1) as (err: Error | null, key?: Buffer) => void;
    (real as (...a: unknown[]) => void)(...args.slice(0, -1), (err: Error | null, key?: Buffer) => {
      running--;
      done(err, key);
    });
  };
  try {
    const { hashPassword, verifyPassword } = await import('../../src/auth/password.ts');
    const stored = await hashPassword('correct horse');
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => verifyPassword(i % 3 === 0 ? 'correct horse' : `guess ${i}`, stored)));
    assert.deepEqual(answers, Array.from({ length: 12 }, (_, i) => i % 3 === 0));
    assert.equal(await verifyPassword('anything', undefined), false);
    assert.equal(most, 2);
    assert.equal(running, 0);
    // Turns go round the clients: a login sent after ten guesses of another client is checked in
    // the second round, beside the third guess, not after the tenth (an IPv6 client is counted
    // by its /64). Judged by when each check began: when it ends depends on the machine.
    started.length = 0;
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => verifyPassword(`guess ${i}`, stored, `2001:db8:1:2::${i + 1}`)),
      verifyPassword('correct horse', stored, '192.0.2.1'),
    ]);
    assert.equal(started.length, 11);
    assert.ok(started.indexOf('correct horse') <= 3, started.join(', '));
  } finally {
    (crypto as { scrypt: unknown }).scrypt = real;
  }
});
