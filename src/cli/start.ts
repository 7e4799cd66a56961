/** `mailnest start`: every configured listener in the foreground until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { createLogger } from '../log.ts';
import { startServer } from '../server.ts';
import { configOf } from './common.ts';
import { configPath } from '../config/load.ts';

export function registerStart(program: Command): void {
  program.command('start').description('run the server in the foreground')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configOf(cmd);
      const log = createLogger(config.log_level);
      const server = await startServer(config, log);
      log.info({ addresses: server.addresses, data_dir: config.data_dir, hostname: config.hostname, domains: config.domains }, 'listening');
      const lines = Object.entries(server.addresses).map(([kind, addrs]) => `  ${kind.padEnd(12)} ${addrs!.join(', ')}`);
      const source = configPath((cmd.optsWithGlobals() as { config?: string }).config) ?? 'built-in defaults';
      process.stderr.write([
        `mailnest is running for ${config.domains.join(', ')} as ${config.hostname} (config: ${source}, data: ${config.data_dir})`,
        ...lines,
        `add a mailbox with: mailnest user add you@${config.domains[0]}   (npm exec -- mailnest ... from this directory)`,
        '',
      ].join('\n'));
      await new Promise<void>((resolve) => {
        const onSignal = (signal: string) => {
          log.info({ signal }, 'stopping');
          void server.stop().then(resolve);
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
      log.info('stopped');
      log.flush();
    });
}
