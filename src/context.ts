/**
 * What every part of a running mailnest shares: the validated config, the store, the logger and
 * the recipient rules. Built once by `openContext`, used by the server and by the CLI commands.
 */
import type { Config } from './config/schema.ts';
import { Recipients } from './delivery/recipients.ts';
import { createLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { SqliteStore } from './store/sqlite/sqlite-store.ts';
import type { Store } from './store/store.ts';

export interface Context {
  config: Config;
  store: Store;
  log: Logger;
  recipients: Recipients;
  metrics: Metrics;
}

/** `onFailedFlush`, `onMigrate`: see SqliteStore (the server stops; a command fails with the
 *  write). */
export function openContext(config: Config, log: Logger = createLogger(config.log_level), hooks: { onFailedFlush?: (err: Error) => void; onMigrate?: (from: number, to: number) => void } = {}): Context {
  const store = new SqliteStore(config.data_dir, {
    ...hooks,
    onReserveGiven: () => log.warn({ data_dir: config.data_dir }, 'the disk holding data_dir is full: the room kept in data_dir/reserve was given up so that mail could be deleted; free space on the disk (the reserve is made again once there is room)'),
  });
  if (store.recovered.length > 0) {
    log.warn({ removed: store.recovered }, 'removed messages whose body a crash cut short; none of them had been acknowledged');
  }
  return { config, store, log, recipients: new Recipients(store, config.domains, config.hostname), metrics: new Metrics() };
}
