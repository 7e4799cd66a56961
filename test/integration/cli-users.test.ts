import { test } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { configSchema } from '../../src/config/schema.ts';
import { parse as parseToml } from 'smol-toml';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { verifyPassword } from '../../src/auth/password.ts';
import { addUser, baseConfig, cli, CLI, NODE, python, tempDir, writeConfig } from '../helpers/server.ts';

test('user add / list --json / passwd / remove, with one-line errors and exit codes', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  assert.equal(cli(cfg, ['user', 'add', 'Alice@Example.Test', '--password-stdin'], 'pw1\n').status, 0);
  const dup = cli(cfg, ['user', 'add', 'alice@example.test', '--password-stdin'], 'pw\n');
  assert.equal(dup.status, 1);
  assert.equal(dup.stderr, 'mailnest: user alice@example.test already exists\n');
  const foreign = cli(cfg, ['user', 'add', 'bob@elsewhere.test', '--password-stdin'], 'pw\n');
  assert.equal(foreign.status, 2);
  assert.match(foreign.stderr, /elsewhere\.test is not one of the configured domains/);
  const long = cli(cfg, ['user', 'add', `${'l'.repeat(65)}@example.test`, '--password-stdin'], 'pw\n');
  assert.deepEqual([long.status, long.stderr], [2, `mailnest: user ${'l'.repeat(65)}@example.test: its local part is 65 octets, and RFC 5321 section 4.5.3.1.1 allows 64; other servers may refuse to send mail to it\n`]);
  assert.deepEqual(JSON.parse(cli(cfg, ['user', 'list', '--json']).stdout), [{ address: 'Alice@Example.Test', messages: 0, bytes: 0 }]);
  assert.match(cli(cfg, ['user', 'list']).stdout, /^ADDRESS\s+MESSAGES\s+BYTES\nAlice@Example\.Test\s+0\s+0\n$/);
  assert.equal(cli(cfg, ['user', 'passwd', 'alice@example.test', '--password-stdin'], 'pw2\n').status, 0);
  assert.equal(cli(cfg, ['user', 'passwd', 'nobody@example.test', '--password-stdin'], 'pw2\n').status, 1);
  // What could name no user is bad usage, said as add says it.
  for (const [args, message] of [
    [['user', 'passwd', 'not an address', '--password-stdin'], 'mailnest: user "not an address" is not a valid address (local-part@domain)\n'],
    [['user', 'remove', 'not an address'], 'mailnest: user "not an address" is not a valid address (local-part@domain)\n'],
    [['alias', 'remove', 'not an address'], 'mailnest: alias "not an address" is not a valid address (local-part@domain)\n'],
  ] as const) {
    const r = cli(cfg, [...args], 'pw2\n');
    assert.deepEqual([r.status, r.stderr], [2, message], args.join(' '));
  }
  const elsewhere = cli(cfg, ['user', 'remove', 'e1@elsewhere.test']);
  assert.equal(elsewhere.status, 2);
  assert.match(elsewhere.stderr, /elsewhere\.test is not one of the configured domains/);
  // A password given with a CR alone at its end (printf 'pw\r') is the same password.
  assert.equal(cli(cfg, ['user', 'passwd', 'alice@example.test', '--password-stdin'], 'pw3\r').status, 0);
  const store = new SqliteStore(path.join(dir, 'data'));
  try {
    assert.ok(await verifyPassword('pw3', (await store.findUser('alice@example.test'))?.passwordHash));
  } finally {
    store.close();
  }
  assert.equal(cli(cfg, ['user', 'remove', 'alice@example.test']).status, 0);
  assert.deepEqual(JSON.parse(cli(cfg, ['user', 'list', '--json']).stdout), []);
  const db = fs.readFileSync(path.join(dir, 'data', 'mailnest.sqlite'));
  assert.ok(!db.includes('pw1') && !db.includes('pw2'), 'no plaintext password in the store');
});

test('alias add refuses an alias that would lead through more aliases than are followed', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  addUser(cfg, 'bob@example.test', 'pw');
  // chain1 -> chain2 -> ... -> chain9 -> bob, put in the store at once.
  const store = new SqliteStore(path.join(dir, 'data'));
  for (let i = 9; i >= 1; i--) await store.addAlias(`chain${i}@example.test`, [i === 9 ? 'bob@example.test' : `chain${i + 1}@example.test`]);
  store.close();
  const deep = cli(cfg, ['alias', 'add', 'chain0@example.test', 'chain1@example.test']);
  assert.equal(deep.status, 1);
  assert.equal(deep.stderr, 'mailnest: chain0@example.test -> chain1@example.test would lead through more than 8 aliases, and no more are followed: its mail would go to nobody; point it nearer the mailboxes\n');
  assert.equal(cli(cfg, ['alias', 'add', 'chain0@example.test', 'chain3@example.test']).status, 0, 'eight aliases are followed');
  // Built from the top down, the last link makes the chain too deep for the alias at its top,
  // which the link's own alias does not see (and chain1, too deep already, stops nobody).
  addUser(cfg, 'carol@example.test', 'pw');
  for (let i = 1; i <= 8; i++) assert.equal(cli(cfg, ['alias', 'add', `top${i}@example.test`, `top${i + 1}@example.test`]).status, 0);
  const last = cli(cfg, ['alias', 'add', 'top9@example.test', 'carol@example.test']);
  assert.equal(last.status, 1);
  assert.equal(last.stderr, 'mailnest: top9@example.test -> carol@example.test: top1@example.test, which leads to top9@example.test, would lead through more than 8 aliases, and no more are followed: its mail would go to nobody; point it nearer the mailboxes\n');
  assert.equal(cli(cfg, ['alias', 'add', 'top8@example.test', 'carol@example.test']).status, 0, 'eight aliases are followed');
});

