/**
 * `mailnest sendmail`: the /usr/sbin/sendmail interface, as cron, logwatch, smartd, mail(1) and
 * PHP's mail() call it. The message comes on stdin; the options are sendmail's own, parsed here
 * (not by commander) so that sendmail's conventions hold: bundled flags (-ti), attached values
 * (-fuser, -FName, -oi), "--" before recipients, and the flags other programs pass by habit
 * (-odi, -oem, -bm, -B8BITMIME, -N, -R, -V, -v ...) accepted and ignored. With -bs it speaks SMTP
 * on stdin and stdout instead (as PHP mailers call it), trusted as the command is.
 *
 * Exit status is mailnest's own (0 queued, 1 failure, 2 bad usage) unless `--sysexits` asks for
 * sendmail's, from sysexits.h, as the wrapper installed as /usr/sbin/sendmail does: 0 queued,
 * 64 EX_USAGE, 65 EX_DATAERR, 67 EX_NOUSER, 70 EX_SOFTWARE, 74 EX_IOERR, 75 EX_TEMPFAIL, 77 EX_NOPERM,
 * 78 EX_CONFIG. The command works out the sysexits.h status and reads it as 0/1/2 when not asked.
 */
import os from 'node:os';
import type { Command } from 'commander';
import { ConfigError } from '../config/load.ts';
import type { Context } from '../context.ts';
import { submitLocal, SubmitError } from '../delivery/submit.ts';
import { FreeSpace } from '../store/free-space.ts';
import { isStorageFull } from '../store/store.ts';
import { RE_ENCODING } from '../mime/line-length.ts';
import { commandContext, outputIsTheResult } from './common.ts';
import { CliError, failureText } from './errors.ts';
import { readLimited, TooLarge } from './read-limited.ts';

export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOUSER = 67;
export const EX_SOFTWARE = 70;
export const EX_IOERR = 74;
export const EX_TEMPFAIL = 75;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

/** mailnest's option that keeps the sysexits.h statuses (see the file's comment). */
const SYSEXITS = '--sysexits';

/** The status the command exits with for a sysexits.h one: itself with `--sysexits`, else the
 *  0/1/2 of every mailnest command (EX_USAGE is bad usage, 2; any other failure 1). */
function exitStatus(sysexit: number, sysexits: boolean): number {
  if (sysexits || sysexit === 0) return sysexit;
  return sysexit === EX_USAGE ? 2 : 1;
}

export interface SendmailArgs {
  extractRecipients: boolean;
  ignoreDots: boolean;
  sender?: string;
  fullName?: string;
  recipients: string[];
  /** -bi (newaliases): nothing to do. */
  noop: boolean;
  /** -bs: SMTP on stdin and stdout. */
  smtp?: boolean;
  /** --help: print the command's help, queue nothing. */
  help?: boolean;
  /** --sysexits: exit statuses from sysexits.h. */
  sysexits: boolean;
}

/** Flags without a value, accepted and ignored (or meaningful, for t and i). */
const BOOLEAN_FLAGS = new Set(['t', 'i', 'I', 'v', 'm', 'n', 'U', 'G', 'x']);
/** Flags that take a value (attached or as the next argument). */
const VALUE_FLAGS = new Set(['f', 'r', 'F', 'o', 'O', 'b', 'B', 'N', 'R', 'V', 'X', 'C', 'L', 'h', 'd', 'q', 'p', 'A', 'e']);

export class SendmailUsage extends CliError {
  /** Whether the arguments asked for sysexits.h statuses, read past the problem. */
  sysexits = false;
  constructor(message: string) {
    super(message, EX_USAGE);
  }
}

/** Parses sendmail's arguments; throws SendmailUsage, for the first problem, once all are read
 *  (so that it knows whether they ask for sysexits.h statuses). */
export function parseSendmailArgs(argv: string[]): SendmailArgs {
  const a: SendmailArgs = { extractRecipients: false, ignoreDots: false, recipients: [], noop: false, sysexits: false };
  let problem: SendmailUsage | undefined;
  const at = { k: 0 };
  for (; at.k < argv.length; at.k++) {
    try {
      if (!readArg(argv, at, a)) break;
    } catch (err) {
      if (!(err instanceof SendmailUsage)) throw err;
      problem ??= err;
    }
  }
  if (problem) {
    problem.sysexits = a.sysexits;
    throw problem;
  }
  return a;
}

/** Reads the argument at `at.k` (and the value after it, moving `at.k`) into `a`; false at "--",
 *  after which all are recipients. */
