import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/password.ts';
import { AuthThrottle } from '../../src/auth/throttle.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/log.ts';
import type { ClientInfo, ProtocolHandler } from '../../src/net/listener.ts';
import type { Pop3Effect, Pop3Owner, Pop3Result } from '../../src/pop3/effects.ts';
import { pop3Handler } from '../../src/pop3/handler.ts';
import { MaildropLocks } from '../../src/pop3/locks.ts';
import { newQueueId } from '../../src/store/queue-id.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const client = (ip = '192.0.2.1'): ClientInfo => ({ remoteAddress: ip });

describe('POP3 handler against the SQLite store', () => {
  let dir: string;
  let store: SqliteStore;
  let userId: number;
  let handler: ProtocolHandler<Pop3Effect, Pop3Result>;
  let locks: MaildropLocks;
  let throttle: AuthThrottle;
  const slept: number[] = [];

  before(async () => {
    dir = tempDir('mailnest-pop3-handler-');
    store = new SqliteStore(dir);
    userId = (await store.createUser('Alice@Example.test', await hashPassword('pw one'))).id;
    for (const body of ['Subject: a\r\n\r\none\r\n', 'Subject: b\r\n\r\ntwo\r\n', 'Subject: c\r\n\r\n' + 'x'.repeat(600_000) + '\r\n']) {
      await store.accept({ id: newQueueId(), body: [Buffer.from(body)], sender: 's@example.test', local: [{ userId, prefix: Buffer.from('Return-Path: <s@example.test>\r\n') }] });
    }
    locks = new MaildropLocks();
    throttle = new AuthThrottle(3);
    const config = configSchema.parse({ data_dir: dir, hostname: 'mx.example.test' });
    handler = pop3Handler({ config, store, log: createLogger('silent'), throttle, locks, sleep: async (ms) => { slept.push(ms); } }, 'pop3');
  });

  after(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const owner = (ip?: string): Pop3Owner => ({ client: client(ip), closed: false });

  it('logs in case-insensitively, locks and lists the maildrop', async () => {
    const o = owner();
    const r = await handler.perform({ type: 'login', owner: o, username: 'alice@example.TEST', password: 'pw one' });
    assert.equal(r.type, 'ok');
    if (r.type !== 'ok') return;
    assert.equal(r.address, 'Alice@Example.test');
    assert.deepEqual(r.entries.map((e) => e.uid), [1, 2, 3]);
    assert.equal(r.entries[0]!.size, 'Return-Path: <s@example.test>\r\n'.length + 'Subject: a\r\n\r\none\r\n'.length);
    assert.equal(locks.isLocked(userId), true);
    // A second session on the same maildrop is refused while the first holds it.
    assert.deepEqual(await handler.perform({ type: 'login', owner: owner(), username: 'alice@example.test', password: 'pw one' }), { type: 'in-use' });
    await handler.perform({ type: 'quit', owner: o, userId, uids: [] });
    assert.equal(locks.isLocked(userId), false);
  });

  it('sessions of the plain listener refuse credentials by default (no allow_insecure)', () => {
    const session = handler.createSession(client());
    session.start();
    const outs = session.receive(Buffer.from('USER alice@example.test\r\nPASS pw one\r\n'));
    assert.deepEqual(outs.map((o) => o.type), ['write']);
    assert.match(String((outs[0] as { data: string }).data), /^-ERR \[AUTH\] credentials are refused[^\n]*\n-ERR \[AUTH\] credentials are refused/);
  });

  it('never locks for a session whose connection is already gone', async () => {
    const o = owner();
    o.closed = true;
    assert.deepEqual(await handler.perform({ type: 'login', owner: o, username: 'alice@example.test', password: 'pw one' }), { type: 'temp' });
    assert.equal(locks.isLocked(userId), false);
  });

  it('the ended hook frees a lock held by a session', async () => {
    const config = configSchema.parse({ data_dir: dir, auth: { allow_insecure: true } });
    const h = pop3Handler({ config, store, log: createLogger('silent'), throttle: new AuthThrottle(5), locks, sleep: async () => {} }, 'pop3');
    const session = h.createSession(client());
    session.start();
    const outs = session.receive(Buffer.from('USER alice@example.test\r\nPASS pw one\r\n'));
    const effect = outs.at(-1) as { type: 'effect'; effect: Pop3Effect };
    assert.equal(effect.type, 'effect');
    const result = await h.perform(effect.effect);
    session.resolve(result);
    assert.equal(locks.isLocked(userId), true);
    h.ended!(session);
    assert.equal(locks.isLocked(userId), false);
  });

  it('a session that ends while its password is checked leaves the maildrop unlocked: the next login gets it', async () => {
    const config = configSchema.parse({ data_dir: dir, auth: { allow_insecure: true } });
    const h = pop3Handler({ config, store, log: createLogger('silent'), throttle: new AuthThrottle(5), locks, sleep: async () => {} }, 'pop3');
    const session = h.createSession(client('192.0.2.50'));
    session.start();
    const outs = session.receive(Buffer.from('USER alice@example.test\r\nPASS pw one\r\n'));
    const effect = outs.at(-1) as { type: 'effect'; effect: Pop3Effect };
    // The password check is under way (scrypt, off the event loop) when the client goes.
    const checking = h.perform(effect.effect);
    h.ended!(session);
    assert.deepEqual(await checking, { type: 'temp' });
    assert.equal(locks.isLocked(userId), false);
    const o = owner('192.0.2.51');
    assert.equal((await handler.perform({ type: 'login', owner: o, username: 'alice@example.test', password: 'pw one' })).type, 'ok');
    await handler.perform({ type: 'quit', owner: o, userId, uids: [] });
  });

  it('a good login forgives that user\'s failures from the address: the next wrong password is answered at once', { timeout: 30_000 }, async () => {
    const ip = '198.51.100.9';
    const t = new AuthThrottle(3);
    const config = configSchema.parse({ data_dir: dir, hostname: 'mx.example.test' });
    const delays: number[] = [];
    const h = pop3Handler({ config, store, log: createLogger('silent'), throttle: t, locks, sleep: async (ms) => { delays.push(ms); } }, 'pop3');
    const login = (password: string) => h.perform({ type: 'login', owner: owner(ip), username: 'alice@example.test', password });
    assert.deepEqual(await login('wrong'), { type: 'auth-failed', disconnect: false });
    assert.deepEqual(await login('wrong'), { type: 'auth-failed', disconnect: false });
    assert.deepEqual(delays.length, 1, 'the second failure waited');
    const o = owner(ip);
    assert.equal((await h.perform({ type: 'login', owner: o, username: 'alice@example.test', password: 'pw one' })).type, 'ok');
    await h.perform({ type: 'quit', owner: o, userId, uids: [] });
    assert.deepEqual(await login('wrong'), { type: 'auth-failed', disconnect: false }, 'counted from none again, not the third of three');
    assert.equal(delays.length, 1, 'a first failure again: no wait');
  });

  it('unknown user and wrong password fail alike; the shared throttle delays and then disconnects', async () => {
    const ip = '198.51.100.7';
    const a = await handler.perform({ type: 'login', owner: owner(ip), username: 'nobody@example.test', password: 'pw one' });
    const b = await handler.perform({ type: 'login', owner: owner(ip), username: 'alice@example.test', password: 'wrong' });
    const c = await handler.perform({ type: 'login', owner: owner(ip), username: 'alice@example.test', password: 'wrong' });
    assert.deepEqual(a, { type: 'auth-failed', disconnect: false });
    assert.deepEqual(b, { type: 'auth-failed', disconnect: false });
    assert.deepEqual(c, { type: 'auth-failed', disconnect: true });
    assert.ok(slept.length >= 2 && slept.every((ms) => ms > 0));
    // Even the right password is not tried while the address is blocked.
    assert.deepEqual(await handler.perform({ type: 'login', owner: owner(ip), username: 'alice@example.test', password: 'pw one' }), { type: 'blocked' });
    assert.equal(await throttle.begin(ip, Date.now()), false);
  });

  it('a login whose session closed while it waited for its turn is neither checked nor counted', async () => {
    const ip = '198.51.100.8';
    // Three checks from the address under way: as many as it has failures left.
    for (let i = 0; i < 3; i++) assert.ok(await throttle.begin(ip, Date.now()));
    const o = owner(ip);
    const waiting = handler.perform({ type: 'login', owner: o, username: 'alice@example.test', password: 'wrong' });
    o.closed = true;
    throttle.succeed(ip, 'someone@example.test');
    assert.deepEqual(await waiting, { type: 'temp' });
    // Nothing was counted: with all three failures left, three logins go at once again.
    throttle.abandon(ip);
    throttle.abandon(ip);
    for (let i = 0; i < 3; i++) assert.equal(await Promise.race([throttle.begin(ip, Date.now()), new Promise((resolve) => setImmediate(() => resolve('waits')))]), true);
  });

  it('a QUIT whose client has gone keeps the maildrop locked until its deletions end', async () => {
    const config = configSchema.parse({ data_dir: dir, auth: { allow_insecure: true } });
    const h = pop3Handler({ config, store, log: createLogger('silent'), throttle: new AuthThrottle(5), locks, sleep: async () => {} }, 'pop3');
    const session = h.createSession(client('198.51.100.9'));
    session.start();
    const login = (session.receive(Buffer.from('USER alice@example.test\r\nPASS pw one\r\n')).at(-1) as { type: 'effect'; effect: Pop3Effect }).effect;
    session.resolve(await h.perform(login));
    assert.ok(login.type === 'login');
    const quitting = h.perform({ type: 'quit', owner: login.owner, userId, uids: [999] });
    h.ended!(session);
    assert.equal(locks.isLocked(userId), true, 'not while the deletions run');
    assert.deepEqual(await quitting, { type: 'committed' });
    assert.equal(locks.isLocked(userId), false);
  });

  it('reads a small message whole', async () => {
    const [first] = await store.listMailbox(userId);
    const r = await handler.perform({ type: 'retrieve', userId, uid: first!.uid });
    assert.equal(r.type, 'whole');
    if (r.type !== 'whole') return;
    assert.equal(Buffer.concat(r.parts).length, first!.size);
  });

  it('streams a large message in bounded chunks, and reports a missing one, and one the store cannot read', async () => {
    const r = await handler.perform({ type: 'retrieve', userId, uid: 3 });
    assert.equal(r.type, 'message');
    if (r.type !== 'message') return;
    let total = 0;
    let max = 0;
    for await (const c of r.source) {
      total += c.length;
      max = Math.max(max, c.length);
    }
    assert.equal(total, 'Return-Path: <s@example.test>\r\n'.length + 'Subject: c\r\n\r\n'.length + 600_002);
    assert.ok(max <= 256 * 1024);
    assert.deepEqual(await handler.perform({ type: 'retrieve', userId, uid: 999 }), { type: 'missing' });
    // A store that cannot read it now: not a message gone for good.
    const open = store.openMessage;
    store.openMessage = async () => { throw new Error('disk I/O error'); };
    try {
      assert.deepEqual(await handler.perform({ type: 'retrieve', userId, uid: 3 }), { type: 'failed' });
    } finally {
      store.openMessage = open;
    }
  });

  it('QUIT deletes exactly the given uids, durably, and releases the lock', async () => {
    const o = owner();
    assert.equal((await handler.perform({ type: 'login', owner: o, username: 'alice@example.test', password: 'pw one' })).type, 'ok');
    assert.deepEqual(await handler.perform({ type: 'quit', owner: o, userId, uids: [2] }), { type: 'committed' });
    assert.equal(locks.isLocked(userId), false);
    assert.deepEqual((await store.listMailbox(userId)).map((e) => e.uid), [1, 3]);
  });

  it('refuses over-limit connections with -ERR [SYS/TEMP]', () => {
    assert.equal(handler.refusal('too many connections'), '-ERR [SYS/TEMP] too many connections\r\n');
    assert.equal(handler.idleTimeoutMs, 600_000);
    assert.equal(handler.implicitTls, false);
  });
});

describe('maildrop locks', () => {
  it('one holder per user; re-acquire by the holder is fine; release frees', () => {
    const l = new MaildropLocks();
    const a: Pop3Owner = { client: client(), closed: false };
    const b: Pop3Owner = { client: client(), closed: false };
    assert.equal(l.acquire(1, a), true);
    assert.equal(l.acquire(1, a), true);
    assert.equal(l.acquire(1, b), false);
    assert.equal(l.acquire(2, b), true);
    l.release(a);
    assert.equal(l.acquire(1, b), true);
    assert.equal(l.isLocked(2), false, 'taking another lock released the first');
    l.release(b);
    assert.equal(l.size, 0);
  });
});
