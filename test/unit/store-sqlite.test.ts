/** The SQLite store: shared bodies, UIDs never reused, streaming in parts, migrations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { storeError } from '../../src/store/sqlite/sqlite-errors.ts';
import { MIGRATIONS } from '../../src/store/sqlite/schema.ts';
import { newQueueId } from '../../src/store/queue-id.ts';
import { BodyMissing, isStorageFull, messageBytes, StorageFull, StoreConflict } from '../../src/store/store.ts';
import { storedMessage } from '../helpers/mailbox.ts';
import { until } from '../helpers/relay.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = () => tempDir('mailnest-store-');

test('a body is stored once for every copy, read back whole in bounded parts, and dropped with its last copy', async () => {
  const dir = tmp();
  const store = new SqliteStore(dir);
  const a = await store.createUser('a@example.test', 'h');
  const b = await store.createUser('b@example.test', 'h');
  const body = Buffer.alloc(600_000);
  for (let i = 0; i < body.length; i++) body[i] = 32 + (i % 90);
  const id = newQueueId();
  const file = path.join(dir, 'bodies', id);
  await store.accept({ id, body: [body.subarray(0, 1000), body.subarray(1000)], sender: 's@remote.test', local: [{ userId: a.id, prefix: Buffer.from('P1\r\n') }, { userId: b.id, prefix: Buffer.from('P22\r\n') }] });
  assert.deepEqual(fs.readFileSync(file), body, 'a body over 256 KiB is a file, written once');
  const [ma] = await store.listMailbox(a.id);
  assert.equal(ma!.size, 4 + body.length);
  const parts: number[] = [];
  const opened = (await store.openMessage(a.id, ma!.uid))!;
  assert.ok(opened.rest, 'a 600 KB message is streamed, not read whole');
  for await (const p of messageBytes(opened)) parts.push(p.length);
  assert.ok(Math.max(...parts) <= 256 * 1024, 'no piece larger than 256 KiB');
  assert.deepEqual(await storedMessage(store, b.id, 1), Buffer.concat([Buffer.from('P22\r\n'), body]));
  await store.deleteMessages(a.id, [ma!.uid]);
  assert.deepEqual(await storedMessage(store, b.id, 1), Buffer.concat([Buffer.from('P22\r\n'), body]), 'the other copy keeps the body');
  assert.ok(fs.existsSync(file));
  await store.deleteMessages(b.id, [1]);
  await until('the file to go with the last copy, once that deletion is durable', () => !fs.existsSync(file), 2000);
  store.close();
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  assert.equal((db.prepare('SELECT count(*) AS n FROM bodies').get() as { n: number }).n, 0);
  assert.equal((db.prepare('SELECT count(*) AS n FROM body_parts').get() as { n: number }).n, 0);
  db.close();
});

test('a body of 32 to 256 KiB is appended to the body log, not kept in the database; a rolled-back message leaves no file', async () => {
  const dir = tmp();
  const store = new SqliteStore(dir);
  const u = await store.createUser('u@example.test', 'h');
  await store.accept({ id: newQueueId(), body: [Buffer.alloc(256 * 1024, 'a')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  assert.deepEqual(fs.readdirSync(path.join(dir, 'bodies')), []);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'body-log')).filter((n) => !n.endsWith('.open')), ['00000001']);
  assert.equal(fs.statSync(path.join(dir, 'body-log', '00000001')).size, 256 * 1024);
  // A queue id taken already (a small body, in the database): the insert fails and is rolled
  // back, alone and within a group commit, and its body file goes with it.
  const taken = newQueueId();
  await store.accept({ id: taken, body: [Buffer.from('small\r\n')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  const bad = () => store.accept({ id: taken, body: [Buffer.alloc(300_000, 'b')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  await assert.rejects(bad(), /UNIQUE/);
  const good = Array.from({ length: 5 }, () => store.accept({ id: newQueueId(), body: [Buffer.alloc(300_000, 'c')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] }));
  // (Two at once with the same id: one of them finds the other's body file there.)
  const failing = [assert.rejects(bad(), /UNIQUE|EEXIST/), assert.rejects(bad(), /UNIQUE|EEXIST/)];
  await Promise.all([...good, ...failing]);
  await until('only the five stored bodies to have files', () => fs.readdirSync(path.join(dir, 'bodies')).length === 5, 2000);
  assert.equal((await store.listMailbox(u.id)).length, 7);
  assert.ok((await storedMessage(store, u.id, 1)).equals(Buffer.alloc(256 * 1024, 'a')));
  assert.ok((await storedMessage(store, u.id, 2)).equals(Buffer.from('small\r\n')));
  store.close();
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  assert.deepEqual({ ...db.prepare('SELECT external, log_segment, log_offset, (SELECT count(*) FROM body_parts) AS parts FROM bodies ORDER BY id LIMIT 1').get() },
    { external: 2, log_segment: 1, log_offset: 0, parts: 1 }, 'the small message\'s one part only');
  db.close();
});

/** A store with two messages of `size` bytes for one user: bodies of files of their own. */
async function twoBodyFiles(size: number) {
  const dir = tmp();
  const store = new SqliteStore(dir);
  const u = await store.createUser('u@example.test', 'h');
  const ids = [newQueueId(), newQueueId()];
  for (const id of ids) await store.accept({ id, body: [Buffer.alloc(size, 'x')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  return { dir, store, u, ids };
}

test('a body file cut short or gone, or its body-log segment gone: reading the message fails and says why', async () => {
  const { dir, store, u, ids } = await twoBodyFiles(300_000);
  fs.truncateSync(path.join(dir, 'bodies', ids[0]!), 1000);
  fs.rmSync(path.join(dir, 'bodies', ids[1]!));
  await assert.rejects(storedMessage(store, u.id, 1), /is too short for the 300000 bytes at 0/);
  // Gone for good (left out of a restored copy): BodyMissing, before any of it is read.
  await assert.rejects(store.openMessage(u.id, 2), (err: Error) => err instanceof BodyMissing && err.message === `the body of message ${ids[1]} is missing from data_dir (bodies/${ids[1]})`);
  const logged = newQueueId();
  await store.accept({ id: logged, body: [Buffer.alloc(100_000, 'l')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  fs.rmSync(path.join(dir, 'body-log', '00000001'));
  await assert.rejects(store.openMessage(u.id, 3), (err: Error) => err instanceof BodyMissing && err.message === `the body of message ${logged} is missing from data_dir (body-log segment 1)`);
  // Deleting such a message works.
  await store.deleteMessages(u.id, [2, 3]);
  assert.deepEqual((await store.listMailbox(u.id)).map((e) => e.uid), [1]);
  store.close();
});

test('a body file damaged on disk fails before its last piece is handed out; one an earlier version wrote, with no checksum, is read unchecked', async () => {
  const { dir, store, u, ids } = await twoBodyFiles(600_000);
  for (const id of ids) {
    const fd = fs.openSync(path.join(dir, 'bodies', id), 'r+');
    fs.writeSync(fd, Buffer.from('#'), 0, 1, 300_000);
    fs.closeSync(fd);
  }
  const pieces: number[] = [];
  const opened = (await store.openMessage(u.id, 1))!;
  await assert.rejects(async () => {
    for await (const p of messageBytes(opened)) pieces.push(p.length);
  }, /does not match its checksum/);
  assert.equal(pieces.reduce((a, b) => a + b, 0), 2 * 256 * 1024, 'the pieces before the last went, the last did not');
  // A row without a checksum, as an earlier version left it.
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  db.prepare('UPDATE bodies SET log_crc = NULL WHERE queue_id = ?').run(ids[1]!);
  db.close();
  // The store's reads of this turn share one snapshot, from before the change.
  await new Promise((resolve) => setImmediate(resolve));
  const read = await storedMessage(store, u.id, 2);
  assert.equal(read.length, 600_000);
  assert.equal(read[300_000], '#'.charCodeAt(0));
  store.close();
});

test('sweep removes body files a crash left without a row, once they are an hour old, and nothing else', async () => {
  const dir = tmp();
  const store = new SqliteStore(dir);
  const u = await store.createUser('u@example.test', 'h');
  const kept = newQueueId();
  await store.accept({ id: kept, body: [Buffer.alloc(300_000, 'k')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  const bodies = path.join(dir, 'bodies');
  const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000);
  fs.utimesSync(path.join(bodies, kept), hoursAgo(5), hoursAgo(5));
  fs.writeFileSync(path.join(bodies, 'ORPHANOLD00001'), 'half a message');
  fs.utimesSync(path.join(bodies, 'ORPHANOLD00001'), hoursAgo(2), hoursAgo(2));
  fs.writeFileSync(path.join(bodies, 'ORPHANYOUNG001'), 'perhaps about to be committed');
  assert.equal((await store.sweep()).removed, 1);
  assert.deepEqual(fs.readdirSync(bodies).sort(), [kept, 'ORPHANYOUNG001'].sort());
  assert.equal((await storedMessage(store, u.id, 1)).length, 300_000);
  store.close();
});

test('UIDs grow and are never reused, even after the newest message is deleted', async () => {
  const store = new SqliteStore(tmp());
  const u = await store.createUser('u@example.test', 'h');
  const put = () => store.accept({ id: newQueueId(), body: [Buffer.from('x\r\n')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  await put();
  await put();
  await store.deleteMessages(u.id, [2]);
  await put();
  assert.deepEqual((await store.listMailbox(u.id)).map((m) => m.uid), [1, 3]);
  store.close();
});

test('a user removed and added again gets a new id, a new mailbox and uids above the old ones', async () => {
  const store = new SqliteStore(tmp());
  const put = (userId: number) => store.accept({ id: newQueueId(), body: [Buffer.from('x\r\n')], sender: '', local: [{ userId, prefix: Buffer.alloc(0) }] });
  const old = await store.createUser('u@example.test', 'h');
  await put(old.id);
  await put(old.id);
  assert.ok(await store.removeUser('u@example.test'));
  const again = await store.createUser('u@example.test', 'h');
  const other = await store.createUser('v@example.test', 'h');
  assert.ok(again.id > old.id && other.id > again.id, `ids ${old.id}, ${again.id}, ${other.id}`);
  await put(again.id);
  assert.deepEqual((await store.listMailbox(again.id)).map((m) => m.uid), [3], 'no uid the removed mailbox gave out');
  // Whatever still holds the old id finds nothing.
  assert.deepEqual(await store.listMailbox(old.id), []);
  assert.equal(await store.openMessage(old.id, 1), undefined);
  store.close();
});

test('a user with a large mailbox is removed a batch at a time: another process writes in between, and nothing of the user is left', async () => {
  const dir = tmp();
  const cli = new SqliteStore(dir);
  const server = new SqliteStore(dir);
  const put = (store: SqliteStore, userId: number) => store.accept({ id: newQueueId(), body: [Buffer.from('x\r\n')], sender: '', local: [{ userId, prefix: Buffer.alloc(0) }] });
  const big = await cli.createUser('big@example.test', 'h');
  const other = await cli.createUser('other@example.test', 'h');
  for (let i = 0; i < 25; i++) await Promise.all(Array.from({ length: 100 }, () => put(cli, big.id)));
  const removal = cli.removeUser('big@example.test');
  // A thousand are gone, the rest wait for the next batch; the server's write goes in between
  // (its commit is made before accept returns its promise).
  const written = put(server, other.id);
  assert.equal((await server.listMailbox(big.id)).length, 1500);
  await written;
  assert.equal(await removal, true);
  assert.equal(await server.findUser('big@example.test'), undefined);
  assert.deepEqual(await server.listMailbox(big.id), []);
  assert.equal((await server.listMailbox(other.id)).length, 1);
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  assert.equal(Number((db.prepare('SELECT COUNT(*) AS n FROM bodies').get() as { n: number }).n), 1, 'the removed mail\'s bodies went with it');
  db.close();
  assert.equal(await cli.removeUser('big@example.test'), false);
  cli.close();
  server.close();
});

test('concurrent accepts are all durable and distinct', async () => {
  const store = new SqliteStore(tmp());
  const u = await store.createUser('u@example.test', 'h');
  await Promise.all(Array.from({ length: 300 }, (_, i) => store.accept({ id: newQueueId(), body: [Buffer.from(`m${i}\r\n`)], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] })));
  const list = await store.listMailbox(u.id);
  assert.equal(list.length, 300);
  const bodies = new Set<string>();
  for (const m of list) bodies.add((await storedMessage(store, u.id, m.uid)).toString());
  assert.equal(bodies.size, 300);
  store.close();
});

test('a data directory made by the first schema version is migrated with its mail intact', async () => {
  const dir = tmp();
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  db.exec('PRAGMA journal_mode = WAL');
  db.exec(MIGRATIONS[0] as string);
  db.exec('PRAGMA user_version = 1');
  db.exec(`INSERT INTO users (id, address, address_key, password_hash, created) VALUES (1, 'Old@example.test', 'old@example.test', 'h', 0);
           INSERT INTO mailboxes (id, user_id, name, uid_validity, uid_next) VALUES (1, 1, 'INBOX', 1, 2);
           INSERT INTO bodies (id, queue_id, size, created) VALUES (1, 'Q1', 10, 0);`);
  db.prepare('INSERT INTO body_chunks (body_id, seq, data) VALUES (1, 0, ?)').run(Buffer.from('Subject: x'));
  db.prepare('INSERT INTO messages (mailbox_id, uid, body_id, prefix, size, received_at) VALUES (1, 1, 1, ?, 14, 0)').run(Buffer.from('R\r\n\r\n'));
  // A body of three 64 KiB parts, as large bodies were kept then.
  const big = Buffer.from(Array.from({ length: 150_000 }, (_, i) => 32 + (i % 90)));
  db.exec(`UPDATE mailboxes SET uid_next = 3; INSERT INTO bodies (id, queue_id, size, created) VALUES (2, 'Q2', ${big.length}, 0);`);
  for (let seq = 0; seq < 3; seq++) {
    db.prepare('INSERT INTO body_chunks (body_id, seq, data) VALUES (2, ?, ?)').run(seq, big.subarray(seq * 65536, (seq + 1) * 65536));
  }
  db.prepare('INSERT INTO messages (mailbox_id, uid, body_id, prefix, size, received_at) VALUES (1, 2, 2, ?, ?, 0)').run(Buffer.alloc(0), big.length);
  db.close();
  const store = new SqliteStore(dir);
  const u = (await store.findUser('old@example.test'))!;
  assert.equal((await storedMessage(store, u.id, 1)).toString(), 'R\r\n\r\nSubject: x');
  assert.ok((await store.openMessage(u.id, 2))!.rest, 'a body of several parts is streamed');
  assert.ok((await storedMessage(store, u.id, 2)).equals(big));
  // The counters start above what is there: a new user and its mailbox get fresh ids and uids.
  const fresh = await store.createUser('new@example.test', 'h');
  assert.equal(fresh.id, 2);
  await store.accept({ id: newQueueId(), body: [Buffer.from('x\r\n')], sender: '', local: [{ userId: fresh.id, prefix: Buffer.alloc(0) }] });
  assert.deepEqual((await store.listMailbox(fresh.id)).map((m) => m.uid), [3]);
  store.close();
});

test('a database from either stretch of history whose bodies.log_crc went astray is brought back, its mail readable', async () => {
  // One with its column missing (the first form of migration 4), and one with it renamed crc as
  // version 7 (builds that later took that step back): each made here, then set back so.
  for (const astray of ['missing', 'renamed'] as const) {
    const dir = tmp();
    let store = new SqliteStore(dir);
    const u = await store.createUser('u@example.test', 'h');
    // A body in the log (over 32 KiB), one in a file (over 256 KiB), one in the database.
    const bodies = [64 * 1024, 300 * 1024, 100].map((n, i) => Buffer.alloc(n, 65 + i));
    for (const body of bodies) await store.accept({ id: newQueueId(), body: [body], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
    store.close();
    const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
    if (astray === 'missing') db.exec('ALTER TABLE bodies DROP COLUMN log_crc; PRAGMA user_version = 6');
    else db.exec('ALTER TABLE bodies RENAME COLUMN log_crc TO crc; PRAGMA user_version = 7');
    db.close();
    store = new SqliteStore(dir);
    const list = await store.listMailbox(u.id);
    assert.equal(list.length, 3, astray);
    for (const [i, m] of list.entries()) assert.ok((await storedMessage(store, u.id, m.uid)).equals(bodies[i]!), `${astray}: message ${i}`);
    // New mail is stored with its checksum as ever.
    await store.accept({ id: newQueueId(), body: [Buffer.alloc(50_000, 68)], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
    assert.equal((await storedMessage(store, u.id, (await store.listMailbox(u.id))[3]!.uid)).length, 50_000);
    store.close();
    const after = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
    assert.equal((after.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, MIGRATIONS.length);
    assert.ok((after.prepare("SELECT 1 FROM pragma_table_info('bodies') WHERE name = 'log_crc'").get()), astray);
    after.close();
  }
});

test('a message kept in the database opens whole, a longer one with its body to stream (from the log or a file), an empty body as its prefix alone', async () => {
  const store = new SqliteStore(tmp());
  const u = await store.createUser('u@example.test', 'h');
  const prefix = Buffer.from('Received: x\r\n');
  // In the database up to 32 KiB, in one row; beyond, in the body log or a file, read 256 KiB at
  // a time, the first piece too.
  const sizes = [0, 32 * 1024, 32 * 1024 + 1, 256 * 1024, 256 * 1024 + 1];
  for (const size of sizes) {
    await store.accept({ id: newQueueId(), body: [Buffer.alloc(size, 'a')], sender: '', local: [{ userId: u.id, prefix }] });
  }
  const entries = await store.listMailbox(u.id);
  const opened = await Promise.all(entries.map((e) => store.openMessage(u.id, e.uid)));
  assert.deepEqual(opened.map((m) => [m!.head.length, m!.rest !== undefined]), [[1, false], [2, false], [1, true], [1, true], [1, true]]);
  for (const [i, size] of sizes.entries()) {
    assert.deepEqual(await storedMessage(store, u.id, entries[i]!.uid), Buffer.concat([prefix, Buffer.alloc(size, 'a')]));
  }
  assert.equal(await store.openMessage(u.id, 999), undefined);
  store.close();
});

test('a body given in pieces reads back byte for byte, from the database and from the log', async () => {
  const store = new SqliteStore(tmp());
  const u = await store.createUser('u@example.test', 'h');
  const pattern = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7919) % 251));
  for (const [size, cuts] of [[30 * 1024, [0, 1, 20_000, 30 * 1024]], [200 * 1024, [0, 70_000, 70_001, 131_072, 150_000, 200 * 1024]]] as const) {
    const body = pattern(size);
    const pieces = cuts.slice(1).map((end, i) => body.subarray(cuts[i], end));
    await store.accept({ id: newQueueId(), body: pieces, sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
    // The caller's buffers are its own again once accept resolves.
    body.fill(0);
  }
  const entries = await store.listMailbox(u.id);
  assert.ok((await storedMessage(store, u.id, entries[0]!.uid)).equals(pattern(30 * 1024)));
  assert.ok((await storedMessage(store, u.id, entries[1]!.uid)).equals(pattern(200 * 1024)));
  store.close();
});

test('the pieces of a body file opened for a mailbox client are reused once handed back, never before', async () => {
  const store = new SqliteStore(tmp());
  const u = await store.createUser('u@example.test', 'h');
  const bodies = ['a', 'b'].map((c) => Buffer.alloc(600 * 1024, c));
  for (const body of bodies) await store.accept({ id: newQueueId(), body: [body], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  const [first, second] = await Promise.all((await store.listMailbox(u.id)).map((e) => store.openMessage(u.id, e.uid)));
  const held: Buffer[] = [];
  for await (const piece of first!.rest!) held.push(piece);
  assert.equal(Buffer.concat(held).toString('latin1'), bodies[0]!.toString('latin1'));
  // Not handed back: the next message's pieces are new memory, and the first one's stay intact.
  const next: Buffer[] = [];
  for await (const piece of second!.rest!) {
    next.push(piece);
    second!.recycle!(piece);
  }
  assert.ok(next.every((p) => held.every((h) => h.buffer !== p.buffer)));
  assert.equal(Buffer.concat(held).toString('latin1'), bodies[0]!.toString('latin1'));
  // Each handed back before the next read, one buffer serves all three pieces of 600 KiB.
  assert.equal(next.length, 3);
  assert.equal(new Set(next.map((p) => p.buffer)).size, 1);
  assert.ok(first!.recycle, 'a message read from a file says how to hand its pieces back');
  store.close();
});

test('SQLite\'s "database or disk is full" becomes StorageFull; isStorageFull also knows ENOSPC/EDQUOT, nothing else', () => {
  const db = new DatabaseSync(':memory:');
  db.exec('CREATE TABLE t (x BLOB UNIQUE); PRAGMA max_page_count = 4');
  const failure = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      return err;
    }
    throw new Error('expected a failure');
  };
  const full = failure(() => db.prepare('INSERT INTO t VALUES (?)').run(Buffer.alloc(100_000)));
  assert.equal(isStorageFull(full), false, 'a raw SQLite error is the SQLite store\'s to translate');
  const translated = storeError(full);
  assert.ok(translated instanceof StorageFull);
  assert.equal(translated.cause, full);
  assert.equal(isStorageFull(translated), true);
  db.prepare('INSERT INTO t VALUES (?)').run(Buffer.from('a'));
  const conflict = failure(() => db.prepare('INSERT INTO t VALUES (?)').run(Buffer.from('a')));
  assert.equal(storeError(conflict), conflict, 'a constraint violation stays what it is');
  assert.equal(isStorageFull(storeError(conflict)), false);
  assert.equal(isStorageFull(failure(() => fs.writeFileSync('/dev/full', 'x'))), true);
  assert.equal(isStorageFull(Object.assign(new Error('quota'), { code: 'EDQUOT' })), true);
  assert.equal(isStorageFull(failure(() => fs.readFileSync('/nonexistent/file'))), false);
  assert.equal(isStorageFull(undefined), false);
  db.close();
});

test('a write in the same turn as a read ends the read snapshot: the write succeeds and the next read sees it', async () => {
  const store = new SqliteStore(tmp());
  const u = await store.createUser('u@example.test', 'h');
  await store.accept({ id: newQueueId(), body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: '', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  // No await between them: the read's transaction is still open when the write begins.
  const read = store.openMessage(u.id, 1);
  const write = store.deleteMessages(u.id, [1]);
  assert.ok(await read);
  await write;
  assert.equal(await store.openMessage(u.id, 1), undefined);
  assert.deepEqual(await store.listMailbox(u.id), []);
  store.close();
});

test('upgrading: outbound mail queued before the sign flag is signed unless an unauthenticated SMTP client handed it in', async () => {
  const dir = tmp();
  let store = new SqliteStore(dir);
  const protocols = ['ESMTP', 'ESMTPS', 'UTF8SMTPS', 'SMTP', 'ESMTPSA', 'ESMTPA', 'local', 'HTTP'];
  const ids = new Map<string, string>();
  for (const p of protocols) {
    const id = newQueueId();
    ids.set(p, id);
    const prefix = Buffer.from(`Received: from x ([192.0.2.1])\r\n\tby mx.example.test (mailnest) with ${p} id ${id};\r\n\tSun, 29 Nov 2026 17:00:00 +0000\r\n`);
    await store.accept({ id, body: [Buffer.from('From: a@example.test\r\n\r\nx\r\n')], sender: 'a@example.test', local: [], outbound: { prefix, recipients: [{ address: 'b@remote.test' }], sign: true } });
  }
  store.close();
  // The database as the version before the flag left it.
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  const before = MIGRATIONS.findIndex((m) => typeof m === 'string' && m.includes('ADD COLUMN sign'));
  db.exec(`ALTER TABLE outbound DROP COLUMN sign; PRAGMA user_version = ${before}`);
  db.close();
  store = new SqliteStore(dir);
  const signed = Object.fromEntries(await Promise.all(protocols.map(async (p) => [p, (await store.getQueueEntry(ids.get(p)!))!.sign] as const)));
  assert.deepEqual(signed, { ESMTP: false, ESMTPS: false, UTF8SMTPS: false, SMTP: false, ESMTPSA: true, ESMTPA: true, local: true, HTTP: true });
  store.close();
});

test('a database a newer mailnest made is refused, not used with columns this one does not know', () => {
  const dir = tmp();
  new SqliteStore(dir).close();
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
  db.close();
  assert.throws(() => new SqliteStore(dir), new RegExp(`made by a newer mailnest \\(schema ${MIGRATIONS.length + 1}; this one knows ${MIGRATIONS.length}\\)`));
});

test('deleting thousands of messages at once lets other work run between batches, and all of them go', async () => {
  const dir = tmp();
  const store = new SqliteStore(dir);
  const u = await store.createUser('many@example.test', 'h');
  await Promise.all(Array.from({ length: 2500 }, () => store.accept({ id: newQueueId(), body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: 's@remote.test', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] })));
  const uids = (await store.listMailbox(u.id)).map((m) => m.uid);
  assert.equal(uids.length, 2500);
  const deleting = store.deleteMessages(u.id, uids);
  // Work that asks for a turn while the deletion runs gets it before the deletion ends.
  const between = await new Promise<number>((resolve) => setImmediate(() => void store.listMailbox(u.id).then((l) => resolve(l.length))));
  assert.ok(between > 0 && between < 2500, `${between} left while deleting`);
  await deleting;
  assert.deepEqual(await store.listMailbox(u.id), []);
  store.close();
});

test('the write-ahead log is cut back to 64 MiB once reused, after a transaction that made it larger', async () => {
  const dir = tmp();
  const store = new SqliteStore(dir);
  const u = await store.createUser('big@example.test', 'h');
  // Bodies of 30 KiB stay in the database; sent at once, all but the first share one commit.
  const body = Buffer.alloc(30 * 1024, 'x');
  await Promise.all(Array.from({ length: 3000 }, () => store.accept({ id: newQueueId(), body: [body], sender: 's@remote.test', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] })));
  const wal = path.join(dir, 'mailnest.sqlite-wal');
  assert.ok(fs.statSync(wal).size > 64 << 20, `the batch grew the log to ${fs.statSync(wal).size} bytes`);
  // The commit checkpointed it; the next one starts the log over, and cuts it back.
  await store.accept({ id: newQueueId(), body: [Buffer.from('small\r\n')], sender: 's@remote.test', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
  assert.ok(fs.statSync(wal).size <= 64 << 20, `${fs.statSync(wal).size} bytes`);
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a new database has 4 KiB pages, one made with 16 KiB keeps them, and both checkpoint the write-ahead log at 16 MiB', async () => {
  const pageSize = (file: string) => {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      return Number((db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size);
    } finally {
      db.close();
    }
  };
  const older = tmp();
  const made = new DatabaseSync(path.join(older, 'mailnest.sqlite'));
  made.exec('PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; CREATE TABLE t (x)');
  made.close();
  for (const [dir, expected] of [[tmp(), 4096], [older, 16384]] as const) {
    const store = new SqliteStore(dir);
    const u = await store.createUser('u@example.test', 'h');
    const file = path.join(dir, 'mailnest.sqlite');
    // One message after another, each its own commit of several whole pages: 24 MiB of frames
    // and more, so the log passes 16 MiB once and starts over from its beginning.
    const body = Buffer.alloc(1024, 'x');
    const commits = Math.ceil((24 << 20) / (4 * expected));
    for (let i = 0; i < commits; i++) await store.accept({ id: newQueueId(), body: [body], sender: 's@remote.test', local: [{ userId: u.id, prefix: Buffer.alloc(0) }] });
    assert.equal(pageSize(file), expected);
    const wal = fs.statSync(`${file}-wal`).size;
    assert.ok(wal >= 15 << 20 && wal <= (16 << 20) + 64 * expected, `${expected}-byte pages: the log grew to ${wal} bytes`);
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a report is queued in the same commit that marks its recipients\' reports sent: one that fails to be stored leaves them owed', async () => {
  const store = new SqliteStore(tmp());
  const sender = await store.createUser('a@example.test', 'h');
  const id = newQueueId();
  await store.accept({ id, body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: 'a@example.test', local: [], outbound: { prefix: Buffer.alloc(0), recipients: [{ address: 'x@remote.test' }, { address: 'y@remote.test' }], sign: true } });
  const [x, y] = (await store.getQueueEntry(id))!.recipients;
  await store.updateRecipients(id, [x!, y!].map((r) => ({ recipientId: r.id, status: 'failed' as const, attempts: 1, nextAttempt: 0, lastReply: '550 no', report: `report of ${r.address}` })));
  assert.deepEqual(await store.entriesWithReports(), [id]);
  assert.deepEqual((await store.listQueue()).map((e) => e.id), [], 'nothing left to deliver');
  const report = (reportId: string) => ({ id: reportId, body: [Buffer.from('Subject: report\r\n\r\nr\r\n')], sender: '', local: [{ userId: sender.id, prefix: Buffer.alloc(0) }], reportOn: { queueId: id, recipientIds: [x!.id, y!.id] } });
  // A report that cannot be stored (its queue id is taken) takes nothing with it.
  await assert.rejects(store.accept(report(id)), /UNIQUE/);
  assert.deepEqual(await store.entriesWithReports(), [id]);
  assert.deepEqual((await store.getQueueEntry(id))!.recipients.map((r) => r.report), ['report of x@remote.test', 'report of y@remote.test']);
  await store.accept(report(newQueueId()));
  assert.deepEqual(await store.entriesWithReports(), []);
  assert.equal(await store.getQueueEntry(id), undefined, 'the entry goes with its last report');
  assert.equal((await store.listMailbox(sender.id)).length, 1);
  store.close();
});

test('a copy for a user removed since its address was looked up is let go; the other copies, and the queue\'s, are stored; a message left with none leaves no body', async () => {
  const dir = tmp();
  const store = new SqliteStore(dir);
  const a = await store.createUser('a@example.test', 'h');
  const gone = await store.createUser('gone@example.test', 'h');
  await store.removeUser('gone@example.test');
  const kept = newQueueId();
  await store.accept({ id: kept, body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: '', local: [{ userId: gone.id, prefix: Buffer.alloc(0) }, { userId: a.id, prefix: Buffer.alloc(0) }] });
  assert.equal((await store.listMailbox(a.id)).length, 1);
  const onlyGone = newQueueId();
  await store.accept({ id: onlyGone, body: [Buffer.alloc(300_000, 'z')], sender: '', local: [{ userId: gone.id, prefix: Buffer.alloc(0) }] });
  await until('its body file to go', () => !fs.existsSync(path.join(dir, 'bodies', onlyGone)), 2000);
  store.close();
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  assert.deepEqual(db.prepare('SELECT queue_id FROM bodies').all().map((r) => r.queue_id), [kept]);
  db.close();
});

test('a delay warning still owed goes on owed while its recipient waits, and is dropped once the recipient is delivered or failed', async () => {
  const store = new SqliteStore(tmp());
  const id = newQueueId();
  await store.accept({ id, body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: 'a@example.test', local: [], outbound: { prefix: Buffer.alloc(0), recipients: [{ address: 'x@remote.test' }, { address: 'y@remote.test' }], sign: true } });
  const [x, y] = (await store.getQueueEntry(id))!.recipients;
  const deferred = { status: 'deferred' as const, attempts: 3, nextAttempt: 0, lastReply: '451 later' };
  await store.updateRecipients(id, [x!, y!].map((r) => ({ recipientId: r.id, ...deferred, warned: true, report: `delayed ${r.address}` })));
  await store.updateRecipients(id, [x!, y!].map((r) => ({ recipientId: r.id, ...deferred, attempts: 4 })));
  assert.deepEqual((await store.getQueueEntry(id))!.recipients.map((r) => r.report), ['delayed x@remote.test', 'delayed y@remote.test'], 'still delayed: still owed');
  await store.updateRecipients(id, [{ recipientId: x!.id, status: 'delivered', attempts: 5, nextAttempt: 0, lastReply: '250 ok' }]);
  await store.updateRecipients(id, [{ recipientId: y!.id, status: 'failed', attempts: 5, nextAttempt: 0, lastReply: '550 no', report: `failed ${y!.address}` }]);
  assert.deepEqual((await store.getQueueEntry(id))!.recipients.map((r) => r.report), [undefined, 'failed y@remote.test'], 'the delivery drops the warning; the failure\'s report replaces it');
  store.close();
});

test('an outbound recipient\'s id is never given out again, after a queue removal or rows an earlier build inserted', async () => {
  const dir = tmp();
  let store = new SqliteStore(dir);
  const queue = async (address: string) => {
    const id = newQueueId();
    await store.accept({ id, body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: 'a@example.test', local: [], outbound: { prefix: Buffer.alloc(0), recipients: [{ address }, { address: `2${address}` }], sign: true } });
    return { id, ids: (await store.getQueueEntry(id))!.recipients.map((r) => r.id) };
  };
  const first = await queue('x@remote.test');
  // Removed while a transfer of it may still be running: the next ones get ids of their own.
  assert.equal(await store.removeQueued(first.id), true);
  const second = await queue('y@remote.test');
  assert.ok(second.ids.every((id) => id > Math.max(...first.ids)), `${second.ids} after ${first.ids}`);
  store.close();
  // A build without the counter inserts where SQLite chooses; the next ids are above those.
  const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
  db.exec(`INSERT INTO outbound_rcpts (outbound_id, address, next_attempt) SELECT id, 'old@remote.test', 0 FROM outbound LIMIT 1`);
  const old = Number((db.prepare('SELECT MAX(id) AS m FROM outbound_rcpts').get() as { m: number }).m);
  db.close();
  store = new SqliteStore(dir);
  const third = await queue('z@remote.test');
  assert.ok(third.ids.every((id) => id > old), `${third.ids} after ${old}`);
  store.close();
});

test('an address is a user or an alias, never both; an alias is added only while users and aliases are as its checks saw them', async () => {
  const store = new SqliteStore(tmp());
  const conflict = (kind: StoreConflict['kind']) => (err: unknown) => err instanceof StoreConflict && err.kind === kind;
  const v0 = await store.directoryVersion();
  await store.addAlias('list@example.test', ['a@example.test']);
  const v1 = await store.directoryVersion();
  assert.notEqual(v1, v0, 'adding an alias is a change');
  await assert.rejects(store.createUser('LIST@example.test', 'h'), conflict('alias'), 'an alias of that address, in any case');
  await store.createUser('a@example.test', 'h');
  const v2 = await store.directoryVersion();
  assert.notEqual(v2, v1, 'adding a user is a change');
  await assert.rejects(store.addAlias('A@example.test', ['b@example.test']), conflict('user'));
  await assert.rejects(store.addAlias('A@example.test', ['b@example.test'], v2), conflict('user'));
  // A command that checked b -> a against v2, while another added a -> b: checked again.
  await store.addAlias('b@example.test', ['c@example.test'], v2);
  await assert.rejects(store.addAlias('c@example.test', ['b@example.test'], v2), conflict('changed'));
  assert.equal(await store.findAlias('c@example.test'), undefined, 'nothing of the refused alias is kept');
  const v3 = await store.directoryVersion();
  await store.setPassword('a@example.test', 'h2');
  assert.equal(await store.directoryVersion(), v3, 'a new password changes no address');
  assert.equal(await store.removeAlias('nobody@example.test'), false);
  assert.equal(await store.directoryVersion(), v3, 'removing nothing is no change');
  await store.removeAlias('b@example.test');
  const v4 = await store.directoryVersion();
  assert.notEqual(v4, v3, 'removing an alias is a change');
  await store.removeUser('a@example.test');
  assert.notEqual(await store.directoryVersion(), v4, 'removing a user is a change');
  store.close();
});

test('processes opening a new data directory at the same moment each find the schema made once, none of them failing', async () => {
  const open = `import { SqliteStore } from ${JSON.stringify(path.resolve(import.meta.dirname, '../../src/store/sqlite/sqlite-store.ts'))}; new SqliteStore(process.argv[1]).close();`;
  for (let round = 0; round < 3; round++) {
    const dir = tmp();
    const exits = await Promise.all(Array.from({ length: 8 }, () => new Promise<[number | null, string]>((resolve) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', open, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      p.on('close', (code) => resolve([code, err]));
    })));
    assert.deepEqual(exits.filter(([code]) => code !== 0), [], `round ${round}`);
    const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
    assert.equal((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, MIGRATIONS.length);
    db.close();
  }
});

test('a user\'s mail to other domains is counted by the minute for a day (limits.max_outgoing_per_day); a removed user\'s sending fails nothing', async () => {
  const dir = tmp();
  const store = new SqliteStore(dir);
  try {
    const a = await store.createUser('a@example.test', 'h');
    const b = await store.createUser('b@example.test', 'h');
    const send = (recipients: string[], sentBy?: number) => store.accept({
      id: newQueueId(), body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: 'a@example.test', local: [{ userId: b.id, prefix: Buffer.alloc(0) }],
      outbound: { prefix: Buffer.alloc(0), recipients: recipients.map((address) => ({ address })), sign: true }, ...(sentBy !== undefined ? { sentBy } : {}),
    });
        await send(['x@remote.test', 'y@remote.test', 'z@remote.test'], a.id);
    await send(['w@remote.test', 'v@remote.test'], a.id);
    await send(['u@remote.test']);
    assert.equal(await store.sentInLastDay(a.id, Date.now()), 5);
    assert.equal(await store.sentInLastDay(b.id, Date.now()), 0);
    // A day later those no longer count, and the next message's count sweeps them away.
    const db = new DatabaseSync(path.join(dir, 'mailnest.sqlite'));
    try {
      db.exec('UPDATE sent_counts SET minute = minute - 1441');
      assert.equal(await store.sentInLastDay(a.id, Date.now()), 0);
      await send(['t@remote.test'], a.id);
      assert.equal(await store.sentInLastDay(a.id, Date.now()), 1);
      assert.equal(Number(db.prepare('SELECT COUNT(*) AS n FROM sent_counts').get()!.n), 1);
      // Removed between its check and its commit: the message is kept, nothing is counted.
      await store.removeUser('a@example.test');
      await send(['s@remote.test'], a.id);
      assert.equal(Number(db.prepare('SELECT COUNT(*) AS n FROM sent_counts').get()!.n), 0);
      assert.equal((await store.listQueue()).length, 5);
    } finally {
      db.close();
    }
  } finally {
    store.close();
  }
});

test('a deferral recorded after `queue retry` moved the recipient\'s next attempt keeps the earlier time; without one it sets its own', async () => {
  const store = new SqliteStore(tmp());
  try {
    const id = newQueueId();
    await store.accept({ id, body: [Buffer.from('Subject: x\r\n\r\nx\r\n')], sender: 'a@example.test', local: [], outbound: { prefix: Buffer.alloc(0), recipients: [{ address: 'x@remote.test' }, { address: 'y@remote.test' }], sign: true } });
    const [x, y] = (await store.getQueueEntry(id))!.recipients;
    // x's attempt began when it was due at its first time; a retry moved it meanwhile.
    await store.retryNow(id, x!.nextAttempt + 5);
    const later = x!.nextAttempt + 3_600_000;
    await store.updateRecipients(id, [
      { recipientId: x!.id, status: 'deferred', attempts: 1, nextAttempt: later, dueWhenTaken: x!.nextAttempt, lastReply: '451 later' },
      { recipientId: y!.id, status: 'deferred', attempts: 1, nextAttempt: later, dueWhenTaken: x!.nextAttempt + 5, lastReply: '451 later' },
    ]);
    const after = (await store.getQueueEntry(id))!.recipients;
    assert.equal(after.find((r) => r.id === x!.id)!.nextAttempt, x!.nextAttempt + 5, 'the retry stands');
    assert.equal(after.find((r) => r.id === y!.id)!.nextAttempt, later, 'taken as it was: the schedule');
  } finally {
    store.close();
  }
});

test('MTA-STS policies are kept by domain, one each, and those ended are forgotten', async () => {
  const store = new SqliteStore(tmp());
  try {
    const policy = (domain: string, fetched: number, maxAge: number) => ({ domain, id: 'a1', mode: 'enforce' as const, mx: ['mx.a.test', '*.b.test'], maxAge, fetched });
    await store.saveStsPolicy(policy('a.test', 1_000, 60));
    await store.saveStsPolicy(policy('b.test', 1_000, 3600));
    assert.deepEqual(await store.stsPolicy('a.test'), policy('a.test', 1_000, 60));
    await store.saveStsPolicy({ ...policy('b.test', 62_000, 3600), mode: 'none', mx: [] });
    assert.equal(await store.stsPolicy('a.test'), undefined, 'ended at 61 s');
    assert.deepEqual(await store.stsPolicy('b.test'), { ...policy('b.test', 62_000, 3600), mode: 'none', mx: [] });
  } finally {
    store.close();
  }
});