function readArg(argv: string[], at: { k: number }, a: SendmailArgs): boolean {
  const arg = argv[at.k]!;
  if (arg === '--') {
    a.recipients.push(...argv.slice(at.k + 1));
    return false;
  }
  // mailnest's own options: -c/--config FILE and --verbose, which commander has already taken
  // (and the command refuses after "sendmail"), and --sysexits
  if (arg === '-c' || arg === '--config') {
    at.k++;
    return true;
  }
  if (arg === SYSEXITS) {
    a.sysexits = true;
    return true;
  }
  if (arg === '--verbose' || arg.startsWith('--config=')) return true;
  if (arg === '--help') {
    a.help = true;
    return true;
  }
  if (!arg.startsWith('-') || arg === '-') {
    a.recipients.push(arg);
    return true;
  }
  if (arg.startsWith('--')) throw new SendmailUsage(`unknown option ${arg}`);
  // Postfix's request for SMTPUTF8: mailnest asks the next hop for it whenever an address needs it.
  if (arg === '-SMTPUTF8') return true;
  for (let j = 1; j < arg.length; j++) {
    const flag = arg[j]!;
    if (BOOLEAN_FLAGS.has(flag)) {
      if (flag === 't') a.extractRecipients = true;
      if (flag === 'i') a.ignoreDots = true;
      if (flag === 'I') a.noop = true; // -I is -bi
      continue;
    }
    if (!VALUE_FLAGS.has(flag)) throw new SendmailUsage(`unknown option -${flag}`);
    let value = arg.slice(j + 1);
    // -q alone (run the queue) has an optional value; every other flag needs one.
    if (value === '' && flag !== 'q') {
      if (at.k + 1 >= argv.length) throw new SendmailUsage(`option -${flag} needs a value`);
      value = argv[++at.k]!;
    }
    applyValueFlag(a, flag, value);
    break;
  }
  return true;
}

function applyValueFlag(a: SendmailArgs, flag: string, value: string): void {
  switch (flag) {
    case 'f':
    case 'r': // -r is the old name of -f
      a.sender = value;
      return;
    case 'F':
      a.fullName = value;
      return;
    case 'o': // -oi is -i; the other -o options (-oem, -odi, -oQ ...) do not apply
      if (value === 'i') a.ignoreDots = true;
      return;
    case 'O':
      if (/^IgnoreDots(=(true|t|yes|y|1))?$/i.test(value)) a.ignoreDots = true;
      return;
    case 'b':
      if (value === 'm') return;
      if (value === 'i') {
        a.noop = true; // newaliases: aliases live in the store, there is nothing to rebuild
        return;
      }
      if (value === 's') {
        a.smtp = true;
        return;
      }
      throw new SendmailUsage(value === 'p'
        ? '-bp (list the queue) is not supported here: use "mailnest queue list"'
        : value === 'd'
          ? '-bd (run as a daemon) is not supported here: the server is "mailnest start"'
          : `-b${value} is not supported (only -bm, the default, -bs and -bi)`);
    case 'q':
      throw new SendmailUsage('-q (run the queue) is not supported here: the running server delivers the queue; use "mailnest queue retry --all"');
    default:
      return; // -B, -N, -R, -V, -X, -C, -L, -h, -d, -p, -A, -e (-ep, -em ...): accepted, no effect
  }
}

/** The raw command line: the command word (the first argument that is neither one of
 *  mailnest's own options nor -c/--config's value), what follows it, and the -c given before it. */
function rawArgs(): { command: string | undefined; args: string[]; configBefore: string | undefined } {
  const args = process.argv.slice(2);
  let configBefore: string | undefined;
  let k = 0;
  for (; k < args.length && args[k]!.startsWith('-'); k++) {
    const arg = args[k]!;
    if (arg === '-c' || arg === '--config') configBefore = args[++k];
    else if (arg.startsWith('--config=')) configBefore = arg.slice('--config='.length);
    else if (/^-c./.test(arg)) configBefore = arg.slice(2);
  }
  return { command: args[k], args: args.slice(k + 1), configBefore };
}

/** The status of bad usage that the command line's parser finds before any command runs (an
 *  empty -c, as `-c "$CONF"` with CONF unset): EX_USAGE for `sendmail --sysexits`, else 2. */
export function earlyUsageStatus(): number {
  const { command, args } = rawArgs();
  if (command !== 'sendmail') return 2;
  try {
    return parseSendmailArgs(args).sysexits ? EX_USAGE : 2;
  } catch (err) {
    return err instanceof SendmailUsage && err.sysexits ? EX_USAGE : 2;
  }
}

