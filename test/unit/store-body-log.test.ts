/** The body log: segments and their markers, recovery after a crash, removal and compaction by the sweep, two processes on one data directory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newQueueId } from '../../src/store/queue-id.ts';
import { storedMessage } from '../helpers/mailbox.ts';
import { tmpfsFor } from '../helpers/tmpfs.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = () => tempDir('mailnest-log-');
const KIB = 1024;

/** A 100 KiB body that says which message it is all through. */
const bodyOf = (n: number) => Buffer.alloc(100 * KIB, `message ${n}. `);

async function put(store: SqliteStore, userId: number, n: number): Promise<void> {
  await store.accept({ id: newQueueId(), body: [bodyOf(n)], sender: '', local: [{ userId, prefix: Buffer.alloc(0) }] });
}

const logFiles = (dir: string) => fs.readdirSync(path.join(dir, 'body-log')).sort();
const segments = (dir: string) => logFiles(dir).filter((n) => /^\d+$/.test(n));
const markers = (dir: string) => logFiles(dir).filter((n) => n.endsWith('.open'));

/** A new store whose segments end at `segmentBytes`, with one user who got messages 1 to 5. */
async function fiveMessages(segmentBytes: number): Promise<{ dir: string; store: SqliteStore; userId: number }> {
  const dir = tmp();
  const store = new SqliteStore(dir, { segmentBytes });
  const { id: userId } = await store.createUser('u@example.test', 'h');
  for (let n = 1; n <= 5; n++) await put(store, userId, n);
  return { dir, store, userId };
}

/** Messages `ns` read back whole, each at the UID of its number. */
async function assertWhole(store: SqliteStore, userId: number, ns: number[]): Promise<void> {
  for (const n of ns) assert.ok((await storedMessage(store, userId, n)).equals(bodyOf(n)), `message ${n}`);
}

/** Makes every segment look last written two hours ago, as the sweep's age rule wants. */
function age(dir: string): void {
  const then = new Date(Date.now() - 2 * 3600_000);
  for (const s of segments(dir)) fs.utimesSync(path.join(dir, 'body-log', s), then, then);
}

test('segments: a new one once the current is full, a new one after a restart, bodies read back from each', async () => {
  const first = await fiveMessages(250 * KIB);
  const { dir, userId } = first;
  let store = first.store;
  // Two 100 KiB bodies fit in 250 KiB, a third does not. Only the segment being written has a
  // marker; close seals it too.
  assert.deepEqual(segments(dir), ['00000001', '00000002', '00000003']);
  assert.equal(markers(dir).length, 1);
  assert.match(markers(dir)[0]!, new RegExp(`^00000003\\.${process.pid}\\.[0-9a-f]+\\.open$`));
  store.close();
  assert.deepEqual(markers(dir), []);
  store = new SqliteStore(dir, { segmentBytes: 250 * KIB });
  await put(store, userId, 6);
  assert.deepEqual(segments(dir), ['00000001', '00000002', '00000003', '00000004'], 'a restart never appends to a segment of before');
  await assertWhole(store, userId, [1, 2, 3, 4, 5, 6]);
  store.close();
});

test('a body damaged on disk is not read back as the message: its checksum is checked first', async () => {
  const { dir, store, userId } = await fiveMessages(250 * KIB);
  // Message 2 is the second body of the first segment; one byte in its middle changes.
  const file = path.join(dir, 'body-log', '00000001');
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from('#'), 0, 1, 150 * KIB);
  fs.closeSync(fd);
  await assert.rejects(storedMessage(store, userId, 2), /does not match its checksum/);
  await assertWhole(store, userId, [1, 3, 4, 5]);
  store.close();
});

test('sweep: removes a segment no row refers to once it is an hour old, never the one being written', async () => {
  const { dir, store, userId } = await fiveMessages(250 * KIB);
  await store.deleteMessages(userId, [1, 2, 5]);
  // Segment 1 is rowless but was written just now: it may be another process's, left alone.
  assert.equal((await store.sweep()).removed, 0);
  age(dir);
  // Segment 3 lost its only message too, but it is the current one.
  assert.equal((await store.sweep()).removed, 1);
  assert.deepEqual(segments(dir), ['00000002', '00000003']);
  await assertWhole(store, userId, [3, 4]);
  store.close();
});

