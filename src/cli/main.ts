/**
 * The mailnest command line. Each command lives in its own file and only parses its
 * arguments before calling into the rest. Exit status: 0 success, 1 failure, 2 bad usage.
 *
 * A script pays a command's start-up on every mail it sends, so what one command alone needs
 * (the server for `start`, the composer for `send`, ...) is imported in its action, not here:
 * see docs/PERFORMANCE.md, "Command start-up".
 */
import fs from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { closedOutputAdvice, closedOutputStatus } from './common.ts';
import { CliError, failureText, UsageError } from './errors.ts';
import { registerStart } from './start.ts';
import { registerInit } from './init.ts';
import { registerUser } from './user.ts';
import { registerAlias } from './alias.ts';
import { registerQueue } from './queue.ts';
import { registerDns } from './dns.ts';
import { registerSend } from './send.ts';
import { earlyUsageStatus, registerSendmail } from './sendmail.ts';
import { registerToken } from './token.ts';

const program = new Command('mailnest')
  .description('a complete personal mail server')
  .addOption(new Option('-c, --config <file>', 'configuration file (default: $MAILNEST_CONFIG, else ./mailnest.toml when it exists, else the built-in defaults)')
    // `-c "$CONF"` with CONF unset must not fall back to the defaults and a stray ./data.
    .argParser((file: string) => {
      if (file === '') throw new InvalidArgumentError('an empty file name; give the path of the config file');
      return file;
    }))
  .option('--verbose', 'show stack traces on errors')
  // No -V: options are read after the command too, and `sendmail -V ENVID` printed the version
  // and dropped the message.
  .version(JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version, '--version')
  // Bad usage is one line (the help is a --help away), like every other error.
  .configureOutput({ outputError: (text, write) => write(`mailnest: ${text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')} (see --help)\n`) })
  .exitOverride()
  .enablePositionalOptions(false);

for (const register of [registerStart, registerInit, registerUser, registerAlias, registerQueue, registerDns, registerSend, registerSendmail, registerToken]) register(program);

function verbose(): boolean {
  return process.argv.includes('--verbose');
}

// What mailnest writes (the database, bodies, keys) is for its own user alone.
process.umask(0o077);

// A reader that has read enough of a listing (`| head -1`, `| grep -q`) closes the pipe: the
// rest of the output goes nowhere, and that is no failure; for a command whose output is its
// result it is (see outputIsTheResult). Output that cannot be written at all (`>> log` on a full
// disk) is one, said in a line; what the command did before is done.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE' && closedOutputStatus === 0) process.exit(0);
  const advice = err.code === 'EPIPE' && closedOutputAdvice ? `; ${closedOutputAdvice}` : '';
  process.stderr.write(`mailnest: its output could not be written: ${err.code === 'EPIPE' ? 'its reader closed it (EPIPE)' : err.code ?? err.message}${advice}\n`);
  process.exit(err.code === 'EPIPE' ? closedOutputStatus : 1);
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version print and exit 0; every other parse problem is bad usage.
    process.exitCode = err.exitCode === 0 ? 0 : earlyUsageStatus();
  } else if (err instanceof UsageError) {
    process.stderr.write(`mailnest: ${err.message}\n`);
    process.exitCode = 2;
  } else if (err instanceof CliError || !verbose()) {
    process.stderr.write(`mailnest: ${failureText(err).split('\n')[0]}\n`);
    if (verbose() && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 1;
  } else {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
