/**
 * Queues a message the way `mailnest send` does, from another process than the server:
 * node test/helpers/inject.ts CONFIG SENDER RCPT... < message
 * Prints the queue id.
 */
import { loadConfig } from '../../src/config/load.ts';
import { openContext } from '../../src/context.ts';
import { createLogger } from '../../src/log.ts';
import { acceptMessage, type ResolvedRecipient } from '../../src/delivery/accept.ts';

const [configFile, sender, ...rcpts] = process.argv.slice(2);
const ctx = openContext(loadConfig(configFile), createLogger('warn', 2));
const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const recipients: ResolvedRecipient[] = [];
for (const r of rcpts) {
  const [address, notify] = r.split('|');
  const resolution = await ctx.recipients.resolve(address!);
  if (resolution.kind === 'unknown') throw new Error(`unknown recipient ${address}`);
  recipients.push({ address: address!, resolution, ...(notify ? { notify: notify.split(',') as ResolvedRecipient['notify'] } : {}) });
}
const { id } = await acceptMessage(ctx.store, {
  writtenHere: true,
  sender: sender!,
  recipients,
  body: [Buffer.concat(chunks)],
  received: { by: ctx.config.hostname, with: 'local' },
});
ctx.store.close();
process.stdout.write(`${id}\n`);
