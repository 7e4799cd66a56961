/** Helpers for the relay tests: queue a message from another process, read the queue, wait. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { CLI, cli, NODE, ROOT } from './server.ts';

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

/** inject and queueJson without blocking this process, for tests whose DNS server or next hop
 *  runs in it: a synchronous child process would leave their queries unanswered meanwhile. */
export async function injectAsync(configFile: string, sender: string, rcpts: string[], message: string | Buffer): Promise<string> {
  const r = await run(NODE, [path.join(ROOT, 'test/helpers/inject.ts'), configFile, sender, ...rcpts], message);
  if (r.status !== 0) throw new Error(`inject failed: ${r.stderr}`);
  return r.stdout.trim();
}

export async function queueJsonAsync(configFile: string): Promise<ReturnType<typeof queueJson>> {
  const r = await cliAsync(configFile, ['queue', 'list', '--json']);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** A command of the CLI, without blocking this process (see injectAsync). */
export function cliAsync(configFile: string, args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return run(NODE, [CLI, '-c', configFile, ...args], '');
}

function run(command: string, args: string[], input: string | Buffer): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.end(input);
  });
}

export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

