/**
 * The CPU cost of fitting a submitted message's long lines (src/mime/line-length.ts, the work the
 * fit thread does): a message that is not MIME, one line over 998 octets and then LINES short
 * ones, re-encoded as quoted-printable. No I/O; prints the time of each round and their median.
 *
 *   node_modules/.bin/node bench/fit-lines.ts [--lines N] [--rounds N]
 */
import { parseArgs } from 'node:util';
import { fitSubmittedLines } from '../src/mime/line-length.ts';

const { values: opt } = parseArgs({ options: { lines: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '5' } } });
const LINES = Number(opt.lines);
const ROUNDS = Number(opt.rounds);

const message = Buffer.from(`From: me@example.test\r\nSubject: long\r\n\r\n${'z'.repeat(1200)}\r\n${'a\r\n'.repeat(LINES)}`);
const times: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const t0 = process.hrtime.bigint();
  const [fitted] = fitSubmittedLines([message]);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (!fitted!.includes('Content-Transfer-Encoding: quoted-printable')) throw new Error('the message was not re-encoded');
}
const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
process.stdout.write(`${LINES.toLocaleString('en-US')} short lines and a long one (${message.length.toLocaleString('en-US')} bytes): ${times.map((t) => t.toFixed(0)).join(', ')} ms; median ${median.toFixed(0)} ms\n`);
