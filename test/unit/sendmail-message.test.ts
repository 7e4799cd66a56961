/** sendmail's argument conventions and the preparation of a message handed in on stdin. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EX_USAGE, parseSendmailArgs, SendmailUsage } from '../../src/cli/sendmail.ts';
import { prepareSubmitted, SubmittedError, type SubmittedOptions } from '../../src/mime/submitted.ts';
import { leaves, parseMail } from '../helpers/parse-mail.ts';

test('the flags cron, logwatch, smartd, mail(1) and PHP pass', () => {
  // Debian cron: sendmail -FCronDaemon -i -B8BITMIME -oem root
  assert.deepEqual(parseSendmailArgs(['-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'root']),
    { extractRecipients: false, ignoreDots: true, recipients: ['root'], noop: false, sysexits: false, fullName: 'CronDaemon' });
  // PHP mail(): sendmail -t -i (plus -f from the fifth argument)
  assert.deepEqual(parseSendmailArgs(['-t', '-i', '-f', 'www@example.test']),
    { extractRecipients: true, ignoreDots: true, recipients: [], noop: false, sysexits: false, sender: 'www@example.test' });
  // bundled flags and attached values
  assert.deepEqual(parseSendmailArgs(['-ti', '-fbounce@example.test', '-F', 'Backup Job', '-oi', '-odi', '-v', 'a@example.test', 'b@example.test']),
    { extractRecipients: true, ignoreDots: true, recipients: ['a@example.test', 'b@example.test'], noop: false, sysexits: false, sender: 'bounce@example.test', fullName: 'Backup Job' });
  // -oi alone, -bm, -N and -R with values, recipients after --
  const a = parseSendmailArgs(['-bm', '-oi', '-N', 'failure,delay', '-R', 'hdrs', '-V', 'env1', '--', '-odd@example.test']);
  assert.equal(a.ignoreDots, true);
  assert.deepEqual(a.recipients, ['-odd@example.test']);
  // -r is the old -f; -bi is newaliases (nothing to do)
  assert.equal(parseSendmailArgs(['-r', 'x@example.test', 'y@example.test']).sender, 'x@example.test');
  assert.equal(parseSendmailArgs(['-bi']).noop, true);
  assert.equal(parseSendmailArgs(['-I']).noop, true);
  // Symfony's and Laravel's sendmail transports: SMTP on stdin and stdout
  assert.equal(parseSendmailArgs(['-bs', '-i']).smtp, true);
  // Postfix's -SMTPUTF8: SMTPUTF8 is asked of the next hop whenever an address needs it
  assert.deepEqual(parseSendmailArgs(['-SMTPUTF8', '-t']), { extractRecipients: true, ignoreDots: false, recipients: [], noop: false, sysexits: false });
  // mailnest's own -c/--config and --verbose are skipped (commander took them; the command
  // refuses a -c after "sendmail": test/integration/sendmail-cli.test.ts)
  assert.deepEqual(parseSendmailArgs(['-c', 'x.toml', '--verbose', '--config=y.toml', '-t']).recipients, []);
  assert.equal(parseSendmailArgs(['--config', 'x.toml', 'a@example.test']).recipients[0], 'a@example.test');
  // -e takes its error mode attached (-ep, -em, -eq), as -o does: no letter of it is a flag
  assert.deepEqual(parseSendmailArgs(['-em', '-ep', '-eq', 'root']), { extractRecipients: false, ignoreDots: false, recipients: ['root'], noop: false, sysexits: false });
  // without -i dots end the message
  assert.equal(parseSendmailArgs(['root']).ignoreDots, false);
  // --sysexits anywhere before "--", and not as a flag's value nor after "--"
  assert.equal(parseSendmailArgs(['-t', '--sysexits', '-i']).sysexits, true);
  assert.deepEqual([parseSendmailArgs(['-f', '--sysexits', 'a@example.test'])].map((x) => [x.sysexits, x.sender]), [[false, '--sysexits']]);
  assert.deepEqual([parseSendmailArgs(['--', '--sysexits'])].map((x) => [x.sysexits, x.recipients]), [[false, ['--sysexits']]]);
});

test('unknown and unsupported options are usage errors (EX_USAGE)', () => {
  for (const [args, message] of [
    [['-Z'], /unknown option -Z/],
    [['--long'], /unknown option --long/],
    [['-f'], /option -f needs a value/],
    [['-bt'], /-bt is not supported \(only -bm, the default, -bs and -bi\)/],
    [['-bp'], /mailnest queue list/],
    [['-q'], /-q .* not supported/],
    [['-q30m'], /-q .* not supported/],
  ] as [string[], RegExp][]) {
    assert.throws(() => parseSendmailArgs(args), (err: unknown) => {
      assert.equal((err as { exitCode: number }).exitCode, EX_USAGE);
      assert.match((err as Error).message, message);
      return true;
    }, args.join(' '));
  }
  // The first problem is the one said; --sysexits after it still counts.
  assert.throws(() => parseSendmailArgs(['-Z', '-bp', '--sysexits']), (err: unknown) => {
    assert.match((err as Error).message, /unknown option -Z/);
    assert.equal((err as SendmailUsage).sysexits, true);
    return true;
  });
});

const opts: SubmittedOptions = { ignoreDots: false, extractRecipients: false, recipients: [], defaultSender: 'root', domain: 'example.test', hostname: 'mx.example.test', now: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) };
const prep = (input: string | Buffer, o: Partial<SubmittedOptions>) => prepareSubmitted(Buffer.from(input), { ...opts, ...o });

test('reencoded counts what fitting the lines added, not the completed fields or the CRs', () => {
  assert.equal(prep('Subject: s\n\nshort line\n', { recipients: ['a@example.org'] }).reencoded, 0);
  const long = prep(`Subject: s\n\n${'x'.repeat(1200)}\n`, { recipients: ['a@example.org'] });
  const added = 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n'.length + 1200 / 76 * 3;
  assert.ok(long.reencoded >= added - 10 && long.reencoded <= added + 10, `${long.reencoded} against about ${added}`);
});

test('-t takes To, Cc and Bcc, adds argument recipients, and strips Bcc', () => {
  const input = 'From: Ops <ops@example.test>\nTo: Alice <alice@example.test>, bob\nCc: carol@example.org\nBcc: secret@example.org,\n  other-secret@example.org\nSubject: report\n\nbody\n';
  const r = prep(input, { extractRecipients: true, recipients: ['dave@example.org'] });
  assert.deepEqual(r.recipients, ['dave@example.org', 'alice@example.test', 'bob@example.test', 'carol@example.org', 'secret@example.org', 'other-secret@example.org']);
  const text = r.message.toString();
  assert.ok(!/^bcc:/im.test(text), 'Bcc survived');
  assert.ok(!text.includes('secret'), 'a Bcc address survived (continuation line)');
  const parsed = parseMail(r.message);
  assert.equal(parsed.headers['to'], 'Alice <alice@example.test>, bob@example.test');
  assert.equal(parsed.headers['from'], 'Ops <ops@example.test>');
  assert.equal(parsed.root.text, 'body\n');
  assert.equal(r.sender, 'root@example.test');
});

test('an address without a domain in From, To, Cc, Reply-To, Sender gets one, as cron writes them, in lists too; other fields stay as written', () => {
  const input = 'From: root (Cron Daemon)\nTo: root\nCc: "(Cron Daemon)" <backup>, "Doe, John" <bob>, ops (a, b)\nReply-To: ops.team, Admin <admin@example.org>\n'
    + 'Sender: Ops <ops@example.org>\nResent-To: team: me, you@example.org;\nX-To: root\nSubject: Cron <root@vm> run-parts\n\nout\n';
  const text = prep(input, { recipients: ['a@example.org'] }).message.toString();
  const header = text.slice(0, text.indexOf('\r\n\r\n')).replace(/\r\n(?=[ \t])/g, '');
  for (const line of ['From: root@example.test (Cron Daemon)', 'To: root@example.test',
    'Cc: "(Cron Daemon)" <backup@example.test>, "Doe, John" <bob@example.test>, ops@example.test (a, b)',
    'Reply-To: ops.team@example.test, Admin <admin@example.org>', 'Sender: Ops <ops@example.org>',
    'Resent-To: team: me@example.test, you@example.org;', 'X-To: root', 'Subject: Cron <root@vm> run-parts']) {
    assert.ok(header.split('\r\n').includes(line), `${line}\n---\n${header}`);
  }
  // MAILTO=me,bob in Debian's cron, and a Latin-1 name, which is encoded too.
  const latin1 = Buffer.concat([Buffer.from('From: J'), Buffer.from([0xf6]), Buffer.from('rg <root>\nTo: me,bob\n\nout\n')]);
  const parsed = parseMail(prep(latin1, { extractRecipients: true }).message);
  assert.equal(parsed.headers['to'], 'me@example.test, bob@example.test');
  assert.equal(parsed.headers['from'], 'Jörg <root@example.test>');
  // Fields nodemailer does not know as address lists keep their addresses outside the encoded-words.
  const other = Buffer.concat([Buffer.from('Errors-To: J'), Buffer.from([0xf6]), Buffer.from('rg <a@example.org>, M'), Buffer.from([0xfc]), Buffer.from('ller <b@example.org>\nResent-From: J'), Buffer.from([0xf6]), Buffer.from('rg <root>\nTo: me\n\nout\n')]);
  const both = parseMail(prep(other, { recipients: ['a@example.org'] }).message);
  assert.equal(both.headers['errors-to'], 'Jörg <a@example.org>, Müller <b@example.org>');
  assert.equal(both.headers['resent-from'], 'Jörg <root@example.test>');
});

test('-t takes the Resent- recipients of a message sent on again, not its first ones; Resent-Bcc is removed', () => {
  const r = prep('Resent-From: root\nResent-To: me\nResent-Bcc: bob\nFrom: a@example.org\nTo: first@example.org\nSubject: s\n\nb\n', { extractRecipients: true });
  assert.deepEqual(r.recipients, ['me@example.test', 'bob@example.test']);
  assert.ok(!/^resent-bcc:/im.test(r.message.toString()), 'Resent-Bcc survived');
  assert.throws(() => prep('Resent-From: root\nTo: first@example.org\n\nb\n', { extractRecipients: true }),
    (e: unknown) => e instanceof SubmittedError && e.problem === 'usage' && /none in the Resent-To, Resent-Cc or Resent-Bcc fields/.test(e.message));
});

test('Bcc is stripped without -t too; recipients come from the arguments only', () => {
  const r = prep('To: a@example.org\nBcc: hidden@example.org\n\nx\n', { recipients: ['a@example.org'] });
  assert.deepEqual(r.recipients, ['a@example.org']);
  assert.ok(!r.message.toString().includes('hidden'));
});

test('From, Date and Message-ID are added when missing; -f sets the sender, -F the name', () => {
  const r = prep('Subject: disk\n\n91% full\n', { recipients: ['root'], sender: 'smartd@example.test', fullName: 'Smart Daemön' });
  const parsed = parseMail(r.message);
  assert.equal(parsed.headers['from'], 'Smart Daemön <smartd@example.test>');
  assert.equal(parsed.headers['date'], 'Fri, 02 Jan 2026 03:04:05 +0000');
  assert.match(parsed.headers['message-id']!, /^<[0-9a-f-]{36}@mx\.example\.test>$/);
  assert.deepEqual(r.recipients, ['root@example.test']);
  assert.equal(r.sender, 'smartd@example.test');
  assert.ok(/^[\x00-\x7f]*$/.test(r.message.toString('latin1')));
  // A name with a line break in it is one line, its breaks spaces.
  const broken = prep('Subject: x\n\ny\n', { recipients: ['root'], fullName: 'Cron\r\nX-Injected: yes\n' });
  assert.equal(parseMail(broken.message).headers['from'], '"Cron X-Injected: yes" <root@example.test>');
  // present ones are kept, not doubled
  const kept = prep('From: me@example.test\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <m1@x>\n\nb\n', { recipients: ['a@example.org'] });
  const p2 = parseMail(kept.message);
  assert.equal(p2.headers['message-id'], '<m1@x>');
  assert.equal(p2.headerNames.filter((n) => n === 'date').length, 1);
  assert.equal(p2.headers['from'], 'me@example.test');
});

test('the null sender and unqualified senders', () => {
  assert.equal(prep('\nx\n', { recipients: ['a@example.org'], sender: '<>' }).sender, '');
  assert.equal(prep('\nx\n', { recipients: ['a@example.org'], sender: 'backup' }).sender, 'backup@example.test');
  // -f with a name, as some scripts give it: the address in it.
  assert.equal(prep('\nx\n', { recipients: ['a@example.org'], sender: 'Joe <joe@example.org>' }).sender, 'joe@example.org');
  assert.equal(prep('\nx\n', { recipients: ['a@example.org'], sender: '<joe@example.org>' }).sender, 'joe@example.org');
  assert.throws(() => prep('\nx\n', { recipients: ['a@example.org'], sender: 'a b@@c' }), (e: unknown) => e instanceof SubmittedError && e.problem === 'data');
});

test('a lone dot ends the input unless -i; no dot-unstuffing', () => {
  const input = 'Subject: dots\n\nline 1\n..two dots stay\n.\nafter the dot\n';
  const ended = prep(input, { recipients: ['a@example.org'] });
  assert.equal(parseMail(ended.message).root.text, 'line 1\n..two dots stay\n');
  const whole = prep(input, { recipients: ['a@example.org'], ignoreDots: true });
  assert.equal(parseMail(whole.message).root.text, 'line 1\n..two dots stay\n.\nafter the dot\n');
});

test('line ends become CRLF; a message without a blank line after the headers gets one', () => {
  const r = prep('Subject: x\r\nTo: a@example.org\nnot a header line\nsecond\n', { recipients: ['a@example.org'] });
  const text = r.message.toString();
  assert.ok(!/[^\r]\n/.test(text));
  assert.equal(parseMail(r.message).root.text, 'not a header line\nsecond\n');
  // a lone CR (a progress bar) is a line break too: stored mail is CRLF text
  const cr = prep('Subject: cr\n\nstart\n 10%\r 20%\rdone\n', { recipients: ['a@example.org'] }).message.toString('latin1');
  assert.ok(!/\r(?!\n)/.test(cr), 'a bare CR is left');
  assert.ok(cr.endsWith('\r\n\r\nstart\r\n 10%\r\n 20%\r\ndone\r\n'));
  // CRs before an LF are one line end with it (CRLF written through a layer that adds a CR)
  const crcr = prep('To: a@example.org\r\r\nSubject: double cr\r\r\nX-A: b\r\r\n\r\r\nbody\r\r\nmore\r\r\n', { recipients: ['a@example.org'] });
  const p = parseMail(crcr.message);
  assert.equal(p.headers['subject'], 'double cr');
  assert.equal(p.headers['x-a'], 'b');
  assert.equal(p.root.text, 'body\nmore\n');
  // a leading mbox "From " line is dropped
  const mbox = prep('From root Mon Jan  1 00:00:00 2024\nSubject: y\n\nz\n', { recipients: ['a@example.org'] });
  assert.equal(parseMail(mbox.message).headers['subject'], 'y');
});

test('a non-MIME 8-bit body or long lines are re-encoded as quoted-printable UTF-8', () => {
  const long = 'x'.repeat(3000);
  const r = prep(`Subject: Sauvegarde terminée\n\nrésumé: ok\n${long}\n`, { recipients: ['a@example.org'] });
  const parsed = parseMail(r.message);
  assert.equal(parsed.headers['subject'], 'Sauvegarde terminée');
  assert.equal(parsed.headers['mime-version'], '1.0');
  assert.equal(parsed.root.cte, 'quoted-printable');
  assert.equal(parsed.root.charset, 'utf-8');
  assert.equal(parsed.root.text, `résumé: ok\n${long}\n`);
  assert.ok(parsed.longestLine <= 998);
  assert.ok(/^[\x00-\x7f]*$/.test(r.message.toString('latin1')));
});

test('a display name in Latin-1 or UTF-8 becomes encoded-words, so the header needs no SMTPUTF8; a UTF-8 address stays', () => {
  const latin = prep(Buffer.concat([Buffer.from('From: J'), Buffer.from([0xf6]), Buffer.from('rg <root@example.org>\nTo: a@example.org\n\nx\n')]), { extractRecipients: true });
  assert.equal(parseMail(latin.message).headers['from'], 'Jörg <root@example.org>');
  assert.ok(latin.message.every((c) => c < 0x80));
  const utf8 = prep('From: Jörg Müller <root@example.org>\nTo: a@example.org\nReply-To: "Zoë, Ops" <ops@example.org>, b@example.org\n\nx\n', { extractRecipients: true });
  const headers = parseMail(utf8.message).headers;
  assert.equal(headers['from'], 'Jörg Müller <root@example.org>');
  assert.equal(headers['reply-to'], '"Zoë, Ops" <ops@example.org>, b@example.org');
  assert.ok(utf8.message.every((c) => c < 0x80));
  // An address in UTF-8 needs SMTPUTF8 however its name is written (RFC 6531 §3.2).
  const eai = prep('From: Jörg <jörg@example.org>\nTo: a@example.org\n\nx\n', { extractRecipients: true });
  assert.ok(eai.message.includes(Buffer.from('From: Jörg <jörg@example.org>\r\n')));
});

test('8-bit text and NULs in other text fields become encoded-words; a NUL in any other field is refused (RFC 5322 §2.2)', () => {
  const r = prep(Buffer.concat([Buffer.from('X-Foo: a\x00b\nX-Place: caf'), Buffer.from([0xe9]), Buffer.from('\nComments: Grüße\n\nx\n')]), { recipients: ['a@example.org'] });
  const headers = parseMail(r.message).headers;
  assert.equal(headers['x-foo'], 'a\x00b');
  assert.equal(headers['x-place'], 'café');
  assert.equal(headers['comments'], 'Grüße');
  assert.ok(r.message.every((c) => c < 0x80 && c !== 0));
  for (const field of ['From: a\x00b <root@example.org>', 'Message-ID: <a\x00b@example.org>', 'List-Id: <a\x00b.example.org>']) {
    assert.throws(() => prep(`${field}\n\nx\n`, { recipients: ['a@example.org'] }), (err: unknown) => {
      assert.ok(err instanceof SubmittedError && err.problem === 'data', String(err));
      assert.match(err.message, /^the [\w-]+ field holds a NUL, which no header field may \(RFC 5322 §2\.2\)$/);
      return true;
    }, field);
  }
});

test('a raw Subject that is not UTF-8 is read as Latin-1, so its letters survive', () => {
  const r = prep(Buffer.concat([Buffer.from('Subject: t7 \xfcber\n\nGr', 'latin1'), Buffer.from([0xfc, 0xdf]), Buffer.from('e\n')]), { recipients: ['a@example.org'] });
  assert.equal(parseMail(r.message).headers['subject'], 't7 über');
});

test('a Subject with 8-bit words and encoded-words already: those stay, the 8-bit words become encoded-words, and it reads as written', () => {
  const cases: [string, string][] = [
    ['Re: =?UTF-8?B?w4RwZmVs?= und Birnen für alle', 'Re: Äpfel und Birnen für alle'],
    ['=?UTF-8?B?w4RwZmVs?= für =?UTF-8?B?w4RwZmVs?=', 'Äpfel für Äpfel'],
    ['Grüße aus Köln', 'Grüße aus Köln'],
    // white space as written: runs of spaces and tabs, between encoded words and plain ones
    ['Größe  zwei\tLeerzeichen', 'Größe  zwei\tLeerzeichen'],
    ['日本語  タブ\tです  ok', '日本語  タブ\tです  ok'],
  ];
  for (const [raw, shown] of cases) {
    const r = prep(`Subject: ${raw}\n\nx\n`, { recipients: ['a@example.org'] });
    assert.equal(parseMail(r.message).headers['subject'], shown, raw);
    assert.ok(r.message.every((c) => c < 0x80));
  }
  // A NUL is encoded too, as it was when the whole value was.
  assert.equal(parseMail(prep('Subject: a\u0000b c\n\nx\n', { recipients: ['a@example.org'] }).message).headers['subject'], 'a\u0000b c');
  assert.ok(!prep('Subject: a\u0000b c\n\nx\n', { recipients: ['a@example.org'] }).message.includes(0));
  assert.match(prep('Subject: Re: =?UTF-8?B?w4RwZmVs?= und f\u00fcr\n\nx\n', { recipients: ['a@example.org'] }).message.toString(), /^Subject: Re: =\?UTF-8\?B\?w4RwZmVs\?= und =\?UTF-8\?Q\?f=C3=BCr\?=\r\n/m);
});

test('header lines over 998 octets are folded at white space (RFC 5322 §2.2.3); a run that cannot be is refused', () => {
  const list = Array.from({ length: 60 }, (_, i) => `user${i}@example.org`);
  const subject = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
  const r = prep(`To: ${list.join(', ')}\nSubject: ${subject}\nX-Info: ${'a'.repeat(990)} ${'b'.repeat(990)}\n\nbody\n`, { extractRecipients: true });
  const parsed = parseMail(r.message);
  assert.ok(parsed.longestLine <= 998, `a line of ${parsed.longestLine} octets`);
  assert.deepEqual(r.recipients, list);
  assert.equal(parsed.headers['subject'], subject);
  assert.equal(parsed.rawHeaders['x-info'], `${'a'.repeat(990)} ${'b'.repeat(990)}`);
  // White space at the end of a long line is not left as a line of its own.
  const spaces = prep(`X-Long: ${'a '.repeat(495)}    \n\nbody\n`, { recipients: ['a@example.org'] }).message.toString('latin1');
  assert.ok(!/\r\n[ \t]+\r\n/.test(spaces), 'a folded line of white space only');
  assert.ok(spaces.split('\r\n').every((l) => l.length <= 998));
  assert.equal(parsed.root.text, 'body\n');
  assert.throws(() => prep(`X-Blob: ${'c'.repeat(1200)}\n\nbody\n`, { recipients: ['a@example.org'] }),
    (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && /header X-Blob has 1200 octets without white space/.test(e.message));
});

test('a MIME message of one text part with an over-long line (cron\'s) becomes quoted-printable; a multipart has its parts fitted; an encapsulated message is refused (EX_DATAERR)', () => {
  const long = `{"json": "${'y'.repeat(1200)}"}`;
  const cron = prep(`MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\nGrüße ${long}\n`, { recipients: ['a@example.org'] });
  const parsed = parseMail(cron.message);
  assert.equal(parsed.root.cte, 'quoted-printable');
  assert.equal(parsed.root.charset, 'utf-8');
  assert.equal(parsed.root.text, `Grüße ${long}\n`);
  assert.ok(parsed.longestLine <= 998);
  assert.deepEqual(parsed.headerNames.filter((n) => n === 'content-transfer-encoding'), ['content-transfer-encoding']);
  // A part without a Content-Type is text/plain (RFC 2046 §5.1): its charset is said.
  const multi = parseMail(prep(`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\npreamble\n--b\n\nÄ${'y'.repeat(1200)}\n--b--\nepilogue\n`, { recipients: ['a@example.org'] }).message);
  assert.ok(multi.longestLine <= 998, `${multi.longestLine}`);
  assert.deepEqual(leaves(multi.root).map((l) => [l.contentType, l.cte, l.charset, l.text]), [['text/plain', 'quoted-printable', 'utf-8', `Ä${'y'.repeat(1200)}`]]);
  // PHP's mail() with an attachment in one line of base64 (no chunk_split), beside HTML in one
  // long line: the base64 is wrapped, the HTML made quoted-printable, the rest kept as it was.
  const pdf = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 13) % 256));
  const php = [
    'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="==Multipart_Boundary_x1"', '',
    '--==Multipart_Boundary_x1', 'Content-Type: multipart/alternative; boundary=alt', '',
    '--alt', 'Content-Type: text/plain; charset=utf-8', '', 'see the report', '--alt', 'Content-Type: text/html; charset=utf-8', '', `<p>${'r'.repeat(2600)}</p>`, '--alt--', '',
    '--==Multipart_Boundary_x1', 'Content-Type: application/pdf; name="report.pdf"', 'Content-Disposition: attachment; filename="report.pdf"', 'Content-Transfer-Encoding: base64', '', pdf.toString('base64'),
    '--==Multipart_Boundary_x1--', '',
  ].join('\n');
  const fitted = parseMail(prep(php, { recipients: ['a@example.org'] }).message);
  assert.ok(fitted.longestLine <= 998, `${fitted.longestLine}`);
  const parts = leaves(fitted.root);
  assert.deepEqual(parts.map((l) => [l.contentType, l.cte]), [['text/plain', ''], ['text/html', 'quoted-printable'], ['application/pdf', 'base64']]);
  assert.equal(parts[0]!.text, 'see the report');
  assert.equal(parts[1]!.text, `<p>${'r'.repeat(2600)}</p>`);
  assert.equal(parts[2]!.bytes, pdf.toString('base64'));
  // A message inside a message, or quoted-printable in long lines, cannot be fixed here.
  for (const [input, line] of [
    [`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: in\n\n${'y'.repeat(1200)}\n--b--\n`, 6],
    [`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: quoted-printable\n\n${'y'.repeat(1200)}\n--b--\n`, 4],
  ] as const) {
    assert.throws(() => prep(input, { recipients: ['a@example.org'] }), (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && new RegExp(`line ${line} is 1200 octets`).test(e.message));
  }
});

test('fitting a multipart: a large attachment in one line, a text line that would end in a delimiter, a NUL in a part\'s header, parts nested too deep, and the line named when one cannot be fitted', () => {
  const to = { recipients: ['a@example.org'] };
  // 9 MB of base64 in one line: wrapped, not a stack overflow.
  const big = Buffer.alloc(6_800_000, 7).toString('base64');
  const fitted = prep(`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/html\n\n<p>${'h'.repeat(1500)}</p>\n--B\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n${big}\n--B--\n`, to).message;
  assert.ok(fitted.toString('latin1').split('\r\n').every((l) => l.length <= 998));
  // Quoted-printable's soft breaks never make a line that reads as the boundary.
  const tricky = prep(`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=BND\n\n--BND\nContent-Type: text/plain\n\n${'x'.repeat(1019)} --BND--\n--BND\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\n--BND--\n`, to).message;
  const parts = leaves(parseMail(tricky).root);
  assert.deepEqual(parts.map((l) => l.contentType), ['text/plain', 'application/octet-stream']);
  assert.equal(parts[0]!.text, `${'x'.repeat(1019)} --BND--`);
  // A boundary named in another parameter's quoted value is not the boundary.
  const quoted = leaves(parseMail(prep(`MIME-Version: 1.0\nContent-Type: multipart/mixed; x="; boundary=fake"; boundary=real\n\n--real\n\n${'q'.repeat(1200)}\n--real--\n`, to).message).root);
  assert.deepEqual(quoted.map((l) => [l.cte, l.text]), [['quoted-printable', 'q'.repeat(1200)]]);
  const refused = (input: string, message: RegExp) => assert.throws(() => prep(input, to), (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && message.test(e.message), message.source);
  // NUL in a part's header: no part is fitted around it.
  refused('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\nContent-Description: a\0b\n\nhello\n--B--\n', /^body line 3 holds a NUL octet, which no 7bit or 8bit data may \(RFC 2045 section 2\.8\): a NUL has no place in a header$/);
  // 99 multiparts one inside the other are followed, a long line at the bottom fitted.
  const nest = (n: number, inner: string) => {
    const opening = Array.from({ length: n }, (_, i) => `--b${i}\nContent-Type: multipart/mixed; boundary=b${i + 1}\n`).join('\n');
    const closing = Array.from({ length: n }, (_, i) => `--b${n - i}--\n`).join('');
    return `MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b0\n\n${opening}\n--b${n}\n\n${inner}\n${closing}--b0--\n`;
  };
  const deep = parseMail(prep(nest(98, `before\n${'z'.repeat(1200)}\nafter`), to).message);
  assert.ok(deep.longestLine <= 998);
  assert.deepEqual(leaves(deep.root).map((l) => [l.cte, l.text]), [['quoted-printable', `before\n${'z'.repeat(1200)}\nafter`]]);
  // 150 multiparts one inside the other, a long line at the bottom.
  const open = Array.from({ length: 150 }, (_, i) => `--b${i}\nContent-Type: multipart/mixed; boundary=b${i + 1}\n`).join('\n');
  const close = Array.from({ length: 150 }, (_, i) => `--b${150 - i}--\n`).join('');
  refused(`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b0\n\n${open}\n--b150\n\n${'z'.repeat(1200)}\n${close}--b0--\n`, /is 1200 octets; lines are limited to 998 \(RFC 5322 section 2\.1\.1\): its parts are nested more than 100 deep$/);
  // A part that can be fitted, then one that cannot: the second is named, with its own advice.
  refused(`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/html\n\n${'h'.repeat(1600)}\n--B\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n${'p'.repeat(2000)}\n--B--\n`,
    /^body line 9 is 2000 octets; lines are limited to 998 \(RFC 5322 section 2\.1\.1\): quoted-printable lines are at most 76 characters \(RFC 2045 section 6\.7\)$/);
});

test('NUL in a MIME message of one text part becomes quoted-printable, and so it does in a multipart\'s part', () => {
  const cron = prep('MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\nbefore\0after\n', { recipients: ['a@example.org'] });
  assert.ok(!cron.message.includes(0), 'a NUL was kept');
  const parsed = parseMail(cron.message);
  assert.equal(parsed.root.cte, 'quoted-printable');
  assert.equal(parsed.root.text, 'before\0after\n');
  const input = 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\nx\0y\n--b--\n';
  const multi = prep(input, { recipients: ['a@example.org'] }).message;
  assert.ok(!multi.includes(0), 'a NUL was kept');
  assert.deepEqual(leaves(parseMail(multi).root).map((l) => [l.cte, l.text]), [['quoted-printable', 'x\0y']]);
  // Where the part cannot be re-encoded, it is refused.
  const inner = 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: x\n\nx\0y\n--b--\n';
  assert.throws(() => prep(inner, { recipients: ['a@example.org'] }),
    (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && /^body line 6 holds a NUL octet/.test(e.message));
});

test('one base64 part written as one long line (base64 -w0) is wrapped at 76 characters', () => {
  const data = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7) % 256));
  const r = prep(`MIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n${data.toString('base64')}\n`, { recipients: ['a@example.org'] });
  const body = r.message.toString().split('\r\n\r\n')[1]!;
  assert.ok(body.split('\r\n').every((l) => l.length <= 76));
  assert.deepEqual(Buffer.from(body, 'base64'), data);
  // Text that is not base64 cannot be wrapped without changing it.
  assert.throws(() => prep(`MIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n${'*'.repeat(1200)}\n`, { recipients: ['a@example.org'] }),
    (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && /line 1 is 1200 octets/.test(e.message));
});

test('no recipients, or a bad one, are refused with the reason', () => {
  assert.throws(() => prep('Subject: x\n\ny\n', {}), (e: unknown) => e instanceof SubmittedError && e.problem === 'usage' && /no recipients/.test(e.message));
  assert.throws(() => prep('To: undisclosed-recipients:;\n\ny\n', { extractRecipients: true }), (e: unknown) => e instanceof SubmittedError && /none in the To, Cc or Bcc/.test(e.message));
  assert.throws(() => prep('To: a@@b\n\ny\n', { extractRecipients: true }), (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && /header To/.test(e.message));
  assert.throws(() => prep('\ny\n', { recipients: ['a b c'] }), (e: unknown) => e instanceof SubmittedError && e.problem === 'data');
  // two addresses without a comma: the parser would keep the first and name it after the second
  assert.throws(() => prep('\ny\n', { recipients: ['alice@example.org bob@example.org'] }), (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && /not an address list: separate addresses with commas/.test(e.message));
  assert.throws(() => prep('To: alice@example.org bob@example.org\n\ny\n', { extractRecipients: true }), (e: unknown) => e instanceof SubmittedError && e.problem === 'data' && /^header To: .* not an address list/.test(e.message));
  assert.throws(() => prep('To: alice@example.org (Al) bob@example.org\n\ny\n', { extractRecipients: true }), (e: unknown) => e instanceof SubmittedError && /not an address list/.test(e.message));
});

test('a Content-Type without MIME-Version, and 8-bit text without a transfer encoding, as PHP mail() writes them, get both', () => {
  const r = prep('To: a@example.org\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\nGrüße\n', { extractRecipients: true });
  const parsed = parseMail(r.message);
  assert.equal(parsed.headers['mime-version'], '1.0');
  assert.equal(parsed.root.cte, '8bit');
  assert.equal(parsed.root.text, 'Grüße\n');
  // MIME-Version alone, or a transfer encoding alone, names no charset: UTF-8 text gets its own,
  // which it would otherwise read as US-ASCII (RFC 2045 §5.2).
  for (const label of ['MIME-Version: 1.0', 'Content-Transfer-Encoding: 8bit']) {
    const labelled = prep(`To: a@example.org\nSubject: x\n${label}\n\nGrüße\n`, { extractRecipients: true }).message.toString('utf8');
    assert.match(labelled, /^Content-Type: text\/plain; charset=utf-8\r$/m, label);
    assert.equal(parseMail(Buffer.from(labelled)).root.text, 'Grüße\n');
  }
  // ASCII text needs no encoding named; what is there stays.
  const ascii = parseMail(prep('MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 7bit\n\nhi\n', { recipients: ['a@example.org'] }).message);
  assert.deepEqual(ascii.headerNames.filter((n) => n === 'mime-version' || n === 'content-transfer-encoding'), ['mime-version', 'content-transfer-encoding']);
});

test('submission fits lines in a worker thread, with the same result as here, and says the same of what cannot be fitted', async () => {
  const { fitSubmittedOffLoop } = await import('../../src/mime/fit-thread.ts');
  const { fitSubmittedLines, UnfitLineError } = await import('../../src/mime/line-length.ts');
  const message = Buffer.from(`From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n<p>${'h'.repeat(1500)}</p>\r\n--B--\r\n`);
  assert.deepEqual(await fitSubmittedOffLoop([message], 'a@example.org'), fitSubmittedLines([message]));
  // Nothing to fit: the chunks as they came, no thread asked.
  const short = [Buffer.from('Subject: x\r\n\r\n'), Buffer.from('short\r\n')];
  assert.equal(await fitSubmittedOffLoop(short, 'a@example.org'), short);
  const inner = Buffer.from(`From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n${'y'.repeat(1200)}\r\n`);
  await assert.rejects(fitSubmittedOffLoop([inner], 'a@example.org'), (e: unknown) => e instanceof UnfitLineError && /^body line 3 is 1200 octets.*: encode the message it holds, or attach it as a file \(base64\)$/.test(e.message));
});

test('each fit has a thread of its own: one that passes its heap is refused alone, the next is fitted; a stop abandons those under way and waiting, and later ones are fitted', async () => {
  const { FitAbandoned, fitSubmittedOffLoop, stopFitting } = await import('../../src/mime/fit-thread.ts');
  const { UnfitLineError } = await import('../../src/mime/line-length.ts');
  const small = Buffer.from(`Subject: s\r\n\r\n${'s'.repeat(1200)}\r\n`);
  const huge = Buffer.from(`Subject: h\r\n\r\n${'a\r\n'.repeat(500_000)}${'h'.repeat(1200)}\r\n`);
  const [over, next] = await Promise.allSettled([fitSubmittedOffLoop([huge], 'a@example.org', 8), fitSubmittedOffLoop([small], 'a@example.org')]);
  assert.ok(over.status === 'rejected' && over.reason instanceof UnfitLineError && /could not be re-encoded here/.test(over.reason.message), String(over.status === 'rejected' && over.reason));
  assert.ok(next.status === 'fulfilled' && next.value[0]!.toString().includes('Content-Transfer-Encoding: quoted-printable'));
  const running = fitSubmittedOffLoop([huge], 'a@example.org');
  const waiting = fitSubmittedOffLoop([small], 'b@example.org');
  // (the first in its thread by then: half a million lines take it far longer)
  await new Promise((r) => setTimeout(r, 100));
  stopFitting();
  for (const r of await Promise.allSettled([running, waiting])) assert.ok(r.status === 'rejected' && r.reason instanceof FitAbandoned, String(r.status));
  assert.match((await fitSubmittedOffLoop([small], 'a@example.org'))[0]!.toString(), /quoted-printable/);
});

test('the users take turns at the fitting: one who hands in many messages makes another wait for one fit at most', async () => {
  const { fitSubmittedOffLoop } = await import('../../src/mime/fit-thread.ts');
  const message = (name: string) => Buffer.from(`Subject: ${name}\r\n\r\n${'x'.repeat(1200)}\r\n`);
  const done: string[] = [];
  const fit = (name: string, owner: string) => fitSubmittedOffLoop([message(name)], owner).then(() => { done.push(name); });
  // a1 starts at once; b1 and c1 come while a's others wait, and each goes before a's next.
  await Promise.all([fit('a1', 'a@example.org'), fit('a2', 'a@example.org'), fit('a3', 'a@example.org'), fit('b1', 'b@example.org'), fit('a4', 'a@example.org'), fit('c1', 'c@example.org')]);
  assert.deepEqual(done, ['a1', 'b1', 'a2', 'c1', 'a3', 'a4']);
});

test('Keywords with 8-bit words: each phrase encoded apart, the commas outside every encoded-word (RFC 2047 §5(3))', () => {
  const r = prep('Keywords: Größe, Test,  Ärger\nSubject: k\n\nb\n', { recipients: ['a@example.org'] });
  const raw = /^Keywords: (.*)\r\n/m.exec(r.message.toString('latin1'))![1]!;
  assert.deepEqual(raw.split(',').map((p) => p.trim()).map((p) => (/^=\?/.test(p) ? 'encoded' : p)), ['encoded', 'Test', 'encoded'], raw);
  assert.equal(parseMail(r.message).headers['keywords'], 'Größe, Test, Ärger');
});

test('sendmail replaces a Date or Message-ID left empty (`Date: $DATE`, the variable unset), as a missing one', () => {
  const out = prep('From: cron\nDate: \nMessage-ID:\nSubject: s\n\nbody\n', { recipients: ['a@example.org'] }).message.toString();
  assert.match(out, /^From: cron@example\.test\r\nSubject: s\r\nDate: Fri, 2 Jan 2026 03:04:05 \+0000\r\nMessage-ID: <[^>]+@mx\.example\.test>\r\n\r\nbody\r\n$/);
});

test('8-bit text outside MIME, however short its lines, goes as quoted-printable with its charset; a header line folded with a tab stays in its field', () => {
  const out = prep('Subject: a\n\tfolded subject\n\nrésumé\n', { recipients: ['a@example.org'] }).message.toString('latin1');
  assert.match(out, /^Subject: a\r\n\tfolded subject\r\n/);
  assert.match(out, /\r\nMIME-Version: 1\.0\r\nContent-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nr=C3=A9sum=C3=A9\r\n$/);
});
