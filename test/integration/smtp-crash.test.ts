/**
 * The crash test: several sessions stream messages, each with a unique id; the server is
 * killed with SIGKILL in the middle; on restart over the same data directory every message
 * that got its 250 is there exactly once and whole, none is there twice, a message for two
 * users is in both mailboxes or in neither, and the server works as before. Two of the sessions
 * send messages large enough to be kept as files (data_dir/bodies/): no such file is lost or
 * left behind by anything but a message that never got its 250. Two others send messages of
 * about 100 KiB, which go to the body log (data_dir/body-log/).
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { storedMessage } from '../helpers/mailbox.ts';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { cleanup, splitTrace, startFixture, withStore, type Fixture } from '../helpers/smtp-fixture.ts';

let f: Fixture | undefined;
afterEach(async () => { await cleanup(f); f = undefined; });

const SESSIONS = 8;
const ALIAS = 'team@example.test';

/** Sessions 3 and 7 (both to the alias) send bodies over 256 KiB, which the store keeps as files. */
const isLarge = (id: string) => /-s[37]-/.test(id);
/** Sessions 1 and 4 send bodies of about 100 KiB, which the store appends to the body log. */
const isMedium = (id: string) => /-s[14]-/.test(id);

function bodyFor(id: string): Buffer {
  const lines = isLarge(id) ? 6000 : isMedium(id) ? 1800 : 120;
  const filler = Array.from({ length: lines }, (_, i) => `${id} line ${i} ${'z'.repeat(i % 60)}`).join('\r\n');
  return Buffer.from(`Subject: ${id}\r\nX-Crash-Id: ${id}\r\n\r\n${filler}\r\nend of ${id}\r\n`);
}

interface Tally {
  /** Ids whose MAIL has been written (in flight or done). */
  sent: Set<string>;
  /** Ids answered 250, with the recipient used. */
  acked: Map<string, string>;
}

