/**
 * Recovery after a crash of the machine, as an operator meets it: a message whose commit
 * reached the disk and whose body in the body log did not is removed the next time mailnest
 * opens its data directory, and a warning names it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { baseConfig, cli, tempDir, writeConfig } from '../helpers/server.ts';

test('a message whose body a crash cut short is removed on the next start, with a warning naming it', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  assert.equal(cli(cfg, ['user', 'add', 'alice@example.test', '--password-stdin'], 'pw\n').status, 0);
  const dataDir = path.join(dir, 'data');
  const store = new SqliteStore(dataDir);
  const alice = (await store.findUser('alice@example.test'))!;
  for (const id of ['KEPT00000001', 'CUT000000001']) {
    await store.accept({ id, body: [Buffer.alloc(100 * 1024, id)], sender: '', local: [{ userId: alice.id, prefix: Buffer.alloc(0) }] });
  }
  store.close();
  // The second body never reached the disk, and the writer's marker is still there (pid 2^22 + 1
  // is above Linux's highest: that process is gone).
  fs.truncateSync(path.join(dataDir, 'body-log', '00000001'), 100 * 1024);
  fs.writeFileSync(path.join(dataDir, 'body-log', `00000001.${2 ** 22 + 1}.0ddba11.open`), '');
  const list = cli(cfg, ['user', 'list', '--json']);
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout), [{ address: 'alice@example.test', messages: 1, bytes: 100 * 1024 }]);
  const warning = JSON.parse(list.stderr.trim()) as { level: number; msg: string; removed: string[] };
  assert.equal(warning.level, 40);
  assert.match(warning.msg, /whose body a crash cut short; none of them had been acknowledged/);
  assert.deepEqual(warning.removed, ['CUT000000001']);
  // Checked once: the next command has nothing to say.
  assert.equal(cli(cfg, ['user', 'list', '--json']).stderr, '');
});