test('sweep: moves the live bodies out of a mostly dead segment, which the next sweep removes', async () => {
  const { dir, store, userId } = await fiveMessages(450 * KIB);
  // Segment 1 holds 1-4, segment 2 holds 5. Three of four gone: a quarter of segment 1 lives.
  await store.deleteMessages(userId, [1, 2, 4]);
  age(dir);
  assert.equal((await store.sweep()).removed, 0);
  await assertWhole(store, userId, [3]);
  assert.equal(fs.statSync(path.join(dir, 'body-log', '00000002')).size, 200 * KIB, 'message 3 was appended to the current segment');
  age(dir);
  assert.equal((await store.sweep()).removed, 1);
  assert.deepEqual(segments(dir), ['00000002']);
  await assertWhole(store, userId, [3, 5]);
  // A segment half alive or more stays as it is: 2 holds 5 (deleted), 3, 6 and 7; 8 begins 3.
  await store.deleteMessages(userId, [5]);
  for (const n of [6, 7, 8]) await put(store, userId, n);
  age(dir);
  assert.equal((await store.sweep()).removed, 0);
  assert.deepEqual(segments(dir), ['00000002', '00000003']);
  assert.equal(fs.statSync(path.join(dir, 'body-log', '00000002')).size, 400 * KIB);
  store.close();
});

test('sweep: a body damaged or cut short stays where it is, named, and is never given a new checksum; the rest is compacted', async () => {
  const { dir, store, userId } = await fiveMessages(450 * KIB);
  // Segments of four bodies: 1-4, 5-8, 9-12, and 13 in the current one.
  for (let n = 6; n <= 13; n++) await put(store, userId, n);
  assert.deepEqual(segments(dir), ['00000001', '00000002', '00000003', '00000004']);
  // One body alive in each full segment: 3, 8 and 11.
  await store.deleteMessages(userId, [1, 2, 4, 5, 6, 7, 9, 10, 12]);
  // 3 gets a byte changed in its middle; 8, the last of its segment, is cut short; 11 is intact.
  const fd = fs.openSync(path.join(dir, 'body-log', '00000001'), 'r+');
  fs.writeSync(fd, Buffer.from('#'), 0, 1, 250 * KIB);
  fs.closeSync(fd);
  fs.truncateSync(path.join(dir, 'body-log', '00000002'), 350 * KIB);
  age(dir);
  const first = await store.sweep();
  assert.equal(first.damaged.length, 2, 'messages 3 and 8 are named');
  await assert.rejects(storedMessage(store, userId, 3), /does not match its checksum/);
  await assert.rejects(storedMessage(store, userId, 8), /too short/);
  await assertWhole(store, userId, [11, 13]);
  // 11 moved past the two: its old segment goes in the next sweep; the damaged ones stay.
  age(dir);
  const second = await store.sweep();
  assert.equal(second.removed, 1);
  assert.deepEqual(segments(dir), ['00000001', '00000002', '00000004']);
  await assertWhole(store, userId, [11, 13]);
  store.close();
});

test('two stores on one data directory (the server and `mailnest sendmail`) never share a segment', async () => {
  const dir = tmp();
  const server = new SqliteStore(dir);
  const u = await server.createUser('u@example.test', 'h');
  await put(server, u.id, 1);
  const other = new SqliteStore(dir);
  await put(other, u.id, 2);
  await put(server, u.id, 3);
  assert.deepEqual(segments(dir), ['00000001', '00000002']);
  // The other one's fresh segment has a row now, and it would be left alone without one too.
  assert.equal((await server.sweep()).removed, 0);
  other.close();
  await assertWhole(server, u.id, [1, 2, 3]);
  server.close();
});

test('recovery: in a segment whose writer died without sealing it, a message whose body is not all there is removed, the rest kept', async (t) => {
  const dir = tmp();
  let store = new SqliteStore(dir);
  const alice = await store.createUser('alice@example.test', 'h');
  const bob = await store.createUser('bob@example.test', 'h');
  for (let n = 1; n <= 4; n++) {
    await store.accept({ id: `Q${n}`, body: [bodyOf(n)], sender: '', local: [{ userId: alice.id, prefix: Buffer.alloc(0) }, { userId: bob.id, prefix: Buffer.alloc(0) }],
      ...(n === 2 ? { outbound: { prefix: Buffer.alloc(0), recipients: [{ address: 'x@remote.test' }], sign: false } } : {}) });
  }
  store.close();
  // What a crash of the machine can leave: the rows of 2 and 4 on disk, part of their bodies
  // not (2 with a page of zeros, 4 cut short at the end of the file), and the marker of a
  // writer that is gone: an earlier process with this one's pid (as pid 1 in a container).
  const file = path.join(dir, 'body-log', '00000001');
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 100 * KIB + 8192);
  fs.closeSync(fd);
  fs.truncateSync(file, 4 * 100 * KIB - 1);
  fs.writeFileSync(path.join(dir, 'body-log', `00000001.${process.pid}.0ddba11.open`), '');
  // The marker of a writer that still runs (another process) is left alone for now.
  const writer = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => writer.kill());
  const live = `00000001.${writer.pid}.c0ffee.open`;
  fs.writeFileSync(path.join(dir, 'body-log', live), '');
  store = new SqliteStore(dir);
  assert.deepEqual(store.recovered.sort(), ['Q2', 'Q4']);
  assert.deepEqual(markers(dir), [live]);
  for (const user of [alice, bob]) {
    assert.deepEqual((await store.listMailbox(user.id)).map((e) => e.uid), [1, 3]);
    await assertWhole(store, user.id, [1, 3]);
  }
  assert.equal(await store.getQueueEntry('Q2'), undefined);
  store.close();
  // Once that writer has ended, its segment is checked too: every body left is whole.
  writer.kill();
  await new Promise((resolve) => writer.once('exit', resolve));
  store = new SqliteStore(dir);
  assert.deepEqual(store.recovered, []);
  assert.deepEqual(markers(dir), []);
  store.close();
});

