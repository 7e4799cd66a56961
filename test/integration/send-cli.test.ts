/**
 * `mailnest send`: a message to a local user is in the mailbox, whole, as soon as the command
 * returns; MIME survives the trip (read back by python's email package); errors name what was
 * wrong; with the server stopped the message waits in the store and goes out on start.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { addUser, baseConfig, cli, CLI, NODE, startMailnest, tempDir, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { dataDirOf, mailbox } from '../helpers/mailbox.ts';
import { leaves, parseMail, shape } from '../helpers/parse-mail.ts';
import { queueJson, until } from '../helpers/relay.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

describe('mailnest send to a local user (no server running)', () => {
  let dir: string;
  let configFile: string;

  before(() => {
    dir = tempDir();
    configFile = writeConfig(dir, baseConfig(dir));
    addUser(configFile, 'owner@example.test', 'pw-owner-1');
    addUser(configFile, 'second@example.test', 'pw-second-1');
    assert.equal(cli(configFile, ['alias', 'add', 'root@example.test', 'owner@example.test']).status, 0);
  });

  it('delivers text from stdin and prints the queue id', async () => {
    const r = cli(configFile, ['send', '--to', 'owner@example.test', '--subject', 'Disk almost full'], 'The disk /srv is 91% full.\n');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^[0-9A-Z]{17}\n$/);
    const [msg] = await mailbox(dataDirOf(dir), 'owner@example.test');
    assert.ok(msg, 'nothing in the mailbox');
    const text = msg.toString();
    assert.match(text, /^Return-Path: <postmaster@example\.test>\r\nReceived: by mx\.example\.test \(mailnest\) with local id /);
    assert.ok(text.includes(`id ${r.stdout.trim()}`), 'the Received header does not name the queue id');
    const parsed = parseMail(msg);
    assert.equal(parsed.headers['from'], 'postmaster@example.test');
    assert.equal(parsed.headers['subject'], 'Disk almost full');
    assert.equal(parsed.root.text, 'The disk /srv is 91% full.\n');
  });

  it('send and sendmail drop Authentication-Results fields that claim the server\'s host name (RFC 8601 §5); others stay', async () => {
    const forged = 'Authentication-Results: mx.example.test; dmarc=pass header.from=bank.test';
    const theirs = 'Authentication-Results: mx.remote.test; spf=pass';
    addUser(configFile, 'results@example.test', 'pw-results-1');
    const sent = cli(configFile, ['send', '--to', 'results@example.test', '--subject', 'by send', '--header', forged, '--header', theirs], 'x\n');
    assert.equal(sent.status, 0, sent.stderr);
    const piped = cli(configFile, ['sendmail', 'results@example.test'], `${forged}\n${theirs}\nSubject: by sendmail\n\nx\n`);
    assert.equal(piped.status, 0, piped.stderr);
    // A "delivered" receipt shows the header as it was delivered: without the field either.
    const bs = cli(configFile, ['sendmail', '-bs'], `EHLO s\nMAIL FROM:<results@example.test>\nRCPT TO:<results@example.test> NOTIFY=SUCCESS\nDATA\n${forged}\n${theirs}\nSubject: by -bs\n\nx\n.\nQUIT\n`);
    assert.equal(bs.status, 0, bs.stderr);
    const receipt = (await mailbox(dataDirOf(dir), 'results@example.test')).map(String).find((x) => /^Content-Type: multipart\/report/im.test(x));
    assert.ok(receipt, 'no receipt');
    assert.ok(receipt.includes('Subject: by -bs'), receipt);
    assert.doesNotMatch(receipt, /bank\.test/);
    assert.ok(receipt.includes(theirs));
    for (const subject of ['by send', 'by sendmail', 'by -bs']) {
      const m = (await mailbox(dataDirOf(dir), 'results@example.test')).map(String).find((x) => x.includes(`Subject: ${subject}`));
      assert.ok(m, `${subject}: not delivered`);
      const header = m.slice(0, m.indexOf('\r\n\r\n'));
      assert.doesNotMatch(header, /bank\.test|Authentication-Results: mx\.example\.test/i, subject);
      assert.ok(header.includes(theirs), `${subject}: another host's results went too`);
    }
  });

  it('keeps a full MIME message whole: alternative, inline image, attachments, non-ASCII everywhere', async () => {
    const files = tempDir('mailnest-files-');
    const pdf = Buffer.concat([Buffer.from('%PDF-1.5\n'), crypto.randomBytes(4000)]);
    const png = crypto.randomBytes(700);
    const pdfName = path.join(files, 'relevé été.pdf');
    const pngName = path.join(files, 'chart.png');
    const htmlName = path.join(files, 'body.html');
    fs.writeFileSync(pdfName, pdf);
    fs.writeFileSync(pngName, png);
    fs.writeFileSync(htmlName, '<p>Grüße — see the chart:</p><img src="cid:chart.png">');
    const r = cli(configFile, [
      'send', '--from', 'Jörg Backup <owner@example.test>', '--to', 'Zoë <second@example.test>', '--cc', 'owner@example.test',
      '--bcc', 'root@example.test', '--subject', 'Sauvegarde terminée ✓', '--text', 'Tout va bien.\n', '--html-file', htmlName,
      '--inline', pngName, '--attach', pdfName, '--header', 'X-Job: nightly', '--header', 'Reply-To: ops@example.org',
    ]);
    assert.equal(r.status, 0, r.stderr);
    // owner is both Cc and (through the root alias) Bcc: one copy
    const ownerMail = await mailbox(dataDirOf(dir), 'owner@example.test');
    const secondMail = await mailbox(dataDirOf(dir), 'second@example.test');
    assert.equal(ownerMail.length, 2);
    assert.equal(secondMail.length, 1);
    for (const m of [ownerMail[1]!, secondMail[0]!]) {
      const p = parseMail(m);
      assert.deepEqual(p.defects, []);
      assert.ok(!p.headerNames.includes('bcc'));
      assert.ok(!m.toString().includes('root@example.test'), 'the Bcc address shows in the message');
      assert.equal(p.headers['subject'], 'Sauvegarde terminée ✓');
      assert.equal(p.headers['from'], 'Jörg Backup <owner@example.test>');
      assert.equal(p.headers['to'], 'Zoë <second@example.test>');
      assert.equal(p.headers['x-job'], 'nightly');
      assert.equal(p.headers['reply-to'], 'ops@example.org');
      assert.equal(shape(p.root), 'multipart/mixed(multipart/alternative(text/plain,multipart/related(text/html,image/png)),application/pdf)');
      const [t, h, img, att] = leaves(p.root);
      assert.equal(t!.text, 'Tout va bien.\n');
      assert.equal(h!.text, '<p>Grüße — see the chart:</p><img src="cid:chart.png">');
      assert.equal(img!.contentId, '<chart.png>');
      assert.ok(Buffer.from(img!.bytes!, 'base64').equals(png));
      assert.equal(att!.filename, 'relevé été.pdf');
      assert.ok(Buffer.from(att!.bytes!, 'base64').equals(pdf), 'the attachment changed');
      assert.ok(p.longestLine <= 998);
    }
  });

  it('reads text that is not UTF-8 as Latin-1, so no byte is lost', async () => {
    const r = cli(configFile, ['send', '--to', 'owner@example.test', '--subject', 'latin1'], Buffer.from('caf\xe9 cr\xe8me\n', 'latin1'));
    assert.equal(r.status, 0, r.stderr);
    const mails = await mailbox(dataDirOf(dir), 'owner@example.test');
    assert.equal(parseMail(mails[mails.length - 1]!).root.text, 'caf\u00e9 cr\u00e8me\n');
  });

  it('a quoted local part that needs no quoting is the same mailbox (RFC 5321 §4.1.2)', async () => {
    const before = (await mailbox(dataDirOf(dir), 'owner@example.test')).length;
    const r = cli(configFile, ['sendmail', '-t'], 'To: Owner <"owner"@example.test>\nSubject: quoted\n\nx\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await mailbox(dataDirOf(dir), 'owner@example.test')).length, before + 1);
  });

  it('refuses an unknown local recipient, naming it, and queues nothing', async () => {
    const before = (await mailbox(dataDirOf(dir), 'owner@example.test')).length;
    const r = cli(configFile, ['send', '--to', 'owner@example.test', '--to', 'nobody@example.test', '--text', 'x']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'mailnest: no such local user or alias: nobody@example.test\n');
    assert.equal((await mailbox(dataDirOf(dir), 'owner@example.test')).length, before);
  });

  it('bad usage exits 2 with one line naming the option', () => {
    const files = tempDir();
    const pic = (dir: string) => {
      fs.mkdirSync(path.join(files, dir), { recursive: true });
      fs.writeFileSync(path.join(files, dir, 'img.png'), 'png');
      return path.join(files, dir, 'img.png');
    };
    const spaced = path.join(files, 'my chart.png');
    fs.writeFileSync(spaced, 'png');
    const cases: [string[], RegExp][] = [
      [['send', '--text', 'x'], /at least one recipient is needed/],
      [['send', '--to', 'not-an-address', '--text', 'x'], /^mailnest: --to: "not-an-address" is not a valid address/],
      [['send', '--to', 'owner@example.test', '--text', 'x', '--text-file', '/etc/hostname'], /--text and --text-file cannot be used together/],
      [['send', '--to', 'owner@example.test', '--text', 'x', '--header', 'Content-Type: text/html'], /^mailnest: --header: header Content-Type cannot be set here/],
      // A header with an option of its own is named with the option.
      [['send', '--to', 'owner@example.test', '--text', 'x', '--header', 'Subject: s'], /^mailnest: --header: header Subject cannot be set here: it is set from --subject\n$/],
      [['send', '--to', 'owner@example.test', '--text', 'x', '--header', 'Bcc: b@example.test'], /^mailnest: --header: header Bcc cannot be set here: Bcc recipients go in --bcc and are never written into the message\n$/],
      [['send', '--to', 'owner@example.test', '--text', 'x', '--header', 'NoColon'], /^mailnest: --header: "NoColon" is not of the form/],
      // An address field given as a header is parsed as --to is: never made over or dropped.
      [['send', '--to', 'owner@example.test', '--text', 'x', '--header', 'Reply-To: a@b.example d@e.example'], /^mailnest: --header: header Reply-To: "a@b\.example d@e\.example" is not an address list/],
      [['send', '--to', 'owner@example.test', '--text', 'x', '--header', 'Sender: not an address'], /^mailnest: --header: header Sender: /],
      [['send', '--from', 'a@b, c@d', '--to', 'owner@example.test', '--text', 'x'], /^mailnest: --from: .*exactly one address/],
      // An attachment is named by its option and file.
      [['send', '--to', 'owner@example.test', '--html', 'x', '--attach', pic('one'), '--inline', pic('two'), '--inline', pic('three')],
        new RegExp(`^mailnest: --inline ${pic('three')}: Content-ID "img\\.png" is already that of --inline ${pic('two')}; each part needs its own`)],
      [['send', '--to', 'owner@example.test', '--html', 'x', '--inline', spaced], /^mailnest: --inline \S+my chart\.png: "my chart\.png" is not a Content-ID/],
    ];
    for (const [args, message] of cases) {
      const r = cli(configFile, args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.split('\n').length, 2, `more than one line: ${r.stderr}`);
    }
  });

  it('a missing attachment file is an error that names it', () => {
    const r = cli(configFile, ['send', '--to', 'owner@example.test', '--text', 'x', '--attach', '/nonexistent/report.pdf']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'mailnest: --attach /nonexistent/report.pdf: no such file\n');
  });

  it('reads an attachment from a pipe, and stops at limits.max_message_size where the file has no size (a device that never ends)', async () => {
    const work = tempDir();
    const fifo = path.join(work, 'dump.sql');
    spawnSync('mkfifo', [fifo]);
    const dump = crypto.randomBytes(300_000);
    fs.writeFileSync(path.join(work, 'data'), dump);
    // Written by a process of its own: this one waits for the command.
    spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', path.join(work, 'data'), fifo], { stdio: 'ignore' });
    const before = (await mailbox(dataDirOf(dir), 'second@example.test')).length;
    const r = cli(configFile, ['send', '--to', 'second@example.test', '--text', 'x', '--attach', fifo]);
    assert.equal(r.status, 0, r.stderr);
    const mail = await mailbox(dataDirOf(dir), 'second@example.test');
    assert.equal(mail.length, before + 1);
    const att = leaves(parseMail(mail.at(-1)!).root).find((l) => l.filename === 'dump.sql');
    assert.ok(att && Buffer.from(att.bytes!, 'base64').equals(dump), 'the piped attachment changed');
    const small = writeConfig(tempDir(), { ...baseConfig(dir), limits: { max_message_size: 2000 } });
    const zero = cli(small, ['send', '--to', 'owner@example.test', '--text', 'x', '--attach', '/dev/zero']);
    assert.equal(zero.status, 1);
    assert.equal(zero.stderr, 'mailnest: --attach /dev/zero: over limits.max_message_size (2000 bytes for the whole message)\n');
    // The files together: each is read within what those before it left.
    const half = path.join(work, 'half');
    fs.writeFileSync(half, Buffer.alloc(1200, 'a'));
    const two = cli(small, ['send', '--to', 'owner@example.test', '--text', 'x', '--attach', half, '--attach', '/dev/zero']);
    assert.equal(two.status, 1);
    assert.equal(two.stderr, 'mailnest: --attach /dev/zero: over limits.max_message_size (2000 bytes for the whole message)\n');
    const twice = cli(small, ['send', '--to', 'owner@example.test', '--text-file', '-', '--attach', half], 'b'.repeat(1000));
    assert.equal(twice.status, 1);
    assert.match(twice.stderr, /^mailnest: --attach \S+half: over limits\.max_message_size/);
  });

  it('FILE=NAME names an attachment: a pipe from process substitution gets a real name; a file whose own name has "=" is taken whole', async () => {
    const work = tempDir();
    fs.writeFileSync(path.join(work, 'a=b.txt'), 'whole name\n');
    const before = (await mailbox(dataDirOf(dir), 'second@example.test')).length;
    // bash writes <(...) as /dev/fd/63: without a name the part would be called "63".
    // A NAME may hold "=" too; "-" is stdin, here with the text given.
    const r = spawnSync('bash', ['-c', 'printf "from stdin" | "$0" "$1" -c "$2" send --to second@example.test --text x --attach <(printf "a,b")=rows.csv --attach "$3" --attach <(printf q)=2024=Q1.csv --attach -=in.txt', NODE, CLI, configFile, path.join(work, 'a=b.txt')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const mail = await mailbox(dataDirOf(dir), 'second@example.test');
    assert.equal(mail.length, before + 1);
    const parts = leaves(parseMail(mail.at(-1)!).root).slice(1).map((l) => [l.filename, l.contentType, Buffer.from(l.bytes!, 'base64').toString()]);
    assert.deepEqual(parts, [['rows.csv', 'text/csv', 'a,b'], ['a=b.txt', 'text/plain', 'whole name\n'], ['2024=Q1.csv', 'text/csv', 'q'], ['in.txt', 'text/plain', 'from stdin']]);
    // A name that is none, or empty, or not UTF-8, is said to be so; stdin is read once.
    const bad = (attach: string, input = '') => spawnSync('bash', ['-c', `printf "${input}" | "$0" "$1" -c "$2" send --to second@example.test ${input ? '' : '--text x '}--attach ${attach}`, NODE, CLI, configFile], { encoding: 'utf8', timeout: 60_000 });
    const cases: [string, string, RegExp][] = [
      ['<(printf x)=reports/db.sql', '', /^mailnest: --attach \/dev\/fd\/\d+=reports\/db\.sql: "reports\/db\.sql" is not a file name \(no path separators or control characters\)\n$/],
      ['<(printf x)=', '', /^mailnest: --attach \/dev\/fd\/\d+=: the name after "=" is empty\n$/],
      ['<(printf x)="r$(printf "\\351")sum.pdf"', '', /^mailnest: --attach \/dev\/fd\/\d+=r\uFFFDsum\.pdf: the name after "=" is not UTF-8; give it in UTF-8\n$/],
      ['-=data.csv', 'body and file', /^mailnest: only one of the text \(no --text, --text-file, --html or --html-file\), --attach -=data\.csv can read stdin\n$/],
    ];
    for (const [attach, input, message] of cases) {
      const refused = bad(attach, input);
      assert.equal(refused.status, 2, `${attach}: ${refused.stderr}`);
      assert.match(refused.stderr, message, attach);
    }
    // A file that cannot be read says why, in words.
    for (const [attach, message] of [
      [`"${work}"=foo.txt`, /: is a directory\n$/],
      // A directory's "=" followed by a path is the path's own: a file that is not there.
      [`"${work}"=2024/report.csv`, /=2024\/report\.csv: no such file\n$/],
      [`"${path.join(work, 'a=b.txt')}/=b"`, /: no such file \(a part of its path before the last "\/" is a file, not a directory\)\n$/],
      [`"${work}/${'x'.repeat(300)}"`, /: no such file \(its name, or a part of its path, is too long\)\n$/],
    ] as const) {
      const failed = bad(attach);
      assert.equal(failed.status, 1, `${attach}: ${failed.stderr}`);
      assert.match(failed.stderr, message, attach);
    }
  });

  it('a file name that is not UTF-8 is said to be so, with the way round it', () => {
    const work = tempDir();
    // "café.txt" with its "é" in Latin-1, a byte no UTF-8 text has alone.
    const r = spawnSync('bash', ['-c', 'f="$3/caf$(printf "\\351").txt"; touch "$f" && "$0" "$1" -c "$2" send --to owner@example.test --text x --attach "$f"', NODE, CLI, configFile, work], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(fs.readdirSync(work, { encoding: 'buffer' })[0]?.toString('hex'), Buffer.from('caf\xe9.txt', 'latin1').toString('hex'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^mailnest: --attach \S+caf\uFFFD\.txt: no such file: its name is not UTF-8, and the command cannot name it; rename the file, or pass it through a pipe: --attach <\(cat FILE\)=NAME\n$/);
    // The way round it is the option's own.
    const text = spawnSync('bash', ['-c', '"$0" "$1" -c "$2" send --to owner@example.test --text-file "$3/caf$(printf "\\351").txt"', NODE, CLI, configFile, work], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(text.status, 1);
    assert.match(text.stderr, /: no such file: its name is not UTF-8, and the command cannot name it; rename the file, or pass it through a pipe: --text-file <\(cat FILE\)\n$/);
  });

  it('names a file whose name holds a line end quoted, on one line', () => {
    const r = cli(configFile, ['send', '--to', 'owner@example.test', '--text', 'x', '--attach', '/nonexistent/new\nline.txt']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'mailnest: --attach "/nonexistent/new\\nline.txt": no such file\n');
    // and a NAME the message cannot carry, named by the option as given
    const file = path.join(dir, 'weekly.pdf');
    fs.writeFileSync(file, '%PDF-1.4\n');
    const named = cli(configFile, ['send', '--to', 'owner@example.test', '--text', 'x', '--attach', `${file}=a\nb.pdf`]);
    assert.equal(named.status, 2, named.stderr);
    assert.equal(named.stderr.split('\n').length, 2, named.stderr);
    assert.ok(named.stderr.startsWith(`mailnest: --attach ${JSON.stringify(`${file}=a\nb.pdf`)}: `), named.stderr);
  });

  it('refuses a message over limits.max_message_size', () => {
    const small = writeConfig(tempDir(), { ...baseConfig(dir), limits: { max_message_size: 2000 } });
    const r = cli(small, ['send', '--to', 'owner@example.test', '--text', 'y'.repeat(3000)]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^mailnest: the message is \d+ bytes; at most 2000 are allowed \(limits\.max_message_size\)\n$/);
  });
});

describe('mailnest send with the server stopped, then started', () => {
  let dir: string;
  let configFile: string;
  let sink: SmtpSink;
  let server: RunningMailnest | undefined;

  before(async () => {
    dir = tempDir();
    sink = new SmtpSink();
    await sink.start();
    configFile = writeConfig(dir, baseConfig(dir, {
      relay: { routes: { 'remote.test': `127.0.0.1:${sink.port}` } },
      queue: { retry: ['1s'], poll_interval: '200ms' },
    }));
  });

  after(async () => {
    await server?.stop();
    await sink.stop();
  });

  it('waits in the store, and the server relays it on start', async () => {
    const data = crypto.randomBytes(2000);
    const file = path.join(dir, 'status.bin');
    fs.writeFileSync(file, data);
    const r = cli(configFile, ['send', '--from', 'Backup <backup@example.test>', '--to', 'owner@remote.test', '--bcc', 'audit@remote.test',
      '--subject', 'état du serveur', '--text', 'all good', '--attach', file]);
    assert.equal(r.status, 0, r.stderr);
    const id = r.stdout.trim();
    // queued, nothing sent yet
    const queued = queueJson(configFile);
    assert.deepEqual(queued.map((e) => e.id), [id]);
    assert.equal(queued[0]!.from, 'backup@example.test');
    assert.deepEqual(queued[0]!.recipients.map((x) => x.address).sort(), ['audit@remote.test', 'owner@remote.test']);
    assert.equal(sink.messages.length, 0);

    server = await startMailnest(dir, configFile);
    const [m] = await sink.waitFor(1);
    assert.equal(m!.from, 'backup@example.test');
    assert.deepEqual([...m!.to].sort(), ['audit@remote.test', 'owner@remote.test']);
    const p = parseMail(m!.data);
    assert.equal(p.headers['subject'], 'état du serveur');
    assert.ok(!p.headerNames.includes('bcc'));
    assert.ok(!m!.data.toString().includes('audit@'), 'the Bcc address shows in the relayed message');
    const att = leaves(p.root)[1]!;
    assert.equal(att.filename, 'status.bin');
    assert.ok(Buffer.from(att.bytes!, 'base64').equals(data));
    await until('the queue to empty', () => queueJson(configFile).length === 0);
  });

  it('a running server picks up what send queues', async () => {
    const r = cli(configFile, ['send', '--to', 'later@remote.test', '--subject', 'while running', '--text', 'second']);
    assert.equal(r.status, 0, r.stderr);
    const all = await sink.waitFor(2);
    const m = all[1]!;
    assert.deepEqual(m.to, ['later@remote.test']);
    assert.equal(m.from, 'postmaster@example.test');
    assert.equal(parseMail(m.data).headers['subject'], 'while running');
  });
});
