/**
 * The CPU cost of reading DATA: a message shaped like smtp-source's (80-character lines, a few
 * header lines, CRLF) fed through the DATA reader and the line-end check in the pieces a socket
 * delivers (64 KiB reads), as the SMTP session does. No I/O; prints µs per message.
 *
 *   node_modules/.bin/node bench/smtp-data.ts [--size BYTES] [--rounds N]
 */
import { parseArgs } from 'node:util';
import { DataReader } from '../src/smtp/data-reader.ts';
import { MessageSink } from '../src/smtp/message-sink.ts';

const { values: opt } = parseArgs({ options: { size: { type: 'string', default: '102400' }, rounds: { type: 'string', default: '5000' } } });
const SIZE = Number(opt.size);
const ROUNDS = Number(opt.rounds);

const header = 'From: <sender@remote.test>\r\nTo: <bench@example.test>\r\nSubject: bench\r\n\r\n';
let text = header;
for (let i = 1; text.length < SIZE; i++) text += `${i}${'X'.repeat(77 - String(i).length)}\r\n`;
const wire = Buffer.from(`${text}.\r\n`, 'latin1');
const reads: Buffer[] = [];
for (let at = 0; at < wire.length; at += 65536) reads.push(wire.subarray(at, at + 65536));

function readOne(): number {
  const reader = new DataReader();
  const sink = new MessageSink(SIZE * 2);
  for (const chunk of reads) {
    const step = reader.feed(chunk);
    for (const piece of step.content) sink.add(piece);
    if (step.done) break;
  }
  if (sink.finish() !== 'ok') throw new Error('the message was refused');
  return sink.take().length;
}

for (let i = 0; i < ROUNDS / 5; i++) readOne(); // warm-up: let the JIT settle
const t0 = process.hrtime.bigint();
for (let i = 0; i < ROUNDS; i++) readOne();
const us = Number(process.hrtime.bigint() - t0) / ROUNDS / 1000;
process.stdout.write(`DATA of ${wire.length.toLocaleString('en-US')} bytes in ${reads.length} reads: ${us.toFixed(1)} µs per message (${ROUNDS.toLocaleString('en-US')} rounds)\n`);
