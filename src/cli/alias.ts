/** `mailnest alias add|remove|list` */
import type { Command } from 'commander';
import { MAX_ALIAS_DEPTH } from '../delivery/recipients.ts';
import { parseMailbox, plainForm } from '../smtp/address.ts';
import { StoreConflict } from '../store/store.ts';
import type { Context } from '../context.ts';
import { withContext } from './common.ts';
import { CliError, UsageError } from './errors.ts';
import { checkAliasName, noSuch, noteCaught, notePostmasters, postmasterDomains } from './user.ts';
import { printTable } from './table.ts';

function isUser(name: string): CliError {
  // A user wins over an alias of its address: such an alias would never be used.
  return new CliError(`${name} is a user; an alias of that address would never be used`);
}

/** Refuses an alias that would name a user, or lead to a loop or too deep. */
async function refuseBadAlias(ctx: Context, name: string, targets: string[]): Promise<void> {
  if (await ctx.store.findUser(name)) throw isUser(name);
  const refusal = await ctx.recipients.refusalOfTargets(name, targets);
  if (refusal?.why === 'loop') {
    // A catch-all's own domain: a target there that nobody has yet is caught by it again.
    const first = name.startsWith('@') ? `; an address at ${name.slice(1)} that is no user or alias yet is caught by ${name} itself: add it first` : '';
    throw new CliError(`${name} -> ${targets.join(', ')} would make a loop: its aliases would lead back to themselves and its mail to nobody${first}`);
  }
  if (refusal) {
    const whose = refusal.by ? `: ${refusal.by}, which leads to ${name},` : '';
    throw new CliError(`${name} -> ${targets.join(', ')}${whose} would lead through more than ${MAX_ALIAS_DEPTH} aliases, and no more are followed: its mail would go to nobody; point it nearer the mailboxes`);
  }
}

export function registerAlias(program: Command): void {
  const alias = program.command('alias').description('local aliases and simple lists (targets may be local or remote)');

  alias.command('add <alias> <targets...>').description('create an alias, or add targets to it; @domain is the catch-all of a domain')
    .action(async (name: string, given: string[], _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        checkAliasName(ctx, name);
        // Kept in their plainest form: "bob"@example.com is bob@example.com, as SMTP reads it.
        const targets = given.map((t) => {
          const parsed = parseMailbox(t);
          if (typeof parsed === 'string') throw new UsageError(`target ${JSON.stringify(t)} is not a valid address`);
          return plainForm(parsed);
        });
        // Checked against the users and aliases as they are, and added only if they are still so;
        // else checked again. (Each time, another command has made its change: this ends.)
        for (;;) {
          const seen = await ctx.store.directoryVersion();
          await refuseBadAlias(ctx, name, targets);
          try {
            await ctx.store.addAlias(name, targets, seen);
            break;
          } catch (err) {
            if (!(err instanceof StoreConflict)) throw err;
            if (err.kind === 'user') throw isUser(name);
          }
        }
        process.stdout.write(`${name} -> ${targets.join(', ')}\n`);
        // A target may be a user to come (or a typing error); until then, say what its mail meets.
        for (const t of targets) {
          const catchAll = await ctx.recipients.caughtBy(t);
          if (catchAll) process.stderr.write(`mailnest: note: ${t} is no user or alias yet; mail for it through ${name} goes to the catch-all ${catchAll} until it is\n`);
          else if ((await ctx.recipients.resolve(t)).kind === 'unknown') process.stderr.write(`mailnest: note: ${t} is no user or alias yet; mail for it through ${name} is refused until it is\n`);
        }
      });
    });

  alias.command('remove <alias>').description('remove an alias')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const postmasters = await postmasterDomains(ctx);
        if (!(await ctx.store.removeAlias(name))) noSuch(ctx, name, 'alias');
        process.stdout.write(`removed ${name}\n`);
        await noteCaught(ctx, name);
        await notePostmasters(ctx, postmasters);
      });
    });

  alias.command('list').description('list aliases')
    .option('--json', 'print a JSON array of {alias, targets}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const aliases = await ctx.store.listAliases();
        if (opts.json) process.stdout.write(`${JSON.stringify(aliases)}\n`);
        else printTable(['ALIAS', 'TARGETS'], aliases.map((a) => [a.alias, a.targets.join(', ')]), 'no aliases');
      });
    });
}