test('alias add / list --json / remove', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  assert.equal(cli(cfg, ['alias', 'add', 'team@example.test', 'a@example.test', 'b@remote.test']).status, 0);
  assert.equal(cli(cfg, ['alias', 'add', 'team@example.test', 'c@example.test']).status, 0);
  assert.deepEqual(JSON.parse(cli(cfg, ['alias', 'list', '--json']).stdout), [{ alias: 'team@example.test', targets: ['a@example.test', 'b@remote.test', 'c@example.test'] }]);
  assert.equal(cli(cfg, ['alias', 'add', 'x@example.test', 'not an address']).status, 2);
  assert.equal(cli(cfg, ['alias', 'remove', 'team@example.test']).status, 0);
  assert.equal(cli(cfg, ['alias', 'remove', 'team@example.test']).status, 1);
  // A removal that leaves a domain's postmaster reaching nobody says so (RFC 5321 §4.5.1).
  addUser(cfg, 'a@example.test', 'pw');
  assert.equal(cli(cfg, ['alias', 'add', 'mailer-daemon@example.test', 'a@example.test']).status, 0);
  assert.equal(cli(cfg, ['alias', 'add', 'postmaster@example.test', 'MAILER-DAEMON@example.test']).status, 0);
  const unreached = cli(cfg, ['alias', 'remove', 'mailer-daemon@example.test']);
  assert.equal(unreached.status, 0);
  assert.equal(unreached.stderr, 'mailnest: note: postmaster@example.test now reaches nobody, and mail for it is refused; point it at a mailbox (mailnest alias add postmaster@example.test ADDRESS)\n');
  assert.equal(cli(cfg, ['alias', 'remove', 'postmaster@example.test']).stderr, '');
  // An alias whose mail would go round and reach nobody is refused, and nothing is added.
  assert.equal(cli(cfg, ['alias', 'add', 'loop1@example.test', 'loop2@example.test']).status, 0);
  const loop = cli(cfg, ['alias', 'add', 'loop2@example.test', 'loop1@example.test']);
  assert.equal(loop.status, 1);
  assert.match(loop.stderr, /^mailnest: loop2@example\.test -> loop1@example\.test would make a loop: .*\n$/);
  assert.equal(cli(cfg, ['alias', 'add', 'self@example.test', 'SELF@example.test']).status, 1);
  assert.deepEqual(JSON.parse(cli(cfg, ['alias', 'list', '--json']).stdout).map((a: { alias: string }) => a.alias), ['loop1@example.test']);
  // A user and an alias never share an address (the user would win, silently).
  assert.equal(cli(cfg, ['user', 'add', 'bob@example.test', '--password-stdin'], 'pw\n').status, 0);
  assert.match(cli(cfg, ['alias', 'add', 'bob@example.test', 'a@example.test']).stderr, /^mailnest: bob@example\.test is a user; an alias of that address would never be used\n$/);
  const taken = cli(cfg, ['user', 'add', 'LOOP1@example.test', '--password-stdin'], 'pw\n');
  assert.equal(taken.status, 1);
  assert.equal(taken.stderr, 'mailnest: LOOP1@example.test is an alias; remove it first (mailnest alias remove LOOP1@example.test)\n');
  // An existing user is said to exist, with or without a password given.
  assert.equal(cli(cfg, ['user', 'add', 'bob@example.test', '--password-stdin'], '').stderr, 'mailnest: user bob@example.test already exists\n');
  const empty = cli(cfg, ['user', 'add', 'carol@example.test', '--password-stdin'], '\n');
  assert.deepEqual([empty.status, empty.stderr], [2, 'mailnest: no password on stdin (an empty line gives none)\n']);
  // An alias may name a user to come; meanwhile mail to it is refused, saying why, and the
  // alias says so when it is made.
  const later = cli(cfg, ['alias', 'add', 'later@example.test', 'not-yet@example.test']);
  assert.equal(later.status, 0);
  assert.equal(later.stderr, 'mailnest: note: not-yet@example.test is no user or alias yet; mail for it through later@example.test is refused until it is\n');
  const dangling = cli(cfg, ['send', '--to', 'later@example.test', '--text', 'x']);
  assert.equal(dangling.status, 1);
  assert.equal(dangling.stderr, 'mailnest: no such local user or alias: later@example.test (an alias whose targets do not exist)\n');
  // A target named twice is no loop, and is kept once, however its case is written.
  assert.equal(cli(cfg, ['alias', 'add', 'twice@example.test', 'ghost@example.test', 'GHOST@example.test']).status, 0);
  assert.equal(cli(cfg, ['alias', 'add', 'twice@example.test', 'Ghost@Example.Test']).status, 0);
  assert.deepEqual((JSON.parse(cli(cfg, ['alias', 'list', '--json']).stdout) as { alias: string; targets: string[] }[]).find((a) => a.alias === 'twice@example.test')?.targets, ['ghost@example.test']);
  // A quoted local part that needs no quotes is the same address (RFC 5321 §4.1.2): a target is
  // kept without them, and reaches the user; a user or an alias name is asked for without them.
  const quoted = cli(cfg, ['alias', 'add', 'qq@example.test', '"bob"@example.test', '"john smith"@remote.test']);
  assert.deepEqual([quoted.status, quoted.stdout, quoted.stderr], [0, 'qq@example.test -> bob@example.test, "john smith"@remote.test\n', '']);
  assert.equal(cli(cfg, ['send', '--to', 'qq@example.test', '--text', 'x']).status, 0);
  assert.equal(cli(cfg, ['alias', 'remove', 'qq@example.test']).status, 0);
  assert.deepEqual([cli(cfg, ['user', 'add', '"carol"@example.test', '--password-stdin'], 'pw\n')].map((r) => [r.status, r.stderr]), [[2, 'mailnest: user "carol"@example.test: write it without the quotes, carol@example.test, the same address\n']]);
  assert.equal(cli(cfg, ['alias', 'add', '"a b"@example.test', 'bob@example.test']).stderr, 'mailnest: alias "a b"@example.test: a local part that needs quotes is not taken for users and aliases\n');
  // A loop that also reaches someone is a list that names itself: allowed.
  assert.equal(cli(cfg, ['alias', 'add', 'loop2@example.test', 'loop1@example.test', 'd@remote.test']).status, 0);
  // Removing a user that aliases name says which aliases now lead to nobody.
  assert.equal(cli(cfg, ['alias', 'add', 'root@example.test', 'Bob@example.test']).stderr, '');
  const removed = cli(cfg, ['user', 'remove', 'bob@example.test']);
  assert.equal(removed.status, 0);
  assert.equal(removed.stderr, 'mailnest: note: alias root@example.test still names bob@example.test; remove or change it (mailnest alias remove root@example.test)\n');
});

