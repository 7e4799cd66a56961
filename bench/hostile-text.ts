/**
 * What reading hostile text costs the event loop (or the checks' thread): each input that a
 * stranger or a user can send, at sizes n, 2n and 4n. Time that doubles with the size is linear;
 * time that quadruples is what let one client stall every session. No I/O.
 *
 *   node_modules/.bin/node bench/hostile-text.ts [--size N]   (n, in thousands; default 64)
 */
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { authenticate } from 'mailauth';
import { trimEndBlanks } from '../src/ascii.ts';
import { atLineEnds, readUntil } from '../src/chunks.ts';
import { withoutForgedResults } from '../src/delivery/auth-results.ts';
import { fitSubmittedLines } from '../src/mime/line-length.ts';
import { completeSubmission } from '../src/mime/submission.ts';
import { parseCommand } from '../src/pop3/command.ts';

const { values: opt } = parseArgs({ options: { size: { type: 'string', default: '64' } } });
const n = Number(opt.size) * 1000;

const resolver = async (): Promise<never> => {
  throw Object.assign(new Error('no such name'), { code: 'ENOTFOUND' });
};

const cases: [string, (size: number) => unknown][] = [
  ['Authentication-Results of nested comments', (size) => withoutForgedResults([Buffer.from(`Authentication-Results: ${'('.repeat(size)}${')'.repeat(size)} mx.example.test; spf=pass\r\n\r\nx\r\n`)], 'mx.example.test')],
  ['POP3 line of spaces and tabs (x100)', (size) => { for (let i = 0; i < 100; i++) parseCommand(Buffer.from(`X ${' \t'.repeat(size / 200)}y`)); }],
  ['trailing blanks before a character', (size) => trimEndBlanks(`x${' \t'.repeat(size)}y`)],
  ['multipart delimiter of blanks, fitted', (size) => fitSubmittedLines([Buffer.from(`MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\n${'x'.repeat(1200)}\r\n--${' \t'.repeat(size)}y\r\n--b--\r\n`)])],
  ['header field of 2 KB continuation lines, submitted', (size) => completeSubmission([Buffer.from(`X-Long: a${'\r\n '.concat('y'.repeat(2000)).repeat(size / 32)}\r\n\r\nx\r\n`)], { from: 'a@example.test', hostname: 'mx.example.test', now: new Date(0) })],
  ['header-only message read for a report (256 KiB pieces)', async (size) => {
    const piece = Buffer.from('X-Filler: '.concat('f'.repeat(2600), '\r\n').repeat(100));
    await readUntil((async function* () { for (let i = 0; i < size / 2000; i++) yield piece; })(), '\r\n\r\n', Infinity);
  }],
  ['DKIM body hash of one long line, verified', async (size) => {
    const message = Buffer.from(`DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s; h=from; bh=AA; b=AA\r\nFrom: a@example.org\r\n\r\n${'y'.repeat(size * 32)}\r\n`);
    await authenticate(Readable.from(atLineEnds(message)), { ip: '192.0.2.1', helo: 'x', sender: 'a@example.org', mta: 'mx.test', resolver, disableArc: true, disableBimi: true } as never);
  }],
];

process.stdout.write(`n = ${n.toLocaleString('en-US')}\n`);
for (const [name, run] of cases) {
  const times: string[] = [];
  for (const size of [n, 2 * n, 4 * n]) {
    const t0 = process.hrtime.bigint();
    await run(size);
    times.push(`${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`);
  }
  process.stdout.write(`${name}: ${times.join(', ')}\n`);
}
