import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { FreeSpace } from '../../src/store/free-space.ts';

test('FreeSpace reads statfs at most once a second, and says Infinity for a directory it cannot read', () => {
  const dir = os.tmpdir();
  const gauge = new FreeSpace(dir);
  const st = fs.statfsSync(dir);
  const first = gauge.bytes(1_000_000);
  // Other processes write meanwhile: the reading is close to statfs, not equal to it.
  assert.ok(Math.abs(first - st.bavail * st.bsize) < 256 * 1024 * 1024, `${first} vs ${st.bavail * st.bsize}`);
  const path = fs.mkdtempSync(`${dir}/mailnest-free-`);
  const gone = new FreeSpace(path);
  assert.ok(Number.isFinite(gone.bytes(1_000_000)));
  fs.rmdirSync(path);
  assert.ok(Number.isFinite(gone.bytes(1_000_500)), 'the reading is kept for a second');
  assert.equal(gone.bytes(1_001_000), Infinity, 'a new reading after a second');
});