test('alias add @domain: the catch-all of a configured domain, refused where its mail would come back to it', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  for (const [name, why] of [
    ['@', 'alias "@" is neither an address (local-part@domain) nor a catch-all (@domain)'],
    ['@a@example.test', 'alias "@a@example.test" is neither an address (local-part@domain) nor a catch-all (@domain)'],
    ['@remote.test', 'alias @remote.test: remote.test is not one of the configured domains (example.test); add it to "domains" in the config'],
  ]) {
    const r = cli(cfg, ['alias', 'add', name!, 'me@remote.test']);
    assert.deepEqual([r.status, r.stderr], [2, `mailnest: ${why}\n`], name);
  }
  const loop = cli(cfg, ['alias', 'add', '@example.test', 'later@example.test']);
  assert.deepEqual([loop.status, loop.stderr], [1, 'mailnest: @example.test -> later@example.test would make a loop: its aliases would lead back to themselves and its mail to nobody; an address at example.test that is no user or alias yet is caught by @example.test itself: add it first\n']);
  addUser(cfg, 'later@example.test', 'pw');
  assert.deepEqual([cli(cfg, ['alias', 'add', '@Example.Test', 'later@example.test']).status], [0]);
  assert.deepEqual(JSON.parse(cli(cfg, ['alias', 'list', '--json']).stdout), [{ alias: '@Example.Test', targets: ['later@example.test'] }]);
  // Mail to any name there reaches the user (the queue id printed is the proof it was taken).
  const sent = cli(cfg, ['send', '--to', 'anyone@example.test', '--text', 'x']);
  assert.deepEqual([sent.status, sent.stderr], [0, '']);
  // What the catch-all takes from now on is said: an alias's target nobody has (a typing error?),
  // and an address removed.
  const typo = cli(cfg, ['alias', 'add', 'team@example.test', 'latr@example.test']);
  assert.deepEqual([typo.status, typo.stderr], [0, 'mailnest: note: latr@example.test is no user or alias yet; mail for it through team@example.test goes to the catch-all @example.test until it is\n']);
  addUser(cfg, 'gone@example.test', 'pw');
  for (const [what, address] of [['user', 'gone@example.test'], ['alias', 'team@example.test']]) {
    const removed = cli(cfg, [what!, 'remove', address!]);
    assert.deepEqual([removed.status, removed.stderr], [0, `mailnest: note: mail for ${address} now goes to the catch-all @example.test, whose users may also send as it\n`]);
  }
  assert.equal(cli(cfg, ['alias', 'remove', '@example.test']).status, 0);
  const gone = cli(cfg, ['alias', 'remove', '@example.test']);
  assert.deepEqual([gone.status, gone.stderr], [1, 'mailnest: no alias @example.test\n']);
  assert.equal(cli(cfg, ['send', '--to', 'anyone@example.test', '--text', 'x']).status, 1);
});

test('alias add a -> b and b -> a at the same instant: never both, however the two commands interleave', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const run = (args: string[]) => new Promise<number>((resolve) => {
    spawn(NODE, [CLI, '-c', cfg, ...args], { stdio: 'ignore' }).on('close', (code) => resolve(code ?? -1));
  });
  // Twenty commands at once, so that checks and inserts of a pair fall between each other.
  const pairs = Array.from({ length: 10 }, (_, i) => Promise.all([
    run(['alias', 'add', `a${i}@example.test`, `b${i}@example.test`]),
    run(['alias', 'add', `b${i}@example.test`, `a${i}@example.test`]),
  ]));
  const outcomes = await Promise.all(pairs);
  assert.deepEqual(outcomes.map((pair) => pair.toSorted()), outcomes.map(() => [0, 1]), 'one of each pair added, the other refused as a loop');
  const aliases = JSON.parse(cli(cfg, ['alias', 'list', '--json']).stdout) as unknown[];
  assert.equal(aliases.length, 10);
});

test('config errors and bad usage: one line, no stack trace, exit 1 / 2', () => {
  const dir = tempDir();
  const file = path.join(dir, 'bad.toml');
  fs.writeFileSync(file, '[limits]\nmax_connections = "many"\n');
  const r = cli(file, ['user', 'list']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `mailnest: ${file}: limits.max_connections = "many" is not allowed: expected a number\n`);
  // Bad usage: one line and exit 2, whatever commander found wrong.
  for (const [args, line] of [
    [['user', 'frobnicate'], "mailnest: unknown command 'frobnicate' (see --help)\n"],
    [['nosuchcommand'], "mailnest: unknown command 'nosuchcommand' (see --help)\n"],
    [['user', 'add'], "mailnest: missing required argument 'address' (see --help)\n"],
    [['send', '--bogus'], "mailnest: unknown option '--bogus' (see --help)\n"],
    [['queue', 'list', '--jsn'], "mailnest: unknown option '--jsn' (Did you mean --json?) (see --help)\n"],
    // `-c "$CONF"` with CONF unset: not the defaults and a stray ./data.
    [['-c', '', 'user', 'list'], "mailnest: option '-c, --config <file>' argument '' is invalid. an empty file name; give the path of the config file (see --help)\n"],
  ] as const) {
    const usage = cli(undefined, [...args]);
    assert.equal(usage.status, 2, args.join(' '));
    assert.equal(usage.stderr, line);
  }
  const missing = cli(path.join(dir, 'absent.toml'), ['user', 'list']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^mailnest: cannot read config file .*absent\.toml: no such file \(ENOENT\); name an existing one, or write a starter one with `mailnest init`\n$/);
  const directory = cli(dir, ['user', 'list']);
  assert.deepEqual([directory.status, directory.stderr], [1, `mailnest: cannot read config file ${dir}: it is a directory (EISDIR); name the file in it\n`]);
});

