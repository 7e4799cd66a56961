/** Telling a process from whatever has its pid later: boot and start time, and zombies gone. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { processIdentity } from '../../src/store/process-identity.ts';
import { until } from '../helpers/relay.ts';

test('a process is named by boot and start time, the same while it runs; one ended but not reaped, or none, is gone', async (t) => {
  if (processIdentity(process.pid) === undefined) return t.skip('no /proc here');
  assert.match(processIdentity(process.pid)!, /^[0-9a-f-]{36} \d+$/);
  assert.equal(processIdentity(process.pid), processIdentity(process.pid));
  // The shell's background child is left to the sleep the shell becomes, which never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => parent.kill());
  const child = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(d.toString()))));
  assert.notEqual(processIdentity(child), 'gone', 'running');
  await until('the child to end, a zombie', () => processIdentity(child) === 'gone');
  parent.kill();
  await new Promise((resolve) => parent.once('exit', resolve));
  assert.equal(processIdentity(parent.pid!), 'gone');
});