/** One client session sending message after message until the connection dies. */
async function stream(port: number, round: number, sid: number, tally: Tally): Promise<void> {
  let c: SmtpClient | undefined;
  try {
    c = await SmtpClient.open(port, { timeoutMs: 20_000 });
    await c.ehlo(`s${sid}.client.example.net`);
    for (let n = 0; ; n++) {
      const id = `r${round}-s${sid}-m${n}`;
      const rcpt = sid % 2 === 0 ? 'alice@example.test' : ALIAS;
      tally.sent.add(id);
      c.write(`MAIL FROM:<s${sid}@remote.test>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
      const rs = await c.replies(3);
      if (rs.map((r) => r.code).join() !== '250,250,354') throw new Error(`unexpected: ${rs.map((r) => r.raw).join('')}`);
      // Written in pieces, so that the kill can land in the middle of a message.
      const body = bodyFor(id);
      const piece = isLarge(id) || isMedium(id) ? 16_000 : 1500;
      for (let pos = 0; pos < body.length; pos += piece) {
        c.write(body.subarray(pos, pos + piece));
        await new Promise((r) => setImmediate(r));
      }
      c.write('.\r\n');
      const r = await c.reply();
      if (r.code !== 250) throw new Error(`unexpected: ${r.raw}`);
      tally.acked.set(id, rcpt);
    }
  } catch (err) {
    // The server died: that is the point. Anything else is a failure.
    if (!/closed|ECONNRESET|EPIPE|ECONNREFUSED/.test(String(err))) throw err;
  } finally {
    c?.destroy();
  }
}

/** Every stored message per id: { alice: count, bob: count }, each body checked whole. */
async function storedIds(dataDir: string): Promise<Map<string, { alice: number; bob: number; uids: number[] }>> {
  return withStore(dataDir, async (store) => {
    const out = new Map<string, { alice: number; bob: number; uids: number[] }>();
    for (const who of ['alice', 'bob'] as const) {
      const user = (await store.findUser(`${who}@example.test`))!;
      for (const entry of await store.listMailbox(user.id)) {
        const { body } = splitTrace(await storedMessage(store, user.id, entry.uid));
        const id = /^Subject: (\S+)\r\n/.exec(body.toString())?.[1];
        assert.ok(id, `a stored message without its id: ${JSON.stringify(body.subarray(0, 80).toString())}`);
        assert.ok(body.equals(bodyFor(id)), `${id} is not stored whole`);
        const e = out.get(id) ?? { alice: 0, bob: 0, uids: [] };
        e[who]++;
        if (who === 'alice') e.uids.push(entry.uid);
        out.set(id, e);
      }
    }
    return out;
  });
}

function bodyFiles(dataDir: string): string[] {
  return fs.readdirSync(path.join(dataDir, 'bodies'));
}

/** Queue ids of the bodies the database says are files. */
function externalBodies(dataDir: string): Set<string> {
  const db = new DatabaseSync(path.join(dataDir, 'mailnest.sqlite'), { readOnly: true });
  try {
    return new Set((db.prepare('SELECT queue_id FROM bodies WHERE external = 1').all() as { queue_id: string }[]).map((r) => r.queue_id));
  } finally {
    db.close();
  }
}

/** How many bodies the database says are in the body log. */
function loggedBodies(dataDir: string): number {
  const db = new DatabaseSync(path.join(dataDir, 'mailnest.sqlite'), { readOnly: true });
  try {
    return Number((db.prepare('SELECT count(*) AS n FROM bodies WHERE external = 2').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

function integrity(dataDir: string): string {
  const db = new DatabaseSync(path.join(dataDir, 'mailnest.sqlite'), { readOnly: true });
  try {
    return String((db.prepare('PRAGMA integrity_check').get() as Record<string, unknown>).integrity_check);
  } finally {
    db.close();
  }
}

test('SIGKILL mid-stream: every message that got 250 is stored exactly once after restart', async () => {
  f = await startFixture({ aliases: { [ALIAS]: ['alice@example.test', 'bob@example.test'] } });
  const tally: Tally = { sent: new Set(), acked: new Map() };
  let maxUidBefore = 0;

  for (let round = 0; round < 2; round++) {
    const port = f.port('smtp');
    const ackedBefore = tally.acked.size;
    const streams = Array.from({ length: SESSIONS }, (_, sid) => stream(port, round, sid, tally));
    // Kill once a good number of messages went through in this round, while sessions are busy.
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (tally.acked.size - ackedBefore >= 25) { clearInterval(t); resolve(); }
      }, 5);
    });
    await f.server.kill();
    assert.equal(f.server.process.signalCode, 'SIGKILL');
    await Promise.all(streams);
    // The kill came while sessions were in a transaction (a 250 is always followed at once by
    // the next MAIL, so each live session had one in flight).
    assert.ok(tally.sent.size > tally.acked.size, 'nothing was in flight at the kill');

    const killed = f.server.process.pid!;
    const markedBy = (pid: number) => fs.readdirSync(path.join(f!.dataDir, 'body-log')).some((n) => n.includes(`.${pid}.`) && n.endsWith('.open'));
    assert.ok(markedBy(killed), 'the killed server was writing a body-log segment');
    await f.restart();
    assert.ok(!f.server.logs.some((l) => Number(l.level) >= 50), `errors on restart: ${JSON.stringify(f.server.logs.filter((l) => Number(l.level) >= 50))}`);
    assert.equal(integrity(f.dataDir), 'ok');
    // The killed server's body-log segments were checked on restart and sealed; a kill loses
    // nothing the kernel holds, so no message is removed.
    assert.ok(!markedBy(killed), 'a killed writer\'s marker is left');
    assert.ok(!f.server.logs.some((l) => /crash cut short/.test(String(l.msg))), 'recovery removed a message after a kill');

    const stored = await storedIds(f.dataDir);
    // Every body file is a stored message's, except at most one per large-message session per
    // kill: a body written before the kill whose transaction never committed (sweep's to remove).
    const orphans = bodyFiles(f.dataDir).filter((name) => !externalBodies(f!.dataDir).has(name));
    assert.ok(orphans.length <= 2 * (round + 1), `${orphans.length} body files without a message`);
    for (const [id, rcpt] of tally.acked) {
      const e = stored.get(id);
      assert.ok(e, `${id} got 250 but is lost`);
      assert.equal(e.alice, 1, `${id} is in alice's mailbox ${e.alice} times`);
      assert.equal(e.bob, rcpt === ALIAS ? 1 : 0, `${id} in bob's mailbox ${e.bob} times`);
    }
    for (const [id, e] of stored) {
      assert.ok(tally.sent.has(id), `${id} was never sent`);
      assert.ok(e.alice <= 1 && e.bob <= 1, `${id} stored twice`);
      // One transaction: both copies of a message to the alias, or neither.
      if (/-s\d*[13579]-/.test(id)) assert.equal(e.alice, e.bob, `${id}: alice ${e.alice}, bob ${e.bob}`);
    }
    const uids = [...stored.values()].flatMap((e) => e.uids).sort((a, b) => a - b);
    assert.ok(uids.every((u) => u > 0));
    // UIDs of messages kept from before this round's kill are still below every new one.
    if (round > 0) assert.ok(uids.filter((u) => u > maxUidBefore).length >= 25);
    maxUidBefore = Math.max(maxUidBefore, ...uids);
  }

  assert.ok([...tally.acked.keys()].some(isLarge), 'no large message got its 250 before a kill');
  assert.ok([...tally.acked.keys()].some(isMedium), 'no 100 KiB message got its 250 before a kill');
  assert.ok(externalBodies(f.dataDir).size > 0);
  assert.ok(loggedBodies(f.dataDir) > 0);

  // The restarted server takes mail as before, and never reuses a UID, not even the one of a
  // message deleted meanwhile.
  await withStore(f.dataDir, async (store) => {
    const alice = (await store.findUser('alice@example.test'))!;
    await store.deleteMessages(alice.id, [maxUidBefore]);
  });
  const c = await f.open('smtp');
  await c.ehlo();
  c.write('MAIL FROM:<after@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n');
  assert.deepEqual((await c.replies(3)).map((r) => r.code), [250, 250, 354]);
  c.write(Buffer.concat([bodyFor('after-restart'), Buffer.from('.\r\n')]));
  assert.equal((await c.reply()).code, 250);
  await c.quit();
  const final = await storedIds(f.dataDir);
  assert.equal(final.get('after-restart')?.alice, 1);
  assert.ok(final.get('after-restart')!.uids[0]! > maxUidBefore, 'a UID was reused after the crash');
  assert.equal(await f.stop(), 0);
});
