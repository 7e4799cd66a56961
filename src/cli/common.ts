/** Helpers shared by the commands: the config from -c/--config, and the context it opens. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { openContext, type Context } from '../context.ts';
import { createLogger } from '../log.ts';

export function configOf(cmd: Command): Config {
  const opts = cmd.optsWithGlobals() as { config?: string };
  return loadConfig(opts.config);
}

/** A context for a one-shot command: logs only warnings and errors, to stderr. */
export function commandContext(cmd: Command): Context {
  const config = configOf(cmd);
  const log = createLogger('warn', 2);
  return openContext(config, log);
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
