import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { baseConfig, cli, NODE, ROOT, startMailnest, tempDir, writeConfig } from '../helpers/server.ts';

test('start: listens, makes a self-signed certificate, stops on SIGTERM with exit 0', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const server = await startMailnest(dir, cfg);
  assert.ok(server.port('smtp') > 0 && server.port('submission') > 0 && server.port('pop3') > 0 && server.port('http') > 0);
  assert.match(fs.readFileSync(server.certFile, 'utf8'), /BEGIN CERTIFICATE/);
  assert.equal(await server.stop(), 0);
  assert.ok(server.logs.some((l) => l.msg === 'stopped'));
});

test('start: a busy port is one line on stderr and exit 1', async () => {
  const dir = tempDir();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  const cfg = writeConfig(dir, baseConfig(dir, { listen: { pop3: [`127.0.0.1:${port}`] } }));
  const r = cli(cfg, ['start']);
  blocker.close();
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `mailnest: listen.pop3: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n`);
});

test('start: a bad config value stops it before anything listens', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, { limits: { max_recipients: -3 } }));
  const r = cli(cfg, ['start']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^mailnest: .*limits\.max_recipients = -3 is not allowed: expected more than 0\n$/);
});

test('the package bin entry runs the CLI (compiled or from source, whichever is current)', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: { mailnest: string } };
  const r = spawnSync(NODE, [path.join(ROOT, pkg.bin.mailnest), '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${pkg.version}\n`);
  const usage = spawnSync(NODE, [path.join(ROOT, pkg.bin.mailnest), 'user', 'nope'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
});
