/**
 * How long a mailnest command takes from its start to its exit, as a cron job or a script runs it
 * (`bin/mailnest.js`, the compiled dist/): `--version`, `user list`, `queue list`, `sendmail` of
 * a short message and `send` of one, on a data directory with one user. Each command runs ROUNDS
 * times; with --against DIR (another checkout, built, its node_modules in place) the two take
 * turns, so that both meet the same machine. Prints the median wall time of each.
 *
 *   node_modules/.bin/node bench/cli-start.ts [--rounds N] [--against DIR]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildMailnest } from './build.ts';

const { values: opt } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, against: { type: 'string' } } });
const ROUNDS = Number(opt.rounds);
const here = path.resolve(import.meta.dirname, '..');
const roots = opt.against ? [path.resolve(opt.against), here] : [here];

buildMailnest();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-cli-start-'));
const config = path.join(dir, 'mailnest.toml');
// Without Node's compile cache, as an install runs, even where the shell that starts this sets one.
const env = { ...process.env };
delete env.NODE_COMPILE_CACHE;

function run(root: string, args: string[], input = ''): { ms: number; status: number | null; stderr: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [path.join(root, 'bin/mailnest.js'), ...args], { input, encoding: 'utf8', env });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: r.status, stderr: r.stderr };
}

try {
  const init = run(here, ['-c', config, 'init', '--hostname', 'mx.example.test', '--domain', 'example.test']);
  if (init.status !== 0) throw new Error(`init failed: ${init.stderr}`);
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace(/^data_dir = .*$/m, `data_dir = ${JSON.stringify(path.join(dir, 'data'))}`));
  const add = run(here, ['-c', config, 'user', 'add', 'me@example.test', '--password-stdin'], 'a-password\n');
  if (add.status !== 0) throw new Error(`user add failed: ${add.stderr}`);

  const commands: { name: string; args: string[]; input?: string }[] = [
    { name: '--version', args: ['--version'] },
    { name: 'user list', args: ['-c', config, 'user', 'list'] },
    { name: 'queue list', args: ['-c', config, 'queue', 'list'] },
    { name: 'sendmail', args: ['-c', config, 'sendmail', 'me@example.test'], input: 'Subject: backup done\n\nall well\n' },
    { name: 'send', args: ['-c', config, 'send', '--to', 'me@example.test', '--subject', 'backup done', '--text', 'all well'] },
  ];
  process.stdout.write(`mailnest command start-up, ${ROUNDS} rounds, median wall time; ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  process.stdout.write(`| command | ${roots.join(' | ')} |\n|---|${roots.map(() => '---:').join('|')}|\n`);
  for (const c of commands) {
    const times = roots.map(() => [] as number[]);
    for (let i = 0; i < ROUNDS; i++) {
      roots.forEach((root, k) => {
        const r = run(root, c.args, c.input);
        if (r.status !== 0) throw new Error(`${c.name} failed in ${root}: ${r.stderr}`);
        times[k]!.push(r.ms);
      });
    }
    const medians = times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
    process.stdout.write(`| ${c.name} | ${medians.map((m) => `${m.toFixed(0)} ms`).join(' | ')} |\n`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
