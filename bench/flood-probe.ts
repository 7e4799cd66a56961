/**
 * Pipelined commands from clients that never read, against a server already running, and how
 * long a new session from another address waits for its greeting meanwhile: N connections from
 * 127.0.0.1, each past its greeting and EHLO (RFC 2920 §3.1: before them nothing may be
 * pipelined) and a MAIL, send COMMAND a thousand at a time for 8 s, while a probe from
 * 127.0.0.2 connects every 50 ms (5 s allowed). Prints the median, p90 and longest wait.
 *
 *   node bench/flood-probe.ts PORT [CONNECTIONS=25] [COMMAND="RCPT TO:<postmaster>"]
 *
 * The default, recipients past limits.max_recipients, is what a session takes longest (1,020 of
 * them before it is closed, where HELO, EHLO, NOOP, RSET, VRFY, EXPN and HELP end it after 120:
 * the limits in docs/SMTP.md), and a command pipelined after EHLO, NOOP, VRFY or EXPN at once
 * (RFC 2920 §3.1). A flooder that is closed stays closed: the flood thins out as they are.
 */
import net from 'node:net';
import { afterEhlo } from './after-ehlo.ts';

const [portText, countText, verb] = process.argv.slice(2);
if (!portText) throw new Error('usage: flood-probe.ts PORT [CONNECTIONS] [COMMAND]');
const port = Number(portText);
const block = Buffer.from(`${verb ?? 'RCPT TO:<postmaster>'}\r\n`.repeat(1000));
const flooders: net.Socket[] = [];
for (let i = 0; i < Number(countText ?? 25); i++) {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  const pump = () => {
    while (s.write(block));
    s.once('drain', pump);
  };
  afterEhlo(s, () => {
    s.write('MAIL FROM:<flood@example.net>\r\n');
    pump();
  });
  flooders.push(s);
}

/** Milliseconds to the greeting of one new session; Infinity when none came in 5 s. */
function probe(): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    const timer = setTimeout(() => { p.destroy(); resolve(Infinity); }, 5000);
    p.on('error', () => { clearTimeout(timer); resolve(Infinity); });
    p.once('data', () => {
      clearTimeout(timer);
      p.end('QUIT\r\n');
      resolve(performance.now() - t0);
    });
  });
}

const waits: number[] = [];
for (const end = Date.now() + 8000; Date.now() < end;) {
  waits.push(await probe());
  await new Promise((r) => setTimeout(r, 50));
}
for (const s of flooders) s.destroy();
waits.sort((a, b) => a - b);
const ms = (x: number) => (x === Infinity ? 'none in 5 s' : `${x.toFixed(1)} ms`);
console.log(`${waits.length} probes: median ${ms(waits[waits.length >> 1]!)}, p90 ${ms(waits[Math.floor(waits.length * 0.9)]!)}, longest ${ms(waits.at(-1)!)}`);
