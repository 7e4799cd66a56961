#!/usr/bin/env node
// The mailnest command. mailnest runs on Node.js 24 (node:sqlite); the repository pins that Node
// as a dependency, and this file hands over to it when started by an older Node. It runs the
// JavaScript that `npm install` / `npm run build` compiled into dist/, or the TypeScript sources
// directly when dist/ is missing or older than them (never stale code).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

function entry() {
  const built = path.join(root, 'dist', 'cli', 'main.js');
  const stamp = path.join(root, 'dist', '.built');
  try {
    if (fs.statSync(stamp).mtimeMs >= newestMtime(path.join(root, 'src'))) return built;
  } catch { /* not built */ }
  return path.join(root, 'src', 'cli', 'main.ts');
}

/** The command word: the first argument that is neither an option nor the config option's value. */
function command(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-c' || args[i] === '--config') i++;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}

// The server's V8 settings. A semi-space (half the young generation) of at most 8 MiB, where
// V8's default lets a burst of connections grow it to 32 MiB and keeps it: about 16 MiB less
// resident with 10,000 idle connections, and the same throughput (docs/PERFORMANCE.md, "V8's
// young generation is capped at start"). An operator's own setting, on node's command line or
// in NODE_OPTIONS (V8 takes "_" for "-" in its flags' names), is left as it is.
const isSemiSpace = (arg) => arg.replaceAll('_', '-').startsWith('--max-semi-space-size');

function serverFlags(args) {
  if (command(args) !== 'start') return [];
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return given.some(isSemiSpace) ? [] : ['--max-semi-space-size=8'];
}

function runnable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const main = entry();
const args = process.argv.slice(2);
const flags = serverFlags(args);
if (Number(process.versions.node.split('.')[0]) >= 24) {
  // The flags take effect only when the heap is made: the process becomes a Node started with
  // them (same pid, same descriptors). Where that is not possible, it runs without them: Node
  // refuses (no execve on Windows, in a worker, under its permission model), or the binary
  // cannot be run again (a failed execve system call would end the process).
  if (flags.length && typeof process.execve === 'function' && runnable(process.execPath)) {
    try {
      process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, process.argv[1], ...args]);
    } catch { /* not replaced: this process runs the server */ }
  }
  // The server catches stop and reload signals from its first moment (INTERFACE.md: a stop is
  // orderly, exit 0; docs/CLI.md: SIGHUP never stops it), not only once its modules are loaded:
  // until its own handlers are in place (src/cli/start.ts takes these), the signals that come
  // are kept for them.
  if (command(args) === 'start') {
    const early = { signals: [], keep: (signal) => early.signals.push(signal) };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, early.keep);
    globalThis.mailnestEarlySignals = early;
  }
  await import(pathToFileURL(main).href);
} else {
  let node;
  try {
    node = path.join(path.dirname(createRequire(import.meta.url).resolve('node/package.json')), 'bin', 'node');
  } catch {
    process.stderr.write(`mailnest: needs Node.js 24 or later (this is ${process.version}); run "npm install" in ${root} first\n`);
    process.exit(1);
  }
  // The pinned Node gets the server's flags, or the operator's own given to this one.
  const own = process.execArgv.filter(isSemiSpace);
  // The child runs this launcher too, which keeps the signals that come before the server's
  // handlers are in place.
  const child = spawn(node, [...own, ...flags, process.argv[1], ...args], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  // The child's end is ours: its status, or the signal that ended it (this process's own
  // handlers removed first, or the signal would only be passed on again).
  child.on('exit', (code, signal) => {
    if (!signal) process.exit(code ?? 1);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    // A signal Node ignores (SIGPIPE) ends nothing: the shell's status for it, then.
    process.exit(128 + (os.constants.signals[signal] ?? 0));
  });
}