test('output cut short by its reader (| head -1, | grep -q) is no failure: exit 0, nothing on stderr', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  addUser(cfg, 'a@example.test', 'pw');
  // The reader closes its end before mailnest writes, and stays: every write meets EPIPE.
  const r = spawnSync('bash', ['-c', '"$0" "$1" -c "$2" user list | { exec <&-; sleep 2; }; echo "status ${PIPESTATUS[0]}"', NODE, CLI, cfg], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, 'status 0\n');
  // Unless the output is the result: a token made and never shown, an SMTP dialogue cut off.
  const token = spawnSync('bash', ['-c', '"$0" "$1" -c "$2" token create ci | { exec <&-; sleep 2; }; echo "status ${PIPESTATUS[0]}"', NODE, CLI, cfg], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(token.stdout, 'status 1\n');
  assert.equal(token.stderr, 'mailnest: its output could not be written: its reader closed it (EPIPE); token ci was made and not shown: revoke it (mailnest token revoke ci) and make it again\n');
  const bs = spawnSync('bash', ['-c', 'printf "EHLO x\\nMAIL FROM:<a@example.test>\\n" | "$0" "$1" -c "$2" sendmail --sysexits -bs | { exec <&-; sleep 2; }; echo "status ${PIPESTATUS[1]}"', NODE, CLI, cfg], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(bs.stdout, 'status 74\n', bs.stderr);
  assert.match(bs.stderr, /^mailnest: its output could not be written: its reader closed it \(EPIPE\); the SMTP dialogue was cut off/);
});

test('output that cannot be written (a full disk) is one line on stderr and exit 1, never a stack trace', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  addUser(cfg, 'a@example.test', 'pw');
  const full = fs.openSync('/dev/full', 'w');
  try {
    const r = spawnSync(NODE, [CLI, '-c', cfg, 'user', 'list'], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8', timeout: 60_000 });
    assert.deepEqual([r.status, r.stderr], [1, 'mailnest: its output could not be written: ENOSPC\n']);
  } finally {
    fs.closeSync(full);
  }
});

test('MAILNEST_CONFIG names the config file', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  assert.equal(cli(undefined, ['user', 'add', 'env@example.test', '--password-stdin'], 'pw\n', { MAILNEST_CONFIG: cfg }).status, 0);
  assert.equal(JSON.parse(cli(cfg, ['user', 'list', '--json']).stdout).length, 1);
  // Set and empty, it counts as unset: init writes ./mailnest.toml, not a file named "".
  const work = tempDir();
  const init = spawnSync(NODE, [CLI, 'init', '--hostname', 'mail.example.org'], { cwd: work, env: { ...process.env, MAILNEST_CONFIG: '' }, encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  assert.ok(fs.existsSync(path.join(work, 'mailnest.toml')));
  assert.ok(fs.existsSync(path.join(work, 'data', 'dkim')), 'data_dir beside the file');
});

test('init writes a starter config that mailnest accepts, and refuses to overwrite it', () => {
  const dir = tempDir();
  const file = path.join(dir, 'mailnest.toml');
  const r = cli(file, ['init', '--hostname', 'mail.example.org', '--domain', 'example.org']);
  assert.equal(r.status, 0, r.stderr);
  const text = fs.readFileSync(file, 'utf8');
  assert.match(text, /hostname = "mail\.example\.org"/);
  assert.match(text, /domains = \["example\.org"\]/);
  assert.equal(cli(file, ['user', 'list', '--json']).status, 0, 'the starter config loads');
  // Every key there is, in its section, set or shown commented out (IMAP is not served yet).
  for (const key of configKeys().filter((k) => !/^listen\.imaps?$/.test(k))) {
    const [section, name] = key.includes('.') ? key.split('.') as [string, string] : ['', key];
    const body = section ? text.split(`\n[${section}]\n`)[1]?.split(/\n\[/)[0] ?? '' : text.split(/\n\[/)[0]!;
    assert.match(body, new RegExp(`(^|[#,]\\s*|\\n)${name}\\s+=`), `${key} in the starter file`);
  }
  // A line commented out shows the default, unless its comment says "e.g.": set alone, it
  // changes nothing.
  const defaults = parseConfig({});
  let section = '';
  for (const line of text.split('\n')) {
    const head = /^\[(\w+)\]$/.exec(line);
    if (head) {
      section = head[1]!;
      continue;
    }
    const m = /^# (\w+)\s*=\s*(.+?)(?:\s+#(.*))?$/.exec(line);
    if (!m || section === 'listen' || (m[3] ?? '').includes('e.g.')) continue;
    const value = parseToml(`v = ${m[2]}`).v;
    assert.deepEqual(parseConfig(section ? { [section]: { [m[1]!]: value } } : { [m[1]!]: value }), defaults, `${section}.${m[1]} = ${m[2]} is shown as the default`);
  }
  // The key whose record init prints is the one under the file's data_dir, which dns (and the
  // server) use, wherever the command runs from.
  const printed = /p=([A-Za-z0-9+/=]+)/.exec(r.stdout)?.[1];
  assert.ok(printed && fs.existsSync(path.join(dir, 'data', 'dkim')), r.stdout);
  assert.equal(/p=([A-Za-z0-9+/=]+)/.exec(cli(file, ['dns']).stdout)?.[1], printed);
  assert.equal(cli(file, ['init', '--hostname', 'mail.example.org']).status, 1);
  // A directory named as the file: not to be replaced, --force or not, and said so.
  const folder = path.join(dir, 'conf');
  fs.mkdirSync(folder);
  for (const force of [[], ['--force']]) {
    const d = cli(folder, ['init', '--hostname', 'mail.example.org', ...force]);
    assert.deepEqual([d.status, d.stderr], [1, `mailnest: ${folder} is a directory; name the file to write in it (-c ${path.join(folder, 'mailnest.toml')})\n`]);
  }
  // A link named as the file (one kept by configuration management): not replaced by a file of
  // its own, which would silently end the link, nor written through; said so, with the way.
  const link = path.join(dir, 'link.toml');
  fs.symlinkSync('mailnest.toml', link);
  const kept = fs.readFileSync(file, 'utf8');
  for (const force of [[], ['--force']]) {
    const l = cli(link, ['init', '--hostname', 'mail.example.com', ...force]);
    assert.deepEqual([l.status, l.stderr], [1, `mailnest: ${link} is a symbolic link to mailnest.toml: name the file itself (-c ${file}) to write it, or remove the link\n`]);
  }
  assert.equal(fs.readlinkSync(link), 'mailnest.toml');
  assert.equal(fs.readFileSync(file, 'utf8'), kept);
  // The domain from the host name; none from a bare host name, and a bad name is bad usage.
  const other = path.join(dir, 'other.toml');
  assert.equal(cli(other, ['init', '--hostname', 'mx.mail.example.net']).status, 0);
  assert.match(fs.readFileSync(other, 'utf8'), /domains = \["mail\.example\.net"\]/);
  // Listeners on loopback to try it out; --public writes the standard ports on every address,
  // the HTTP API left on loopback.
  assert.deepEqual(loadConfig(file).listen.smtp, ['127.0.0.1:2525']);
  const open = path.join(dir, 'public.toml');
  assert.equal(cli(open, ['init', '--hostname', 'mail.example.org', '--public']).status, 0);
  const listen = loadConfig(open).listen;
  assert.deepEqual([listen.smtp, listen.submission, listen.submissions, listen.pop3, listen.pop3s, listen.http],
    [['0.0.0.0:25'], ['0.0.0.0:587'], ['0.0.0.0:465'], ['0.0.0.0:110'], ['0.0.0.0:995'], ['127.0.0.1:8025']]);
  for (const args of [['--hostname', 'vm'], ['--hostname', 'vm', '--domain', 'example.org']]) {
    const bare = cli(path.join(dir, 'bare.toml'), ['init', ...args]);
    assert.equal(bare.status, 2);
    assert.match(bare.stderr, /^mailnest: the host name "vm" is not a fully qualified domain name, which the MX record and EHLO need \(RFC 5321 §2\.3\.5\): give a fully qualified one, e\.g\. --hostname mail\.example\.com/);
  }
  assert.equal(cli(path.join(dir, 'bad.toml'), ['init', '--hostname', 'bad host', '--domain', 'example.org']).status, 2);
  // An address is no host name either (its "domain" would be the address without its first
  // number), written in any digits; nor is it a mail domain.
  for (const [args, host] of [[['--hostname', '203.0.113.5'], '203.0.113.5'], [['--hostname', '203.0.113.5', '--domain', 'example.org'], '203.0.113.5'], [['--hostname', '\uff12\uff10\uff13.0.113.5'], '\uff12\uff10\uff13.0.113.5']] as const) {
    const address = cli(path.join(dir, 'bare.toml'), ['init', ...args]);
    assert.equal(address.status, 2);
    assert.ok(address.stderr.startsWith(`mailnest: the host name ${JSON.stringify(host)} is not a fully qualified domain name`), address.stderr);
  }
  const ipDomain = cli(path.join(dir, 'bare.toml'), ['init', '--hostname', 'mail.example.org', '--domain', '192.0.2.1']);
  assert.equal(ipDomain.status, 2);
  assert.equal(ipDomain.stderr, 'mailnest: the mail domain "192.0.2.1" reads as an IP address, not a domain name (its last label is all digits): give the domain of your addresses, e.g. --domain example.com\n');
  assert.ok(!fs.existsSync(path.join(dir, 'bare.toml')) && !fs.existsSync(path.join(dir, 'bad.toml')));
  // --data-dir: the file names it, and the key whose record is printed is made there.
  const elsewhere = path.join(dir, 'var lib "mailnest"');
  const placed = path.join(dir, 'placed.toml');
  const made = cli(placed, ['init', '--hostname', 'mail.example.org', '--data-dir', elsewhere]);
  assert.equal(made.status, 0, made.stderr);
  assert.equal(loadConfig(placed).data_dir, elsewhere);
  assert.ok(fs.existsSync(path.join(elsewhere, 'dkim')));
  assert.equal(/p=([A-Za-z0-9+/=]+)/.exec(cli(placed, ['dns']).stdout)?.[1], /p=([A-Za-z0-9+/=]+)/.exec(made.stdout)?.[1]);
});

test('init: what would fail after the file is written is said before it; --force keeps the group and permissions given to the file', { skip: process.getuid?.() === 0 ? false : 'needs root, to give the file a group' }, (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'mailnest.toml');
  // Into a directory that is not there.
  const missing = cli(path.join(dir, 'etc', 'mailnest.toml'), ['init', '--hostname', 'mail.example.org']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^mailnest: cannot write \S+: \S+etc is not a directory; make it first \(mkdir -p \S+\)\n$/);
  // With a data_dir that is a file: nothing written.
  fs.writeFileSync(path.join(dir, 'afile'), '');
  const bad = cli(file, ['init', '--hostname', 'mail.example.org', '--data-dir', 'afile']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^mailnest: --data-dir afile: \S+afile is not a directory; point data_dir at a directory/);
  assert.ok(!fs.existsSync(file), 'the file was written all the same');
  // Nor with one that cannot be made, under a file or where nothing can be.
  const under = cli(file, ['init', '--hostname', 'mail.example.org', '--data-dir', 'afile/sub']);
  assert.equal(under.status, 1);
  assert.match(under.stderr, /^mailnest: --data-dir afile\/sub: \S+afile\/sub cannot be made: \S+afile is a file, not a directory;/);
  const proc = cli(file, ['init', '--hostname', 'mail.example.org', '--data-dir', '/proc/mailnest-data']);
  assert.equal(proc.status, 1);
  assert.match(proc.stderr, /^mailnest: --data-dir \/proc\/mailnest-data: \/proc\/mailnest-data cannot be made \(ENOENT\)/);
  // The default one, named as data_dir: no --data-dir was given.
  const shared = tempDir();
  fs.chmodSync(shared, 0o755);
  const denied = path.join(shared, 'denied');
  fs.mkdirSync(denied, { mode: 0o555 });
  const asNobody = spawnSync('runuser', ['-u', 'nobody', '--', NODE, CLI, '-c', path.join(denied, 'mailnest.toml'), 'init', '--hostname', 'mail.example.org'], { encoding: 'utf8' });
  if (asNobody.error !== undefined || process.getuid?.() !== 0) {
    t.diagnostic('a data_dir refused by the system is not tried: needs root and runuser');
  } else {
    assert.equal(asNobody.status, 1, asNobody.stderr);
    assert.match(asNobody.stderr, /^mailnest: data_dir \S+ cannot be made \(EACCES\);/);
  }
  assert.ok(!fs.existsSync(file), 'the file was written all the same');
  // Made readable by the service's group, as the README says; --force keeps that, not more.
  assert.equal(cli(file, ['init', '--hostname', 'mail.example.org']).status, 0);
  fs.chownSync(file, 0, 65534);
  fs.chmodSync(file, 0o644);
  assert.equal(cli(file, ['init', '--hostname', 'mail.example.net', '--force']).status, 0);
  const st = fs.statSync(file);
  assert.deepEqual([st.gid, st.mode & 0o777], [65534, 0o640]);
  assert.match(fs.readFileSync(file, 'utf8'), /mail\.example\.net/);
});

test('start as root on a data_dir that is another user\'s is refused, naming the user to run it as; nothing is made there', { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
  const dir = tempDir();
  const data = path.join(dir, 'data');
  fs.mkdirSync(data, { mode: 0o700 });
  fs.chownSync(data, 65534, 65534);
  const cfg = writeConfig(dir, baseConfig(dir));
  const r = cli(cfg, ['start']);
  assert.equal(r.status, 1);
  const name = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[2] === '65534')?.split(':')[0] ?? 'the user with uid 65534';
  assert.equal(r.stderr, `mailnest: data_dir ${data} is ${name}'s: start the server as ${name} (${name.startsWith('the user') ? "systemd's User=" : `systemd's User=, or runuser -u ${name} -- mailnest -c ${cfg} start`}), with CAP_NET_BIND_SERVICE for ports under 1024 (see the README's unit), or give data_dir to root if the server is to run as root; as root it would make files there that ${name} cannot open\n`);
  assert.deepEqual(fs.readdirSync(data), []);
  // So is one not made yet in a directory of that user's, as the other commands judge it.
  const parent = tempDir();
  fs.chownSync(parent, 65534, 65534);
  const later = writeConfig(dir, baseConfig(dir, { data_dir: path.join(parent, 'data') }));
  const r2 = cli(later, ['start']);
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /^mailnest: data_dir .* start the server as /);
  assert.equal(fs.existsSync(path.join(parent, 'data')), false);
});

test('a password typed twice differently on a terminal is a failure (exit 1), not bad usage, and adds nobody', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const script = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], '-c', sys.argv[3], 'user', 'add', 'tty@example.test'])
out = b''
def until(word):
    global out
    while word not in out:
        out += os.read(fd, 4096)
until(b'Password:'); os.write(fd, b'one-password\\n')
until(b'Again:'); os.write(fd, b'another-one\\n')
try:
    while True:
        chunk = os.read(fd, 4096)
        if not chunk: break
        out += chunk
except OSError:
    pass
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
print(out.decode())
`;
  const r = python(script, [NODE, CLI, cfg]);
  const [code, ...rest] = r.stdout.split('\n');
  assert.equal(code, '1', r.stdout + r.stderr);
  assert.match(rest.join('\n'), /mailnest: the passwords do not match; nothing was changed/);
  assert.doesNotMatch(cli(cfg, ['user', 'list']).stdout, /tty@/);
  // Ctrl-D, the end of input, cancels as Ctrl-C does, where it would have been a character of
  // the password: a failure (exit 1), not bad usage.
  const eof = python(script.replace("os.write(fd, b'one-password\\n')", "os.write(fd, b'\\x04')").replace("until(b'Again:'); os.write(fd, b'another-one\\n')", ''), [NODE, CLI, cfg]);
  const [eofCode, ...eofRest] = eof.stdout.split('\n');
  assert.equal(eofCode, '1', eof.stdout + eof.stderr);
  assert.match(eofRest.join('\n'), /mailnest: cancelled/);
});

/** Every key of the configuration, as "section.key" or "key". */
function configKeys(): string[] {
  const keys: string[] = [];
  for (const [name, schema] of Object.entries(configSchema.shape)) {
    let inner: unknown = schema;
    while (inner && !(inner as { shape?: unknown }).shape && typeof (inner as { unwrap?: unknown }).unwrap === 'function') inner = (inner as { unwrap(): unknown }).unwrap();
    const shape = (inner as { shape?: Record<string, unknown> }).shape;
    if (shape) keys.push(...Object.keys(shape).map((k) => `${name}.${k}`));
    else keys.push(name);
  }
  return keys;
}

test('data_dir made in advance with 0755 is made private, and what mailnest writes there is its own', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir, { mode: 0o755 });
  fs.chmodSync(dataDir, 0o755);
  assert.equal(cli(cfg, ['user', 'add', 'a@example.test', '--password-stdin'], 'pw\n').status, 0);
  assert.equal(fs.statSync(dataDir).mode & 0o777, 0o700);
  for (const f of fs.readdirSync(dataDir)) {
    assert.equal(fs.statSync(path.join(dataDir, f)).mode & 0o077, 0, `${f} is readable by others`);
  }
  // A database an earlier version left readable is made private; 0750, given to a group on
  // purpose, stays.
  fs.chmodSync(path.join(dataDir, 'mailnest.sqlite'), 0o644);
  fs.chmodSync(dataDir, 0o750);
  assert.equal(cli(cfg, ['user', 'list']).status, 0);
  assert.equal(fs.statSync(path.join(dataDir, 'mailnest.sqlite')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(dataDir).mode & 0o777, 0o750);
});

test('a data_dir holding other files too ("." in a home directory) is left as it is', () => {
  const dir = tempDir();
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'index.html'), 'mine');
  const cfg = writeConfig(dir, baseConfig(dir, { data_dir: '.' }));
  for (let i = 0; i < 2; i++) assert.equal(cli(cfg, ['user', 'list']).status, 0);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o755);
});

