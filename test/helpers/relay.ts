/** Helpers for the relay tests: queue a message from another process, read the queue, wait. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { cli, NODE, ROOT } from './server.ts';

export function inject(configFile: string, sender: string, rcpts: string[], message: string | Buffer): string {
  const r = spawnSync(NODE, [path.join(ROOT, 'test/helpers/inject.ts'), configFile, sender, ...rcpts], { input: message, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`inject failed: ${r.stderr}`);
  return r.stdout.trim();
}

export function queueJson(configFile: string): { id: string; from: string; created: string; recipients: { address: string; status: string; attempts: number; next_attempt: string | null; last_reply: string | null }[] }[] {
  const r = cli(configFile, ['queue', 'list', '--json']);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

