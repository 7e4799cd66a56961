/** Helpers shared by the commands: the config from -c/--config, and the context it opens. */
import fs from 'node:fs';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { openContext, type Context } from '../context.ts';
import { createLogger } from '../log.ts';

export function configOf(cmd: Command): Config {
  const opts = cmd.optsWithGlobals() as { config?: string };
  return loadConfig(opts.config);
}

/** A context for a one-shot command: logs only warnings and errors, to stderr. It runs as the
 *  owner of data_dir from here on (see asDataDirOwner). */
export function commandContext(cmd: Command): Context {
  const config = configOf(cmd);
  asDataDirOwner(config.data_dir);
  const log = createLogger('warn', 2);
  return openContext(config, log);
}

/**
 * A command that root runs on a data_dir another user owns (a cron job's `sendmail`, `sudo
 * mailnest user add`) becomes that user before it touches it. What it writes there is then that
 * user's, as the server, running as that user, needs to read it; and nothing that user can put
 * in data_dir (a symbolic link named `bodies` pointing at /etc/cron.d, say) makes root write,
 * or give away, a file elsewhere. Whatever the command reads of root's own (an attachment) it
 * reads before. A data_dir that is root's, or not there yet, is left as it is.
 */
export function asDataDirOwner(dataDir: string): void {
  if (process.getuid?.() !== 0) return;
  let owner: fs.Stats;
  try {
    owner = fs.statSync(dataDir);
  } catch {
    return;
  }
  if (owner.uid === 0) return;
  process.setgroups?.([owner.gid]);
  process.setgid?.(owner.gid);
  process.setuid?.(owner.uid);
}

/** Runs `fn` with a command context and closes the store afterwards. */
export async function withContext<T>(cmd: Command, fn: (ctx: Context) => Promise<T>): Promise<T> {
  const ctx = commandContext(cmd);
  try {
    return await fn(ctx);
  } finally {
    ctx.store.close();
  }
}

/** Reads the first line of stdin (for --password-stdin). */
export async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if ((c as Buffer).includes(10)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/** Reads the whole of stdin. */
export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