/** The caller's login name (the user sudo ran us for, when run through a sudo rule). */
function loginName(): string {
  if (process.env.SUDO_USER && /^[A-Za-z0-9._-]+$/.test(process.env.SUDO_USER)) return process.env.SUDO_USER;
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'nobody';
  }
}

const FLAGS_HELP = `
Flags (bundled as -ti, values attached as -fme@example.com or apart):
  -t          recipients from the To, Cc and Bcc fields too
  -i, -oi     a line with a single "." does not end the message
  -f ADDR     envelope sender (also -r); -f '<>' is the null sender
  -F NAME     the full name for a From field that has to be added
  -bs         SMTP on stdin and stdout (no AUTH: the command is trusted)
  -bi, -I     newaliases: nothing to do
  --          the rest are recipients
  --sysexits  exit statuses from sysexits.h, as /usr/sbin/sendmail's callers expect (below)
Accepted and ignored: -SMTPUTF8 -oem -odi -odb -oQ... -B TYPE -N DSN -R RET -V ENVID -v -m -n -U -G -e -x
  -X FILE -C FILE -L TAG -h N -d X -p PROTO -A c|m

Exit status: 0 queued, 1 failure, 2 bad usage; with --sysexits 0 queued, 64 usage, 65 bad
message, 67 unknown local recipient, 70 internal error, 75 try again later, 77 no permission,
78 bad configuration.
`;

export function registerSendmail(program: Command): void {
  program.command('sendmail')
    .description('the /usr/sbin/sendmail interface: read a message on stdin and queue it (-t: recipients from the headers; -i: a lone "." does not end the message; -f FROM; -F NAME); --sysexits: exit statuses per sysexits.h')
    .helpOption(false)
    .addHelpText('after', FLAGS_HELP)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[options-and-recipients...]')
    .action(async (_args: string[], _opts: unknown, cmd: Command) => {
      let sysexits = false;
      try {
        const raw = rawArgs();
        let args: SendmailArgs | undefined;
        let problem: SendmailUsage | undefined;
        try {
          args = parseSendmailArgs(raw.args);
        } catch (err) {
          if (!(err instanceof SendmailUsage)) throw err;
          problem = err;
        }
        sysexits = args?.sysexits ?? problem!.sysexits;
        // The configuration file is the one named before "sendmail", which a sudo rule that
        // lets a user run this command alone pins (SENDING.md): one named after it would let
        // that user choose another file, and the settings the server's user then runs with.
        if ((cmd.optsWithGlobals() as { config?: string }).config !== raw.configBefore) {
          throw new SendmailUsage('-c/--config is taken before "sendmail" only: mailnest -c FILE sendmail ...');
        }
        if (problem) throw problem;
        await run(args!, cmd);
      } catch (err) {
        // sysexits is known by now: the arguments are read first, past any problem in them.
        if (!(err instanceof CliError)) throw err;
        const read = new CliError(err.message, exitStatus(err.exitCode, sysexits));
        read.stack = err.stack;
        throw read;
      }
    });
}

/** The command; a failure is a CliError with its sysexits.h status. */
async function run(args: SendmailArgs, cmd: Command): Promise<void> {
  if (args.help) {
    cmd.outputHelp();
    return;
  }
  // Before the context: from there on the command may run as data_dir's owner.
  const caller = loginName();
  let ctx: Context;
  try {
    ctx = commandContext(cmd);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EX_CONFIG);
    // Not allowed is not a passing trouble (EX_NOPERM); the rest may be (a locked store).
    const denied = ['EACCES', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '');
    // A full disk is said as every command says it.
    throw new CliError(isStorageFull(err) ? failureText(err) : `cannot open the store: ${failureText(err)}`, denied ? EX_NOPERM : EX_TEMPFAIL);
  }
  try {
    if (args.noop) return;
    if (args.smtp) {
      if (args.recipients.length > 0) throw new SendmailUsage('-bs takes its recipients from RCPT TO, not as arguments');
      // The dialogue is the result: a caller gone from it is a failure (EX_IOERR).
      outputIsTheResult(exitStatus(EX_IOERR, args.sysexits), 'the SMTP dialogue was cut off; what it answered with 250 is queued');
      return await smtpOnStdio(ctx, caller);
    }
    const id = await sendmail(ctx, args, caller);
    if (process.stdout.isTTY) process.stdout.write(`${id}\n`);
  } catch (err) {
    if (err instanceof CliError) throw err;
    // anything unforeseen is still a status of this command's own (EX_SOFTWARE), never an exception
    const wrapped = new CliError(`internal error: ${err instanceof Error ? err.message : String(err)}`, EX_SOFTWARE);
    if (err instanceof Error && err.stack) wrapped.stack = err.stack;
    throw wrapped;
  } finally {
    ctx.store.close();
  }
}