test('recovery: a marker names its writer by boot and start time, so a pid that another process has since (a reboot, a writer not yet reaped) does not keep its segment from the check', async (t) => {
  const { processIdentity } = await import('../../src/store/process-identity.ts');
  if (processIdentity(process.pid) === undefined) return t.skip('no /proc here');
  const dir = tmp();
  let store = new SqliteStore(dir);
  const alice = await store.createUser('alice@example.test', 'h');
  for (let n = 1; n <= 2; n++) await store.accept({ id: `Q${n}`, body: [bodyOf(n)], sender: '', local: [{ userId: alice.id, prefix: Buffer.alloc(0) }] });
  // The writer's own marker says who it is.
  assert.equal(fs.readFileSync(path.join(dir, 'body-log', markers(dir)[0]!), 'latin1'), processIdentity(process.pid));
  store.close();
  // The second body cut short, and the segment's marker naming a writer of an earlier boot whose
  // pid a program that runs now has.
  fs.truncateSync(path.join(dir, 'body-log', '00000001'), 2 * 100 * KIB - 1);
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => other.kill());
  await new Promise((resolve) => other.once('spawn', resolve));
  const now = processIdentity(other.pid!) as string;
  const marker = path.join(dir, 'body-log', `00000001.${other.pid}.c0ffee.open`);
  fs.writeFileSync(marker, `another-boot ${now.split(' ')[1]}`);
  store = new SqliteStore(dir);
  assert.deepEqual(store.recovered, ['Q2']);
  assert.deepEqual(markers(dir), []);
  store.close();
  // The same pid with the writer's own boot and start: that writer runs, its segment waits.
  fs.writeFileSync(marker, now);
  store = new SqliteStore(dir);
  assert.deepEqual(markers(dir), [path.basename(marker)]);
  store.close();
});

test('a full disk: an append that fails leaves no bytes behind, and the sweep moves nothing it has no room for, then does once there is', async (t) => {
  let store: SqliteStore | undefined;
  const dir = tmpfsFor(t, '4m', () => store?.close());
  if (!dir) return;
  store = new SqliteStore(dir, { segmentBytes: 450 * KIB });
  const { id: userId } = await store.createUser('u@example.test', 'h');
  for (let n = 1; n <= 5; n++) await put(store, userId, n);
  // Segment 1 holds 1-4, a quarter of it alive once three are gone; segment 2 holds 5.
  await store.deleteMessages(userId, [1, 2, 4]);
  const filler = path.join(dir, 'filler');
  const fill = (leave: number) => {
    const fd = fs.openSync(filler, 'a');
    const chunk = Buffer.alloc(16 * KIB, 0x61);
    try {
      for (let st = fs.statfsSync(dir); st.bavail * st.bsize > leave + chunk.length; st = fs.statfsSync(dir)) fs.writeSync(fd, chunk);
      if (leave === 0) for (;;) fs.writeSync(fd, chunk);
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
  };
  const size = (n: string) => fs.statSync(path.join(dir, 'body-log', n)).size;
  // Room for the 100 KiB to move, but not for it and the reserve: it waits.
  fill(600 * KIB);
  age(dir);
  assert.deepEqual(await store.sweep(), { removed: 0, damaged: [], waiting: 1 });
  assert.equal(size('00000002'), 100 * KIB);
  // No room at all: the body that does not fit leaves nothing in the segment.
  fill(0);
  await assert.rejects(put(store, userId, 6), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
  assert.equal(size('00000002'), 100 * KIB);
  // Room again: the live body moves, and the segment goes at the next sweep.
  fs.rmSync(filler);
  age(dir);
  assert.deepEqual(await store.sweep(), { removed: 0, damaged: [], waiting: 0 });
  assert.equal(size('00000002'), 200 * KIB);
  age(dir);
  assert.equal((await store.sweep()).removed, 1);
  assert.deepEqual(segments(dir), ['00000002']);
  await assertWhole(store, userId, [3, 5]);
});
