/** Helpers shared by the commands: the config from -c/--config, and the context it opens. */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { openContext, type Context } from '../context.ts';
import { createLogger } from '../log.ts';
import { ServerLock } from '../store/server-lock.ts';
import { CliError } from './errors.ts';

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
  return openContext(config, log, {
    // The schema is brought up to date by whoever opens the database first; under a server of
    // the version before, which knows only the old one, every mail operation would then fail.
    onMigrate: (from, to) => {
      const pid = ServerLock.holder(config.data_dir);
      if (pid === undefined) return;
      throw new CliError(`the database in ${config.data_dir} has schema ${from} and this mailnest needs ${to}, but a mailnest server of the version before still runs on it${pid > 0 ? ` (pid ${pid})` : ''}: stop it and start this version's server (which brings the database up to date), then run this command again`);
    },
  });
}

/**
 * A command that root runs on a data_dir another user owns (a cron job's `sendmail`, `sudo
 * mailnest user add`) becomes that user before it touches it. What it writes there is then that
 * user's, as the server, running as that user, needs to read it; and nothing that user can put
 * in data_dir (a symbolic link named `bodies` pointing at /etc/cron.d, say), or in its place,
 * makes root write, or give away, a file elsewhere. Whatever the command reads of root's own (an
 * attachment) it reads before. A data_dir that is root's all the way, or not there yet, is left
 * as it is.
 */
export function asDataDirOwner(dataDir: string): void {
  const owner = dataDirOwner(dataDir);
  if (owner === undefined) return;
  takeGroups(owner);
  process.setgid?.(owner.gid);
  process.setuid?.(owner.uid);
}

/** Runs `fn` as `owner` (when given) for the file system, then root again: for what root must do
 *  before it writes a file of its own, as `init` makes data_dir before the config file. */
export function asEffectively<T>(owner: DataDirOwner | undefined, fn: () => T): T {
  if (owner === undefined || !process.seteuid || !process.setegid || !process.getgroups || !process.setgroups) return fn();
  const groups = process.getgroups();
  takeGroups(owner);
  process.setegid(owner.gid);
  process.seteuid(owner.uid);
  try {
    return fn();
  } finally {
    process.seteuid(0);
    process.setegid(0);
    process.setgroups(groups);
  }
}

/** The user's own groups, as its login has them: none of root's stays (a data_dir given to the
 *  user alone, `chown mailnest`, is still in group root). (Node's process.initgroups, which its
 *  type declarations leave out.) */
function takeGroups(owner: DataDirOwner): void {
  const proc = process as NodeJS.Process & { initgroups?: (user: string, extraGroup: number) => void };
  if (owner.name !== undefined && proc.initgroups) proc.initgroups(owner.name, owner.gid);
  else process.setgroups?.([owner.gid]);
}

type DataDirOwner = { uid: number; gid: number; name?: string };

/** nogroup: the group of a user without an entry in /etc/passwd whose directory is root's group. */
const NOGROUP = 65534;

/**
 * For root: the user other than root that data_dir's path belongs to (see asDataDirOwner), with
 * its primary group and name when /etc/passwd has it (else the group of what it owns there,
 * unless that is root's), if any; undefined for everyone else. A path with parts of two such
 * users is refused.
 */
export function dataDirOwner(dataDir: string): DataDirOwner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const owners = ownersOnTheWay(dataDir);
  if (owners.size === 0) return undefined;
  if (owners.size > 1) {
    throw new CliError(`data_dir ${dataDir}: its path has parts of more than one user (uids ${[...owners.keys()].join(', ')}); make the directories above it root's, and data_dir the server's user's`);
  }
  const [[uid, gid]] = owners;
  const entry = passwdEntry(uid);
  return entry ? { uid, gid: entry.gid, name: entry.name } : { uid, gid: gid === 0 ? NOGROUP : gid };
}

/** A user's name and primary group from /etc/passwd, if it has an entry there. */
function passwdEntry(uid: number): { name: string; gid: number } | undefined {
  try {
    const fields = fs.readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[2] === String(uid));
    return fields && /^\d+$/.test(fields[3] ?? '') ? { name: fields[0]!, gid: Number(fields[3]) } : undefined;
  } catch {
    return undefined;
  }
}

/** A user's name from /etc/passwd, if it has one there. */
export function userName(uid: number): string | undefined {
  return passwdEntry(uid)?.name;
}

/**
 * The users other than root who own data_dir or a directory or link on the way to it, as written
 * and as the links lead, with the group of what they own: any of them could put something else
 * in its place.
 */
function ownersOnTheWay(dataDir: string): Map<number, number> {
  const owners = new Map<number, number>();
  const look = (dir: string) => {
    const parts = path.resolve(dir).split(path.sep);
    for (let i = 1; i <= parts.length; i++) {
      let stat: fs.Stats;
      try {
        stat = fs.lstatSync(parts.slice(0, i).join(path.sep) || path.sep);
      } catch {
        return;
      }
      if (stat.uid !== 0 && !owners.has(stat.uid)) owners.set(stat.uid, stat.gid);
    }
  };
  look(dataDir);
  try {
    look(fs.realpathSync(dataDir));
  } catch {
    // not there (yet)
  }
  return owners;
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

/** The status for output a reader closed before it was written whole (EPIPE): 0 while the output
 *  is a listing a reader may stop reading (`| head -1`); see outputIsTheResult. */
export let closedOutputStatus = 0;
/** What to do about it, said with the failure. */
export let closedOutputAdvice = '';

/** For a command whose output is its result (a token shown once, an SMTP dialogue): output its
 *  reader closed is then a failure, with `status`, and `advice`. */
export function outputIsTheResult(status = 1, advice = ''): void {
  closedOutputStatus = status;
  closedOutputAdvice = advice;
}

/** Reads the first line of stdin (for --password-stdin). */
export async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if ((c as Buffer).includes(10)) break;
  }
  // The line's end is LF, CRLF, or the input's end, before which a CR is a line end too
  // (`printf 'secret\r'`), never part of a password.
  return (Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '').replace(/\r$/, '');
}
