import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { copiesOf, type ResolvedRecipient } from '../../src/delivery/accept.ts';
import { FreeSpace, roomFor } from '../../src/store/free-space.ts';
import { until } from '../helpers/relay.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('FreeSpace reads statfs at once and again in the background; Infinity for a directory it cannot read', async () => {
  const dir = tempDir('mailnest-free-');
  const gauge = new FreeSpace(dir);
  try {
    const st = fs.statfsSync(dir);
    // Other processes write meanwhile: the reading is close to statfs, not equal to it.
    assert.ok(Math.abs(gauge.bytes - st.bavail * st.bsize) < 256 * 1024 * 1024, `${gauge.bytes} vs ${st.bavail * st.bsize}`);
    fs.rmdirSync(dir);
    assert.ok(Number.isFinite(gauge.bytes), 'asking is reading the last value, no system call');
    await until('the background reading to find the directory gone', () => gauge.bytes === Infinity);
  } finally {
    gauge.close();
  }
  const missing = new FreeSpace(`${dir}/nowhere`);
  assert.equal(missing.bytes, Infinity);
  missing.close();
});

test('room for a message: twice its declared size plus 1 MiB', () => {
  const MiB = 1024 * 1024;
  assert.equal(roomFor(3 * MiB, MiB), true);
  assert.equal(roomFor(3 * MiB, MiB + 1), false);
  assert.equal(roomFor(MiB, 0), true);
  assert.equal(roomFor(MiB - 1, 0), false);
  assert.equal(roomFor(Infinity, 50 * MiB), true, 'an unknown reading refuses nothing');
  // Each copy it is stored as (an alias of sixty mailboxes: sixty) takes 1 KiB more.
  assert.equal(roomFor(3 * MiB, MiB - 30 * 1024, 60), true);
  assert.equal(roomFor(3 * MiB, MiB - 30 * 1024, 61), false);
  // The copies a message is stored as: every mailbox an alias leads to, and every address it
  // sends the message on to, each remote recipient one.
  const user = (id: number) => ({ id, address: `u${id}@example.test`, passwordHash: 'h' });
  const recipients = [
    { address: 'all@example.test', resolution: { kind: 'local', users: Array.from({ length: 60 }, (_, i) => user(i)), forward: ['x@remote.test'] } },
    { address: 'u1@example.test', resolution: { kind: 'local', users: [user(1)], forward: [] } },
    { address: 'y@remote.test', resolution: { kind: 'remote' } },
  ] as ResolvedRecipient[];
  assert.equal(copiesOf(recipients), 63);
});

test('a message about to be stored is counted off the reading until the next one, so messages within one second cannot pass the reserve', () => {
  const dir = tempDir('mailnest-free-');
  const gauge = new FreeSpace(dir);
  try {
    const MiB = 1024 * 1024;
    const size = Math.floor((gauge.bytes - MiB) / 4);
    // Room for two of them at twice their size each, then none.
    assert.equal(gauge.take(size), true);
    assert.equal(gauge.take(size), true);
    const left = gauge.bytes;
    assert.equal(gauge.take(size), false);
    assert.equal(gauge.bytes, left, 'a refusal counts nothing');
    assert.equal(gauge.roomFor(0), true);
  } finally {
    gauge.close();
    fs.rmdirSync(dir);
  }
});
