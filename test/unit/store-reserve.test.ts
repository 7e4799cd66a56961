/** The room kept back for deleting mail on a disk filled to the last byte (data_dir/reserve). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Reserve } from '../../src/store/reserve.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newQueueId } from '../../src/store/queue-id.ts';
import { isStorageFull } from '../../src/store/store.ts';
import { tmpfsFor } from '../helpers/tmpfs.ts';

const KIB = 1024;

test('on a full disk, deleting mail and removing a user give up the reserve and succeed; nothing else may use it, and the sweep makes it again', async (t) => {
  let store: SqliteStore | undefined;
  const dir = tmpfsFor(t, '8m', () => store?.close());
  if (!dir) return;
  let given = 0;
  store = new SqliteStore(dir, { reserveBytes: 1024 * KIB, onReserveGiven: () => given++ });
  const reserve = path.join(dir, 'reserve');
  const put = (userId: number, kib: number) => store!.accept({ id: newQueueId(), body: [Buffer.alloc(kib * KIB, 'x')], sender: '', local: [{ userId, prefix: Buffer.alloc(0) }] });
  const a = await store.createUser('a@example.test', 'h');
  const b = await store.createUser('b@example.test', 'h');
  for (const kib of [10, 100, 400]) {
    await put(a.id, kib);
    await put(b.id, kib);
  }
  assert.ok(!fs.existsSync(reserve), 'made when the store opens');
  await store.sweep();
  assert.equal(fs.statSync(reserve).size, 1024 * KIB);
  // The disk filled to the last byte by something else.
  const fd = fs.openSync(path.join(dir, 'filler'), 'a');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(16 * KIB, 0x61));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  // Mail that arrives is refused, and does not take the reserve.
  await assert.rejects(put(a.id, 10), (err) => isStorageFull(err) || (err as NodeJS.ErrnoException).code === 'ENOSPC');
  assert.ok(fs.existsSync(reserve));
  assert.equal(given, 0);
  // POP3's deletions go through with its room.
  await store.deleteMessages(a.id, [1, 2, 3]);
  assert.equal(given, 1);
  assert.ok(!fs.existsSync(reserve));
  assert.deepEqual(await store.listMailbox(a.id), []);
  assert.equal(await store.removeUser('b@example.test'), true);
  assert.equal(await store.findUser('b@example.test'), undefined);
  // Once the disk has room again, the sweep makes it again.
  fs.rmSync(path.join(dir, 'filler'));
  await store.sweep();
  assert.equal(fs.statSync(reserve).size, 1024 * KIB);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('reserve')), ['reserve']);
});

test('a store that cannot be opened on a full disk gives the reserve up and opens; a reserve a crash left half made is given up too, and removed before another is made; a small disk gets a smaller one', async (t) => {
  let store: SqliteStore | undefined;
  const dir = tmpfsFor(t, '8m', () => store?.close());
  if (!dir) return;
  store = new SqliteStore(dir, { reserveBytes: 1024 * KIB });
  await store.createUser('a@example.test', 'h');
  await store.sweep();
  const reserve = path.join(dir, 'reserve');
  assert.equal(fs.statSync(reserve).size, 1024 * KIB);
  store.close();
  store = undefined;
  // Closed cleanly, the write-ahead log is gone; the disk then filled to the last byte.
  assert.ok(!fs.existsSync(path.join(dir, 'mailnest.sqlite-wal')));
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'a');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(16 * KIB, 0x61));
  } catch {
    // full
  } finally {
    fs.closeSync(fd);
  }
  let given = 0;
  store = new SqliteStore(dir, { reserveBytes: 1024 * KIB, onReserveGiven: () => given++ });
  assert.equal(given, 1);
  assert.ok(!fs.existsSync(reserve));
  assert.ok(await store.findUser('a@example.test'));
  store.close();
  store = undefined;
  // A reserve half made when a crash came counts as one to give, and goes before another is made.
  fs.rmSync(filler);
  fs.writeFileSync(`${reserve}.new`, Buffer.alloc(512 * KIB));
  store = new SqliteStore(dir, { reserveBytes: 1024 * KIB });
  await store.sweep();
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('reserve')), ['reserve']);
  store.close();
  store = undefined;
  fs.rmSync(reserve);
  fs.writeFileSync(`${reserve}.new`, Buffer.alloc(512 * KIB));
  assert.equal(new Reserve(dir).release(), true);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('reserve')), []);
  // Where the disk has less than four times the reserve free, a smaller one: a quarter of it.
  store = new SqliteStore(dir, { reserveBytes: 64 * 1024 * KIB });
  await store.sweep();
  const size = fs.statSync(reserve).size;
  assert.ok(size >= 1024 * KIB && size < 2 * 1024 * KIB, `${size} bytes`);
});