test('a data_dir that is a file, or cannot be made, is named in one line', () => {
  const dir = tempDir();
  const file = path.join(dir, 'data');
  fs.writeFileSync(file, 'not a directory');
  const cfg = writeConfig(dir, baseConfig(dir));
  const r = cli(cfg, ['user', 'list']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `mailnest: data_dir ${file} is not a directory; point data_dir at a directory (it is made when missing)\n`);
  // dns makes a key under data_dir, and says the same
  assert.equal(cli(cfg, ['dns']).stderr, r.stderr);
  const under = writeConfig(dir, baseConfig(dir, { data_dir: path.join(file, 'sub') }));
  assert.match(cli(under, ['user', 'list']).stderr, /^mailnest: data_dir .*\/data\/sub cannot be made: .*\/data is a file, not a directory;/);
  // A symbolic link to nothing, as a volume not mounted leaves it.
  const link = path.join(dir, 'volume');
  fs.symlinkSync(path.join(dir, 'not-mounted'), link);
  const dangling = cli(writeConfig(dir, baseConfig(dir, { data_dir: link })), ['user', 'list']);
  assert.equal(dangling.status, 1);
  assert.equal(dangling.stderr, `mailnest: data_dir ${link}: ${link} is a symbolic link to ${path.join(dir, 'not-mounted')}, which does not exist (a volume not mounted?); mount it, or point data_dir elsewhere\n`);
  // Where the system takes no new directory (under /proc mkdir's own recursion never ends).
  for (const where of ['/proc/mailnest-data', '/sys/mailnest-data']) {
    if (!fs.existsSync(path.dirname(where))) continue;
    const r2 = cli(writeConfig(dir, baseConfig(dir, { data_dir: where })), ['user', 'list']);
    assert.equal(r2.status, 1, where);
    assert.match(r2.stderr, new RegExp(`^mailnest: data_dir ${where} cannot be made \\(E[A-Z]+\\); make it, owned by the user mailnest runs as, or point data_dir elsewhere\n$`));
  }
});

