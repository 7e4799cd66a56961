/** One sans-I/O session over a pair of streams (`sendmail -bs`): replies in order, the idle
 *  limit, and a failed effect. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { runStdioSession } from '../../src/net/stdio-session.ts';
import { SmtpSession, type SmtpEffect, type SmtpResult } from '../../src/smtp/session.ts';

const policy = {
  role: 'local' as const, hostname: 'mx.example.test', postmasterDomain: 'example.test', starttls: false, allowInsecureAuth: false,
  maxMessageSize: 10_000, maxRecipients: 5, maxLineLength: 512,
};

/** Runs a local session on streams; `perform` answers every RCPT as remote and fails DATA. */
function run(idleMs: number, lineEndsAsWritten = false, deliver?: (body: Buffer) => void) {
  const input = new PassThrough();
  const output = new PassThrough();
  let written = '';
  output.on('data', (d: Buffer) => { written += d.toString(); });
  const perform = async (e: SmtpEffect): Promise<SmtpResult> => {
    if (e.kind === 'rcpt') return { kind: 'rcpt', resolution: { kind: 'remote' } };
    if (e.kind === 'deliver' && deliver) {
      deliver(Buffer.concat(e.delivery.body));
      return { kind: 'deliver', id: 'Q1' };
    }
    throw new Error('the store is gone');
  };
  const done = runStdioSession({ session: new SmtpSession(policy, ''), perform, input, output, idleMs, lineEndsAsWritten });
  return { input, done, written: () => written };
}

test('replies come in order, and the session ends with QUIT', async () => {
  const s = run(60_000);
  s.input.write('EHLO a\r\nNOOP\r\nQUIT\r\n');
  await s.done;
  assert.deepEqual(s.written().split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3)), ['220', '250', '250', '221']);
  // The input is let go though its writer keeps it open: a read left pending would keep the
  // command running as long as its caller does.
  assert.equal(s.input.destroyed, true);
});

test('a caller that sends nothing for the idle limit gets the session\'s 421, and the session ends', async () => {
  const s = run(50);
  s.input.write('EHLO a\r\n');
  await s.done;
  assert.match(s.written(), /\r\n421 4\.4\.2 mx\.example\.test Error: timeout exceeded\r\n$/);
  assert.equal(s.input.destroyed, true);
});

test('an effect that throws gets the session\'s 421 before the error goes on', async () => {
  const s = run(60_000);
  s.input.write('EHLO a\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\nSubject: x\r\n\r\ny\r\n.\r\n');
  await assert.rejects(s.done, /the store is gone/);
  assert.match(s.written(), /\r\n354 [^\r]*\r\n421 4\.3\.0 mx\.example\.test Internal error, closing connection\r\n$/);
});

test('with lineEndsAsWritten, a bare LF is a line end, in DATA too, also where a CRLF or the LF is split between reads', async () => {
  const s = run(60_000, true);
  // The end of the data is seen (the effect then fails, as `run` has it).
  const failed = assert.rejects(s.done, /the store is gone/);
  // Each write is a read of its own on the session's side.
  for (const piece of ['EHLO a\n', 'MAIL FROM:<a@example.test>\r', '\nRCPT TO:<b@remote.test>\n', 'DATA\n', 'Subject: x\n\ny\n.', '\n']) {
    s.input.write(piece);
    await new Promise((resolve) => setImmediate(resolve));
  }
  s.input.end();
  await failed;
  // No CR was doubled into a bare one (which MAIL would have refused).
  assert.deepEqual(s.written().split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3)), ['220', '250', '250', '250', '354', '421']);
});

test('with lineEndsAsWritten, a bare CR is a line end too (a progress bar\'s), also split from its LF between reads or last in the input', async () => {
  let body: Buffer = Buffer.alloc(0);
  const s = run(60_000, true, (b) => { body = b; });
  for (const piece of ['EHLO a\r', '\nMAIL FROM:<a@example.test>\rRCPT TO:<b@remote.test>\n', 'DATA\r\n', 'Subject: x\r\n\r\n10%\r20%\r', '100%\n.\r']) {
    s.input.write(piece);
    await new Promise((resolve) => setImmediate(resolve));
  }
  s.input.end();
  await s.done;
  assert.deepEqual(s.written().split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3)), ['220', '250', '250', '250', '354', '250']);
  assert.equal(body.toString(), 'Subject: x\r\n\r\n10%\r\n20%\r\n100%\r\n');
});

test('sendmail -bs offers no CHUNKING, and a BDAT ends the session: its chunk could not be read as sent', async () => {
  const s = run(60_000, true);
  s.input.write('EHLO a\nMAIL FROM:<a@example.test>\nRCPT TO:<b@remote.test>\nBDAT 12 LAST\nline1\nline2\n');
  await s.done;
  assert.doesNotMatch(s.written(), /CHUNKING/);
  assert.match(s.written(), /\r\n421 4\.5\.1 mx\.example\.test BDAT is not offered by sendmail -bs; use DATA, closing connection\r\n$/);
});
