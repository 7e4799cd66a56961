/** `mailnest token create|list|revoke`: bearer tokens for the HTTP API (only hashes are kept). */
import type { Command } from 'commander';
import { hashToken, newToken, TOKEN_NAME } from '../http/tokens.ts';
import { StoreConflict } from '../store/store.ts';
import { outputIsTheResult, withContext } from './common.ts';
import { CliError, UsageError } from './errors.ts';
import { printTable } from './table.ts';

export function registerToken(program: Command): void {
  const token = program.command('token').description('bearer tokens for the HTTP API');

  token.command('create <name>').description('create a token and print it (shown this once only)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      if (!TOKEN_NAME.test(name)) throw new UsageError(`token name ${JSON.stringify(name)}: use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
      await withContext(cmd, async (ctx) => {
        const value = newToken();
        try {
          await ctx.store.addToken(name, hashToken(value));
        } catch (err) {
          if (err instanceof StoreConflict) throw new CliError(`token ${name} already exists (revoke it first to replace it)`);
          throw err;
        }
        outputIsTheResult(1, `token ${name} was made and not shown: revoke it (mailnest token revoke ${name}) and make it again`);
        process.stdout.write(`${value}\n`);
        if (process.stdout.isTTY) process.stderr.write('mailnest: keep this token now; only its hash is stored and it cannot be shown again\n');
      });
    });

  token.command('list').description('list tokens (names and dates; the tokens themselves are not kept)')
    .option('--json', 'print a JSON array of {name, created, last_used}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const tokens = await ctx.store.listTokens();
        const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(tokens.map((t) => ({ name: t.name, created: iso(t.created), last_used: iso(t.lastUsed) })))}\n`);
        } else {
          printTable(['NAME', 'CREATED', 'LAST USED'], tokens.map((t) => [t.name, iso(t.created)!, iso(t.lastUsed) ?? 'never']), 'no tokens');
        }
      });
    });

  token.command('revoke <name>').description('revoke a token; requests made with it from then on get 401 (one under way is answered)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        if (!(await ctx.store.removeToken(name))) throw new CliError(`no token ${name}`);
        process.stdout.write(`revoked ${name}\n`);
      });
    });
}