test('a database that is no database, or a directory in its place, is named in one line with what to do, by the commands, sendmail and start; so is a damaged lock file', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const db = path.join(dir, 'data', 'mailnest.sqlite');
  fs.mkdirSync(path.dirname(db), { mode: 0o700 });
  fs.writeFileSync(db, crypto.randomBytes(8192));
  const notDb = `${db} is not a database (file is not a database): put back the file from a backup\n`;
  for (const args of [['user', 'list'], ['start']]) {
    const r = cli(cfg, args);
    assert.deepEqual([r.status, r.stderr], [1, `mailnest: ${notDb}`], args.join(' '));
  }
  const sendmail = cli(cfg, ['sendmail', 'alice@example.test'], 'Subject: x\n\nhi\n');
  assert.deepEqual([sendmail.status, sendmail.stderr], [1, `mailnest: cannot open the store: ${notDb}`]);
  // A database whose first page (its schema's) is damaged.
  fs.rmSync(db);
  const made = new DatabaseSync(db);
  made.exec('CREATE TABLE t (x)');
  made.close();
  const fd = fs.openSync(db, 'r+');
  fs.writeSync(fd, Buffer.alloc(200, 0xff), 0, 200, 100);
  fs.closeSync(fd);
  assert.equal(cli(cfg, ['user', 'list']).stderr, `mailnest: ${db} is damaged (database disk image is malformed): put back the file from a backup\n`);
  // The server's lock file holds nothing worth a backup.
  fs.rmSync(db);
  const lock = path.join(dir, 'data', 'server.lock');
  fs.writeFileSync(lock, crypto.randomBytes(8192));
  assert.equal(cli(cfg, ['start']).stderr, `mailnest: ${lock} is not a database (file is not a database): remove it: it holds no mail, and the server makes it again\n`);
  fs.rmSync(lock);
  fs.mkdirSync(db);
  const r = cli(cfg, ['user', 'list']);
  assert.deepEqual([r.status, r.stderr], [1, `mailnest: cannot open ${db} (unable to open database file): it must be a file that this user can read and write, in a directory it can write\n`]);
});

