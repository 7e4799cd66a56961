/** The durability barrier: nothing resolves before its flush, and concurrent commits share flushes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WalSync } from '../../src/store/sqlite/wal-sync.ts';
import { tempDir } from '../helpers/temp-dir.ts';

/** A WAL file to flush, and an fdatasync the test completes by hand. */
function setup() {
  const dir = tempDir('mailnest-wal-');
  const db = path.join(dir, 'x.sqlite');
  fs.writeFileSync(`${db}-wal`, 'log');
  const calls: (() => void)[] = [];
  const wal = new WalSync(db, () => new Promise<void>((resolve) => calls.push(resolve)));
  return { wal, calls };
}

const tick = () => new Promise((r) => setImmediate(r));

test('sync resolves only after its fdatasync has completed', async () => {
  const { wal, calls } = setup();
  let done = false;
  void wal.sync().then(() => { done = true; });
  await tick();
  assert.equal(calls.length, 1);
  assert.equal(done, false, 'not durable yet');
  calls[0]!();
  await tick();
  assert.equal(done, true);
  wal.close();
});

test('syncs asked for while one runs share the next fdatasync, never the running one', async () => {
  const { wal, calls } = setup();
  const first = wal.sync();
  await tick();
  const later = Array.from({ length: 50 }, () => wal.sync());
  let laterDone = 0;
  for (const p of later) void p.then(() => laterDone++);
  calls[0]!(); // the flush that began before they were asked for
  await first;
  await tick();
  assert.equal(laterDone, 0, 'the running flush may have begun before their commits');
  assert.equal(calls.length, 2, 'one more fdatasync for all fifty');
  calls[1]!();
  await Promise.all(later);
  assert.equal(calls.length, 2);
  wal.close();
});

test('a WAL file removed or replaced is opened again: the flush reaches the file there is now', async () => {
  const dir = tempDir('mailnest-wal-');
  const db = path.join(dir, 'x.sqlite');
  const walFile = `${db}-wal`;
  fs.writeFileSync(walFile, 'log');
  const flushed: number[] = [];
  const wal = new WalSync(db, async (fd) => { flushed.push(fs.fstatSync(fd).ino); });
  await wal.sync();
  await wal.sync();
  fs.unlinkSync(walFile);
  fs.writeFileSync(walFile, 'log again');
  await wal.sync();
  const other = path.join(dir, 'other');
  fs.writeFileSync(other, 'renamed over it');
  fs.renameSync(other, walFile);
  await wal.sync();
  const [a, b, c, d] = flushed;
  assert.equal(a, b, 'the same file: the same descriptor');
  assert.notEqual(c, a);
  assert.notEqual(d, c);
  assert.equal(d, fs.statSync(walFile).ino);
  wal.close();
});

test('after close, sync has nothing left to wait for', async () => {
  const { wal } = setup();
  wal.close();
  await wal.sync();
});

test('the store acknowledges a message, a deletion, a new user only after the flush', async () => {
  const { SqliteStore } = await import('../../src/store/sqlite/sqlite-store.ts');
  const { newQueueId } = await import('../../src/store/queue-id.ts');
  const calls: (() => void)[] = [];
  let hold = false;
  const store = new SqliteStore(tempDir('mailnest-wal-'), {
    fdatasync: () => (hold ? new Promise<void>((resolve) => calls.push(resolve)) : Promise.resolve()),
  });
  const user = await store.createUser('u@example.test', 'h');
  hold = true;
  const pending = (p: Promise<unknown>) => {
    const state = { done: false };
    void p.then(() => { state.done = true; });
    return state;
  };
  const accepted = pending(store.accept({ id: newQueueId(), body: [Buffer.from('x\r\n')], sender: '', local: [{ userId: user.id, prefix: Buffer.alloc(0) }] }));
  await tick();
  assert.equal(accepted.done, false, 'no acknowledgement before the flush');
  assert.equal((await store.listMailbox(user.id)).length, 1, 'committed meanwhile');
  calls.shift()!();
  await tick();
  assert.equal(accepted.done, true);
  const deleted = pending(store.deleteMessages(user.id, [1]));
  const created = pending(store.createUser('v@example.test', 'h'));
  await tick();
  assert.deepEqual([deleted.done, created.done], [false, false]);
  // The second may wait for a flush that starts after the first one: release them as they come.
  for (let i = 0; i < 10 && !(deleted.done && created.done); i++) {
    while (calls.length) calls.shift()!();
    await tick();
  }
  assert.deepEqual([deleted.done, created.done], [true, true]);
  hold = false;
  store.close();
});

test('a failed flush is reported, and neither it nor any later one acknowledges anything', async () => {
  const { SqliteStore } = await import('../../src/store/sqlite/sqlite-store.ts');
  const { newQueueId } = await import('../../src/store/queue-id.ts');
  let fail = false;
  const failures: Error[] = [];
  const store = new SqliteStore(tempDir('mailnest-wal-'), {
    fdatasync: () => (fail ? Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })) : Promise.resolve()),
    onFailedFlush: (err) => failures.push(err),
  });
  const user = await store.createUser('u@example.test', 'h');
  fail = true;
  const settled: string[] = [];
  const watch = (name: string, p: Promise<unknown>) => void p.then(() => settled.push(`${name} resolved`), () => settled.push(`${name} rejected`));
  watch('first', store.accept({ id: newQueueId(), body: [Buffer.from('x\r\n')], sender: '', local: [{ userId: user.id, prefix: Buffer.alloc(0) }] }));
  for (let i = 0; i < 5; i++) await tick();
  assert.deepEqual(failures.map((e) => e.message), ['EIO: i/o error, fdatasync']);
  // A later flush would succeed: it acknowledges nothing all the same.
  fail = false;
  watch('second', store.accept({ id: newQueueId(), body: [Buffer.from('y\r\n')], sender: '', local: [{ userId: user.id, prefix: Buffer.alloc(0) }] }));
  watch('user', store.createUser('v@example.test', 'h'));
  for (let i = 0; i < 5; i++) await tick();
  assert.deepEqual(settled, [], 'nothing settled after the failure');
});
