/**
 * data_dir's disk in trouble, said as what it is: full with the server stopped (SQLite, unable to
 * make its -wal and -shm files, says "disk I/O error"), mounted read-only, or turned read-only
 * under the running server by a disk error, which it reports in one line when it stops.
 * Needs root to mount the filesystems; skipped elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { addUser, baseConfig, cli, startMailnest, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { failingExt4For, fillUp, tmpfsFor } from '../helpers/tmpfs.ts';

test('a full disk under a stopped server: the commands and start say the disk is full, not that it fails', (t) => {
  const dir = tmpfsFor(t, '4m', () => {});
  if (!dir) return;
  const configFile = writeConfig(dir, baseConfig(dir));
  addUser(configFile, 'alice@example.test', 'alice pass');
  // Beside it, a database that is not one: damaged is what it is, full disk or not.
  const other = path.join(dir, 'other');
  fs.mkdirSync(path.join(other, 'data'), { recursive: true, mode: 0o700 });
  const damaged = writeConfig(other, baseConfig(other));
  fs.writeFileSync(path.join(other, 'data', 'mailnest.sqlite'), 'not a database, '.repeat(1024));
  fillUp(path.join(dir, 'filler'));
  const notDb = cli(damaged, ['user', 'list']);
  assert.equal(notDb.status, 1);
  assert.doesNotMatch(notDb.stderr, /full/, notDb.stderr);
  assert.match(notDb.stderr, /not a database/);
  // sendmail as a cron job calls it, with its statuses, and -bs as a PHP mailer does
  const runs: [string[], string, number][] = [
    [['user', 'list'], '', 1],
    [['user', 'add', 'bob@example.test', '--password-stdin'], 'bob pass\n', 1],
    [['start'], '', 1],
    [['sendmail', 'alice@example.test'], 'Subject: x\n\nhi\n', 1],
    [['sendmail', '--sysexits', 'alice@example.test'], 'Subject: x\n\nhi\n', 75],
    [['sendmail', '-bs'], 'EHLO x\r\nQUIT\r\n', 1],
  ];
  for (const [args, input, status] of runs) {
    const r = cli(configFile, args, input);
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^mailnest: the disk holding data_dir is full \([^\n]*\): free some space and try again\n$/, args.join(' '));
  }
  fs.rmSync(path.join(dir, 'filler'));
  assert.equal(cli(configFile, ['user', 'list']).status, 0);
});

test('data_dir on a filesystem mounted read-only: one line that says so, for the commands and start', (t) => {
  const dir = tmpfsFor(t, '8m', () => spawnSync('mount', ['-o', 'remount,rw', dir!]));
  if (!dir) return;
  const configFile = writeConfig(dir, baseConfig(dir));
  addUser(configFile, 'alice@example.test', 'alice pass');
  // And one whose data_dir is still to be made there.
  const unmade = path.join(dir, 'unmade');
  fs.mkdirSync(path.join(dir, 'other'));
  const unmadeConfig = writeConfig(path.join(dir, 'other'), baseConfig(unmade));
  assert.equal(spawnSync('mount', ['-o', 'remount,ro', dir]).status, 0);
  const r = cli(unmadeConfig, ['user', 'list']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^mailnest: data_dir ${path.join(unmade, 'data')} is on a file system mounted read-only`));
  for (const args of [['user', 'list'], ['start']]) {
    const r = cli(configFile, args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, `mailnest: data_dir ${path.join(dir, 'data')} is on a file system mounted read-only (the kernel does that after a disk error: see dmesg); remount it read-write once the disk is sound, or point data_dir elsewhere\n`, args.join(' '));
  }
});

test('a disk error that turns data_dir read-only under the running server: it stops on SIGTERM with one line, no stack trace', async (t) => {
  let m: RunningMailnest | undefined;
  const disk = failingExt4For(t, () => m?.process.kill('SIGKILL'));
  if (!disk) return;
  const configFile = writeConfig(disk.dir, baseConfig(disk.dir));
  addUser(configFile, 'alice@example.test', 'alice pass');
  m = await startMailnest(disk.dir, configFile);
  disk.fail();
  const code = await m.stop();
  assert.equal(code, 1, m.stderr());
  const lines = m.stderr().trimEnd().split('\n');
  assert.match(lines.at(-1)!, /^mailnest: stopped, but data_dir \S+ could not be closed cleanly \(.*EROFS.*\); mail acknowledged before was on disk already$/);
  assert.ok(!lines.some((l) => /^\s+at /.test(l)), m.stderr());
});