test('dns prints the records to publish, for a domain written in any case and with its final dot', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const records = JSON.parse(cli(cfg, ['dns', '--json']).stdout) as { name: string; type: string; value: string }[];
  assert.deepEqual(records.map((r) => `${r.type} ${r.name}`), ['MX example.test.', 'TXT example.test.', 'TXT mailnest._domainkey.example.test.', 'TXT _dmarc.example.test.']);
  assert.equal(records[0]!.value, '10 mx.example.test.');
  assert.match(records[2]!.value, /^v=DKIM1; k=rsa; p=/);
  assert.deepEqual(JSON.parse(cli(cfg, ['dns', 'EXAMPLE.test.', '--json']).stdout), records);
  assert.equal(cli(cfg, ['dns']).stderr, '');
  // A machine name alone (the default hostname on many servers) makes an MX no one can use.
  const bare = cli(writeConfig(dir, baseConfig(dir, { hostname: 'vm' })), ['dns']);
  assert.equal(bare.status, 0);
  assert.match(bare.stdout, /\tMX\t10 vm\.\n/);
  assert.equal(bare.stderr, 'mailnest: warning: hostname "vm" is not a fully qualified name, so the MX record below names a host no other server can find; set hostname = "mail.example.test" (a name with an A/AAAA record for this machine) in the config\n');
  // Nor is an address a name (an MX names a host, RFC 5321 §5.1).
  const address = cli(writeConfig(dir, baseConfig(dir, { hostname: '192.0.2.25' })), ['dns']);
  assert.equal(address.status, 0);
  assert.match(address.stderr, /^mailnest: warning: hostname "192\.0\.2\.25" is not a fully qualified name/);
  const other = cli(cfg, ['dns', 'other.test']);
  assert.equal(other.status, 2);
  assert.match(other.stderr, /^mailnest: "other\.test" is not one of the configured domains \(example\.test\); add it to "domains" in the config\n$/);
  // The name suggested is in a domain that is one; an address as the mail domain is said to be one.
  const inAddress = cli(writeConfig(dir, baseConfig(dir, { hostname: 'vm', domains: ['192.0.2.1'] })), ['dns']);
  assert.equal(inAddress.status, 0);
  assert.equal(inAddress.stderr, 'mailnest: warning: hostname "vm" is not a fully qualified name, so the MX record below names a host no other server can find; set hostname = "mail.example.com" (a name with an A/AAAA record for this machine) in the config\n'
    + 'mailnest: warning: the mail domain "192.0.2.1" reads as an IP address, not a domain name: no other server sends mail to it (an address is written user@[192.0.2.1], which is no local domain); put the domain of your addresses in "domains"\n');
  // Without signing there is no key to publish, and none is made.
  const off = tempDir();
  const offCfg = writeConfig(off, baseConfig(off, { dkim: { enabled: false } }));
  const offRecords = JSON.parse(cli(offCfg, ['dns', '--json']).stdout) as { name: string }[];
  assert.ok(!offRecords.some((r) => r.name.includes('_domainkey')));
  assert.ok(!fs.existsSync(path.join(off, 'data', 'dkim')));
});

