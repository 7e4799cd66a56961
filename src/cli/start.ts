/** `mailnest start`: every configured listener in the foreground until SIGINT/SIGTERM; SIGHUP
 *  takes up a renewed certificate. */
import path from 'node:path';
import type { Command } from 'commander';
import { createLogger, whenLogStalls } from '../log.ts';
import { configOf, dataDirOwner, userName } from './common.ts';
import { CliError } from './errors.ts';
import { configPath } from '../config/load.ts';

/** A stop signal repeated within this long is the first one again, not a request to hurry. */
const REPEATED_SIGNAL_MS = 1000;

export function registerStart(program: Command): void {
  program.command('start').description('run the server in the foreground')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configOf(cmd);
      // Root on a data_dir that is another user's (the service's): the files it made there would
      // be root's, and the server, run as that user again, could not open them. The other
      // commands become that user; the server cannot, as it may need root for ports under 1024.
      // Judged as the other commands judge it: data_dir and the directories on the way to it.
      const owner = dataDirOwner(config.data_dir)?.uid;
      if (owner !== undefined) {
        const name = userName(owner);
        const who = name ?? `the user with uid ${owner}`;
        // The file this command read, so that the command given works from anywhere.
        const file = configPath((cmd.optsWithGlobals() as { config?: string }).config);
        const how = name ? `systemd's User=, or runuser -u ${name} -- mailnest${file ? ` -c ${path.resolve(file)}` : ''} start` : 'systemd\'s User=';
        throw new CliError(`data_dir ${config.data_dir} is ${who}'s: start the server as ${who} (${how}), with CAP_NET_BIND_SERVICE for ports under 1024 (see the README's unit), or give data_dir to root if the server is to run as root; as root it would make files there that ${who} cannot open`);
      }
      const log = createLogger(config.log_level);
      // Signals are caught from the start, so one that arrives while listeners open still
      // means an orderly stop. A second one ends the process at once (the default action), but
      // not within a second of the first: that is the same request delivered twice, as Ctrl-C
      // reaches both the server and the npm or launcher process that passes signals on to it.
      let signalled: string | undefined;
      let firstAt = 0;
      let onStop: (() => void) | undefined;
      const onSignal = (signal: NodeJS.Signals) => {
        if (signalled === undefined) {
          signalled = signal;
          firstAt = performance.now();
          onStop?.();
        } else if (performance.now() - firstAt >= REPEATED_SIGNAL_MS) {
          // The lines held go out first (createLogger batches them), unless the log's reader
          // does not take them within half a second.
          let ended = false;
          const end = () => {
            if (ended) return;
            ended = true;
            process.removeAllListeners(signal);
            process.kill(process.pid, signal);
          };
          log.flush(end);
          setTimeout(end, 500);
        }
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      // SIGHUP (certbot's deploy hook, `systemctl reload`) looks for a renewed certificate, as
      // daemons do, where the default action would end the process. One that comes while the
      // server starts is answered once it is up: the files may have changed after it read them.
      let hungUp = false;
      let onHangup = () => { hungUp = true; };
      process.on('SIGHUP', () => onHangup());
      takeEarlySignals();
      const { startServer } = await import('../server.ts');
      const server = await startServer(config, log);
      onHangup = () => {
        log.info({ signal: 'SIGHUP' }, 'looking for a renewed TLS certificate');
        void server.reloadTls().then((changed) => {
          // The files the server started with: a [tls] added to the file since is read at a
          // restart, as every setting is.
          if (!changed) log.info({ signal: 'SIGHUP', cert: server.certFile }, 'TLS certificate unchanged');
        });
      };
      if (hungUp) onHangup();
      log.info({ addresses: server.addresses, data_dir: config.data_dir, hostname: config.hostname, domains: config.domains }, 'listening');
      const lines = Object.entries(server.addresses).map(([kind, addrs]) => `  ${kind.padEnd(12)} ${addrs!.join(', ')}`);
      const file = configPath((cmd.optsWithGlobals() as { config?: string }).config);
      // How to add a mailbox, while there is none to read mail from.
      const users = await Promise.all(config.domains.map((d) => server.ctx.store.firstUser(d)));
      process.stderr.write([
        `mailnest is running for ${config.domains.join(', ')} as ${config.hostname} (config: ${file ?? 'built-in defaults'}, data: ${config.data_dir})`,
        ...lines,
        ...(users.some(Boolean) ? [] : [`add a mailbox with: ${cliCommand(file)} user add you@${config.domains[0]}`]),
        '',
      ].join('\n'));
      await new Promise<void>((resolve, reject) => {
        onStop = () => {
          log.info({ signal: signalled }, 'stopping');
          // A stop that fails at the end (the store's disk gone read-only) is a failure, said
          // in one line.
          server.stop().then(resolve, (err: unknown) => {
            log.flush();
            reject(new CliError(`stopped, but ${(err as Error).message}`));
          });
        };
        if (signalled) onStop();
      });
      log.info('stopped');
      log.flush();
      // Stopped: the process ends once its lines are out, however slow the log's reader, but
      // not later than 2 s after it last took any (the stop must not wait on a pipe nobody reads).
      whenLogStalls(log, 2_000, () => process.exit());
    });
}

/** The signals that came before start's handlers were in place, which bin/mailnest.js kept:
 *  its keeping ends, and each is delivered again, now to those handlers. */
function takeEarlySignals(): void {
  const holder = globalThis as { mailnestEarlySignals?: { signals: NodeJS.Signals[]; keep: (signal: NodeJS.Signals) => void } };
  const early = holder.mailnestEarlySignals;
  if (!early) return;
  delete holder.mailnestEarlySignals;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, early.keep);
  for (const signal of early.signals) process.emit(signal, signal);
}

/**
 * How to run mailnest's commands against this server, from anywhere: `npx mailnest` inside the
 * repository (npm finds the project's own command there; elsewhere it would look for a package
 * of that name on the registry), else the launcher by its path; with the configuration file the
 * server read by its full path (MAILNEST_CONFIG may be the service's alone), unless it is
 * mailnest.toml in the repository, which the command finds there too.
 */
function cliCommand(file: string | undefined): string {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const inRoot = path.resolve(process.cwd()) === root;
  const base = inRoot ? 'npx mailnest' : `node ${shellWord(path.join(root, 'bin', 'mailnest.js'))}`;
  return file && !(inRoot && file === 'mailnest.toml') ? `${base} -c ${shellWord(path.resolve(file))}` : base;
}

/** A path as a shell reads it back: quoted when it holds anything but the usual characters. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}
