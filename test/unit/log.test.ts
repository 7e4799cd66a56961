/** The server's log: lines written in batches, and a log whose reader is gone neither stops the
 *  server nor holds up its exit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

const LOG = path.resolve(import.meta.dirname, '../../src/log.ts');

/** Runs `body` in a Node process whose stdout is the logger's; resolves with its stderr and status. */
function run(body: string, stdout: 'closed' | 'read'): Promise<{ stderr: string; code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { createLogger, whenLogStalls } from ${JSON.stringify(LOG)};\n${body}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (stdout === 'closed') child.stdout.destroy();
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve) => child.on('close', (code) => resolve({ stderr: err, code, stdout: out })));
}

test('with its reader gone (EPIPE), a wait for the log to be written out ends at once, so a stop that waits on it happens', async () => {
  const r = await run(`
const log = createLogger('info');
for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
await new Promise((resolve) => setTimeout(resolve, 500));
log.flush(() => { process.stderr.write('flushed'); process.exit(3); });
setTimeout(() => { process.stderr.write('still waiting'); process.exit(4); }, 3000);
`, 'closed');
  assert.deepEqual([r.stderr, r.code], ['flushed', 3]);
});

test('a line is written out while the server runs on, quiet, without waiting for more to fill a batch', { timeout: 20_000 }, async (t) => {
  // The process logs one line, then lives until its stdin closes: the line must come first.
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { createLogger } from ${JSON.stringify(LOG)};
const log = createLogger('info');
log.info('first');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve();
    });
    child.on('exit', () => reject(new Error(`exited before its line was written: ${out}`)));
  });
  child.stdin.end();
  assert.equal(JSON.parse(out.split('\n')[0]!).msg, 'first');
});

test('a process whose log reader stopped reading (a full pipe) still exits, leaving unwritten what the reader did not take', { timeout: 30_000 }, async (t) => {
  // stdout is a pipe this test never reads: 64 KiB fill it, and the writes after wait.
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { createLogger } from ${JSON.stringify(LOG)};
const log = createLogger('info');
for (let i = 0; i < 5000; i++) log.info({ i, pad: 'x'.repeat(100) }, 'line');
setTimeout(() => { process.stderr.write('exiting'); process.exit(5); }, 500);
`], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  child.stdout.pause();
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.deepEqual([err, code], ['exiting', 5]);
});

test('the wait for the log at a stop outlasts a slow reader, and ends once a reader takes nothing for a while', { timeout: 60_000 }, () => {
  const script = `import { createLogger, whenLogStalls } from ${JSON.stringify(LOG)};
const log = createLogger('info');
for (let i = 0; i < 3000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'line');
log.flush();
whenLogStalls(log, 1000, () => process.exit(7));
`;
  // Slow: 16 KiB every 100 ms, for 700 KiB of lines, so more than four seconds in all.
  const slowReader = 'import sys, time\nn = 0\nwhile True:\n    b = sys.stdin.buffer.read1(16384)\n    if not b: break\n    n += b.count(b"\\n")\n    time.sleep(0.1)\nprint(n)';
  const run = (reader: string) => spawnSync('bash', ['-c', `"$0" --input-type=module -e "$1" | ${reader}; echo "status \${PIPESTATUS[0]}"`, process.execPath, script, slowReader], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(run('python3 -c "$2"').stdout, '3000\nstatus 0\n');
  // Stalled: nothing is read for four seconds.
  assert.match(run('(sleep 4; wc -l >/dev/null)').stdout, /^status 7\n$/);
});

test('every string a line holds, at any depth, has C1 controls, separators and the marks that turn text around written as escapes, and a backslash doubled; other text as it is', async () => {
  const r = await run(`
const log = createLogger('info');
log.info({ from: 'a\\u009b31mRED\\u2028\\u202eb@r\\u00e9mote.test', to: ['x\\\\u{202e}y', '\\u0442\\u0435\\u0441\\u0442'], nested: { helo: 'ev\\u202eil' }, n: 3 }, 'line');
log.flush();
`, 'read');
  const line = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual([line.from, line.to, line.nested, line.n], ['a\\u{009b}31mRED\\u{2028}\\u{202e}b@r\u00e9mote.test', ['x\\\\u{202e}y', '\u0442\u0435\u0441\u0442'], { helo: 'ev\\u{202e}il' }, 3]);
});
