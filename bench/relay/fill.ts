/**
 * Puts N messages of about SIZE bytes into mailnest's queue (the server not running), through
 * the same acceptMessage path as SMTP and `mailnest send`, in group-committed batches.
 * node bench/relay/fill.ts CONFIG N SIZE
 */
import { loadConfig } from '../../src/config/load.ts';
import { openContext } from '../../src/context.ts';
import { createLogger } from '../../src/log.ts';
import { acceptMessage, type Accepted } from '../../src/delivery/accept.ts';

const [configFile, n, size] = process.argv.slice(2);
const ctx = openContext(loadConfig(configFile), createLogger('warn', 2));
const count = Number(n);
const filler = 'x'.repeat(76);
function message(i: number): Buffer {
  const head = `From: bench@example.test\r\nTo: sink@sink.test\r\nSubject: bench ${i}\r\nMessage-ID: <bench-${i}@example.test>\r\nDate: Sun, 22 Nov 2026 05:01:02 +0000\r\n\r\n`;
  let body = '';
  while (head.length + body.length < Number(size)) body += `${filler}\r\n`;
  return Buffer.from(head + body);
}
for (let start = 0; start < count; start += 500) {
  const batch: Promise<Accepted>[] = [];
  for (let i = start; i < Math.min(count, start + 500); i++) {
    batch.push(acceptMessage(ctx.store, {
      writtenHere: true,
      sender: 'bench@example.test',
      recipients: [{ address: 'sink@sink.test', resolution: { kind: 'remote' } }],
      body: [message(i)],
      received: { by: ctx.config.hostname, with: 'local' },
    }));
  }
  await Promise.all(batch);
}
ctx.store.close();