/**
 * -bs: one SMTP session on stdin and stdout, as Postfix's sendmail -bs runs its smtpd. Whoever
 * may run this command may queue any message with it, so the session asks for no AUTH and takes
 * any sender and recipient; what it takes is completed as submitted mail is (From, Date,
 * Message-ID, no Bcc) and signed when it leaves.
 */
async function smtpOnStdio(ctx: Context, caller: string): Promise<void> {
  const [{ smtpHandler }, { AuthThrottle }, { runStdioSession }] = await Promise.all([
    import('../smtp/handler.ts'), import('../auth/throttle.ts'), import('../net/stdio-session.ts'),
  ]);
  const freeSpace = new FreeSpace(ctx.config.data_dir);
  try {
    const handler = smtpHandler(ctx, 'local', new AuthThrottle(ctx.config.auth.max_failures), freeSpace, { caller: { login: caller } });
    const session = handler.createSession({ remoteAddress: '' });
    try {
      await runStdioSession({ session, perform: (e, s) => handler.perform(e, s), input: process.stdin, output: process.stdout, idleMs: ctx.config.limits.idle_timeout, lineEndsAsWritten: true });
    } finally {
      // A "delivered" report that follows a 250 is queued before the store closes.
      await handler.settled();
    }
    // The input ended, or the idle limit came, with a message begun: say so, or a script would
    // take the exit status for its mail queued. A client that left one with QUIT meant to.
    const { unfinished, outcome } = session.summary();
    if (unfinished && outcome !== 'quit') {
      const where = unfinished === 'MAIL' ? 'after MAIL FROM, before the message' : `in the middle of ${unfinished}`;
      throw new CliError(`the SMTP session ended ${where}: that message was not queued`, EX_DATAERR);
    }
  } finally {
    freeSpace.close();
  }
}

/** `caller`: the login name of whoever ran the command, the default sender. */
async function sendmail(ctx: Context, args: SendmailArgs, caller: string): Promise<string> {
  let input: Buffer;
  try {
    input = await readLimited(ctx.config.limits.max_message_size, !args.ignoreDots);
  } catch (err) {
    if (err instanceof TooLarge) throw new CliError(`message too large: more than ${err.max} bytes on stdin, over limits.max_message_size`, EX_DATAERR);
    throw err;
  }
  const { prepareSubmitted, SubmittedError } = await import('../mime/submitted.ts');
  let prepared;
  try {
    prepared = prepareSubmitted(input, {
      ignoreDots: args.ignoreDots,
      extractRecipients: args.extractRecipients,
      recipients: args.recipients,
      ...(args.sender !== undefined ? { sender: args.sender } : {}),
      ...(args.fullName !== undefined ? { fullName: args.fullName } : {}),
      defaultSender: caller,
      domain: ctx.config.domains[0]!,
      hostname: ctx.config.hostname,
    });
  } catch (err) {
    if (err instanceof SubmittedError) throw new CliError(err.message, err.problem === 'usage' ? EX_USAGE : EX_DATAERR);
    throw err;
  }
  try {
    // What it read and what re-encoding added: the fields and line ends the command added are
    // its own, and not counted.
    const size = input.length + prepared.reencoded;
    return await submitLocal(ctx, { sender: prepared.sender, recipients: prepared.recipients, message: prepared.message, size, protocol: 'local', submitter: caller });
  } catch (err) {
    if (err instanceof SubmitError) {
      const code = err.problem === 'unknown_recipient' ? EX_NOUSER : err.problem === 'no_recipients' ? EX_USAGE : EX_DATAERR;
      // What it read was within the limit: the encoding that made its lines fit took it past.
      if (err.problem === 'too_big' && input.length <= ctx.config.limits.max_message_size) {
        throw new CliError(`${err.message}; ${input.length} bytes were read, and their re-encoding (${RE_ENCODING}) took them past it`, code);
      }
      throw new CliError(err.message, code);
    }
    // The store could not take it now (locked, disk full, ...): the caller may try again later.
    const e = err as { code?: string; message?: string };
    if (isStorageFull(err) || e.code === 'ERR_SQLITE_ERROR' || e.code === 'EIO') throw new CliError(`cannot queue the message now: ${e.message}`, EX_TEMPFAIL);
    throw new CliError(`internal error: ${e.message ?? String(err)}`, EX_SOFTWARE);
  }
}