test('sendmail --help prints its flags and exit statuses, and queues nothing', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  const r = cli(cfg, ['sendmail', '--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: mailnest sendmail/);
  assert.match(r.stdout, /-t {10}recipients from the To, Cc and Bcc fields too/);
  assert.match(r.stdout, /Exit status: 0 queued, 1 failure, 2 bad usage; with --sysexits 0 queued, 64 usage/);
  assert.equal(JSON.parse(cli(cfg, ['queue', 'list', '--json']).stdout).length, 0);
});

test('an internationalised domain is one domain in its U-labels and its A-labels', () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir, { domains: ['bücher.example'] }));
  assert.equal(cli(cfg, ['user', 'add', 'dave@bücher.example', '--password-stdin'], 'pw\n').status, 0);
  const again = cli(cfg, ['user', 'add', 'Dave@XN--BCHER-KVA.example', '--password-stdin'], 'pw\n');
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists/);
  assert.equal(cli(cfg, ['alias', 'add', 'team@xn--bcher-kva.example', 'dave@bücher.example']).status, 0);
  assert.equal(cli(cfg, ['send', '--to', 'team@bücher.example', '--text', 'hi']).status, 0);
  const users = JSON.parse(cli(cfg, ['user', 'list', '--json']).stdout) as { address: string; messages: number; bytes: number }[];
  assert.deepEqual(users.map((u) => [u.address, u.messages]), [['dave@bücher.example', 1]]);
  assert.match(cli(cfg, ['dns', 'bücher.example']).stdout, /^xn--bcher-kva\.example\.\t3600\tIN\tMX/m);
  // init's record is that of the key dns prints and the server signs with.
  const idn = tempDir();
  const file = path.join(idn, 'mailnest.toml');
  const init = cli(file, ['init', '--hostname', 'mail.bücher.example', '--domain', 'bücher.example']);
  assert.equal(init.status, 0, init.stderr);
  assert.match(init.stdout, /^mailnest\._domainkey\.xn--bcher-kva\.example\./m);
  const key = (out: string) => /p=([A-Za-z0-9+/=]+)/.exec(out)?.[1];
  assert.equal(key(cli(file, ['dns']).stdout), key(init.stdout));
  assert.deepEqual(fs.readdirSync(path.join(idn, 'data', 'dkim')), ['xn--bcher-kva.example.mailnest.pem']);
});

test('the password prompt on a terminal: typed apart, or both lines at once (a paste, typed ahead), in CR or CRLF', async () => {
  const dir = tempDir();
  const cfg = writeConfig(dir, baseConfig(dir));
  // The command on a terminal of its own; each write goes once the prompt it answers has shown,
  // and the terminal's output and exit status come back.
  const script = `
import json, os, pty, signal, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], '-c', sys.argv[3], 'user', sys.argv[4], sys.argv[5]])
seen = b''
def hung(*_):
    os.kill(pid, signal.SIGKILL)
    print(json.dumps({'exit': 'hung', 'output': seen.decode()}))
    sys.exit(0)
signal.signal(signal.SIGALRM, hung)
signal.alarm(20)
for prompt, text in json.loads(sys.argv[6]):
    while prompt.encode() not in seen:
        seen += os.read(fd, 4096)
    seen = seen.replace(prompt.encode(), b'', 1)
    os.write(fd, text.encode())
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
print(json.dumps({'exit': os.waitstatus_to_exitcode(status), 'output': seen.decode()}))
`;
  const onTerminal = (command: string, address: string, writes: [prompt: string, text: string][]) => {
    const r = spawnSync('python3', ['-c', script, NODE, CLI, cfg, command, address, JSON.stringify(writes)], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { exit: number | 'hung'; output: string };
  };
  const hashOf = (address: string) => new DatabaseSync(path.join(dir, 'data', 'mailnest.sqlite'), { readOnly: true })
    .prepare('SELECT password_hash FROM users WHERE address = ? COLLATE NOCASE').get(address)?.password_hash as string;
  // Typed apart: the second prompt comes after the first answer.
  const apart = onTerminal('add', 'apart@example.test', [['Password: ', 'pw-one\r'], ['Again: ', 'pw-one\r']]);
  assert.equal(apart.exit, 0, apart.output);
  // Both at once, as a paste or typing ahead while the command starts: the second line is the
  // second prompt's, not lost (the command waited at "Again:" for ever).
  for (const [address, text] of [['paste@example.test', 'pw-two\rpw-two\r'], ['crlf@example.test', 'pw-three\r\npw-three\r\n']] as const) {
    const r = onTerminal('add', address, [['Password: ', text]]);
    assert.equal(r.exit, 0, `${address}: ${r.output}`);
  }
  const pasted = onTerminal('passwd', 'paste@example.test', [['Password: ', 'pw-new\rpw-other\r']]);
  assert.equal(pasted.exit, 1, pasted.output);
  assert.match(pasted.output, /the passwords do not match; nothing was changed/);
  for (const [address, password] of [['apart@example.test', 'pw-one'], ['paste@example.test', 'pw-two'], ['crlf@example.test', 'pw-three']] as const) {
    assert.ok(await verifyPassword(password, hashOf(address)), address);
  }
});
