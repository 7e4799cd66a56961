/** `mailnest user add|passwd|remove|list` */
import type { Command } from 'commander';
import { hashPassword } from '../auth/password.ts';
import { splitAddress } from '../delivery/recipients.ts';
import { parseMailbox, plainForm } from '../smtp/address.ts';
import { addressKey, StoreConflict } from '../store/store.ts';
import type { Context } from '../context.ts';
import { withContext } from './common.ts';
import { CliError, UsageError } from './errors.ts';
import { readPassword } from './prompt.ts';
import { printTable } from './table.ts';

/** Said of an address that names no user or alias (`what`): bad usage when it could not name
 *  one, as `add` says; a failure otherwise. One of a domain no longer configured is still found
 *  first, so that it can be removed. */
export function noSuch(ctx: Context, address: string, what: 'user' | 'alias'): never {
  if (what === 'alias') checkAliasName(ctx, address);
  else checkLocalAddress(ctx, address, what);
  throw new CliError(`no ${what} ${address}`);
}

/** The domains whose postmaster reaches someone. */
export async function postmasterDomains(ctx: Context): Promise<string[]> {
  const reached: string[] = [];
  for (const domain of ctx.config.domains) {
    if ((await ctx.recipients.resolve(`postmaster@${domain}`)).kind !== 'unknown') reached.push(domain);
  }
  return reached;
}

/** After a removal: an address whose mail now goes to its domain's catch-all is named, as its
 *  user may now read that mail and send as the address. */
export async function noteCaught(ctx: Context, address: string): Promise<void> {
  const catchAll = await ctx.recipients.caughtBy(address);
  if (catchAll) process.stderr.write(`mailnest: note: mail for ${address} now goes to the catch-all ${catchAll}, whose users may also send as it\n`);
}

/** After a removal: a domain whose postmaster reached someone and now reaches nobody (an alias
 *  of it led through what was removed) is named, as RFC 5321 §4.5.1 wants every domain's
 *  postmaster to take mail. */
export async function notePostmasters(ctx: Context, before: string[]): Promise<void> {
  const after = new Set(await postmasterDomains(ctx));
  for (const domain of before.filter((d) => !after.has(d))) {
    process.stderr.write(`mailnest: note: postmaster@${domain} now reaches nobody, and mail for it is refused; point it at a mailbox (mailnest alias add postmaster@${domain} ADDRESS)\n`);
  }
}

/** A user address must be a plain mailbox in one of the configured domains. */
export function checkLocalAddress(ctx: Context, address: string, what: string): void {
  const parsed = parseMailbox(address);
  if (typeof parsed === 'string' || parsed.domain.startsWith('[')) {
    throw new UsageError(`${what} ${JSON.stringify(address)} is not a valid address (local-part@domain)`);
  }
  if (parsed.local.startsWith('"')) {
    const plain = plainForm(parsed);
    throw new UsageError(plain !== address
      ? `${what} ${address}: write it without the quotes, ${plain}, the same address`
      : `${what} ${address}: a local part that needs quotes is not taken for users and aliases`);
  }
  // Mail for longer ones is taken here, but not by every server that would send it (§4.5.3.1.1).
  const octets = Buffer.byteLength(parsed.local);
  if (octets > 64) throw new UsageError(`${what} ${address}: its local part is ${octets} octets, and RFC 5321 section 4.5.3.1.1 allows 64; other servers may refuse to send mail to it`);
  checkLocalDomain(ctx, address, what);
}

/** An alias's name: an address as checkLocalAddress takes it, or `@domain`, the catch-all of a
 *  configured domain. */
export function checkAliasName(ctx: Context, name: string): void {
  if (!name.startsWith('@')) return checkLocalAddress(ctx, name, 'alias');
  if (name === '@' || name.includes('@', 1)) throw new UsageError(`alias ${JSON.stringify(name)} is neither an address (local-part@domain) nor a catch-all (@domain)`);
  checkLocalDomain(ctx, name, 'alias');
}

/** The address's domain is one of the configured domains. */
function checkLocalDomain(ctx: Context, address: string, what: string): void {
  const { local, domain } = splitAddress(address);
  if (ctx.recipients.isHostName(domain)) {
    const first = ctx.config.domains[0]!;
    throw new UsageError(`${what} ${address}: ${domain} is this machine's own name, not a mail domain; mail to ${local}@${domain} goes to ${local}@${first}, so use that address`);
  }
  if (!ctx.recipients.isLocalDomain(domain)) {
    throw new UsageError(`${what} ${address}: ${domain} is not one of the configured domains (${ctx.config.domains.join(', ')}); add it to "domains" in the config`);
  }
}

function isAlias(address: string): CliError {
  return new CliError(`${address} is an alias; remove it first (mailnest alias remove ${address})`);
}

export function registerUser(program: Command): void {
  const user = program.command('user').description('manage mailboxes');

  user.command('add <address>').description('create a mailbox')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action(async (address: string, opts: { passwordStdin?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        checkLocalAddress(ctx, address, 'user');
        // Said before a password is asked for. (A user wins over an alias of its address, so
        // the alias would go quiet.)
        if (await ctx.store.findUser(address)) throw new CliError(`user ${address} already exists`);
        if (await ctx.store.findAlias(address)) throw isAlias(address);
        const password = await readPassword(!!opts.passwordStdin);
        try {
          await ctx.store.createUser(address, await hashPassword(password));
        } catch (err) {
          if (err instanceof StoreConflict) throw err.kind === 'alias' ? isAlias(address) : new CliError(`user ${address} already exists`);
          throw err;
        }
        process.stdout.write(`created ${address}\n`);
      });
    });

  user.command('passwd <address>').description("change a user's password")
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action(async (address: string, opts: { passwordStdin?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        if (!(await ctx.store.findUser(address))) noSuch(ctx, address, 'user');
        const password = await readPassword(!!opts.passwordStdin);
        await ctx.store.setPassword(address, await hashPassword(password));
        process.stdout.write(`password changed for ${address}\n`);
      });
    });

  user.command('remove <address>').description('remove a user and all of its mail')
    .action(async (address: string, _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const postmasters = await postmasterDomains(ctx);
        if (!(await ctx.store.removeUser(address))) noSuch(ctx, address, 'user');
        process.stdout.write(`removed ${address}\n`);
        // Aliases are kept (a user of that address may come back), but their mail for it now
        // meets "no such user": say which.
        const key = addressKey(address);
        for (const a of await ctx.store.listAliases()) {
          if (a.targets.some((t) => addressKey(t) === key)) {
            process.stderr.write(`mailnest: note: alias ${a.alias} still names ${address}; remove or change it (mailnest alias remove ${a.alias})\n`);
          }
        }
        await noteCaught(ctx, address);
        await notePostmasters(ctx, postmasters);
      });
    });

  user.command('list').description('list users with their message count and bytes used')
    .option('--json', 'print a JSON array of {address, messages, bytes}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const users = await ctx.store.listUsers();
        if (opts.json) process.stdout.write(`${JSON.stringify(users)}\n`);
        else printTable(['ADDRESS', 'MESSAGES', 'BYTES'], users.map((u) => [u.address, String(u.messages), String(u.bytes)]), 'no users');
      });
    });
}
