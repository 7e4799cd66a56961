import { test } from 'node:test';
import { Router } from '../../src/delivery/route.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, parseConfig, ConfigError } from '../../src/config/load.ts';
import { parseDuration } from '../../src/config/duration.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('defaults are those of the interface', () => {
  const c = parseConfig({});
  assert.deepEqual(c.domains, ['localhost']);
  assert.deepEqual(c.listen.smtp, ['127.0.0.1:2525']);
  assert.deepEqual(c.listen.submissions, ['127.0.0.1:2465']);
  assert.deepEqual(c.listen.http, ['127.0.0.1:8025']);
  assert.equal(c.limits.max_message_size, 26214400);
  assert.equal(c.limits.max_recipients, 100);
  assert.equal(c.limits.max_connections, 10000);
  assert.equal(c.limits.max_connections_per_ip, 50);
  assert.equal(c.limits.idle_timeout, 300_000);
  assert.equal(c.auth.allow_insecure, false);
  assert.equal(c.relay.smarthost_tls, 'implicit');
  assert.deepEqual(c.queue.retry, [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000]);
  assert.equal(c.queue.max_age, 5 * 86_400_000);
});

test('listeners on port 0 (any free port), or on one port at different addresses, do not clash', () => {
  assert.deepEqual(parseConfig({ listen: { smtp: ['127.0.0.1:0'], pop3: ['127.0.0.1:0'] } }).listen.pop3, ['127.0.0.1:0']);
  assert.deepEqual(parseConfig({ listen: { smtp: ['127.0.0.1:25', '[::1]:25'] } }).listen.smtp, ['127.0.0.1:25', '[::1]:25']);
  assert.deepEqual(parseConfig({ listen: { smtp: ['0.0.0.0:25', '[::1]:25'] } }).listen.smtp, ['0.0.0.0:25', '[::1]:25']);
  assert.deepEqual(parseConfig({ listen: { smtp: ['0.0.0.0:25', '[0:0::1]:25', '[fe80::1%lo]:25'] } }).listen.smtp, ['0.0.0.0:25', '[0:0::1]:25', '[fe80::1%lo]:25']);
});

test('an empty listener list turns it off', () => {
  assert.deepEqual(parseConfig({ listen: { pop3: [] } }).listen.pop3, []);
});

test('IMAP\'s listeners are reserved and never opened: their defaults take no address from the others', () => {
  assert.deepEqual(parseConfig({ listen: { smtp: ['0.0.0.0:2993'] } }).listen.smtp, ['0.0.0.0:2993']);
});

const refused: [unknown, RegExp][] = [
  [{ bogus: 1 }, /unknown key bogus; allowed here: hostname, domains/],
  [{ limits: { max_conections: 5 } }, /unknown key limits\.max_conections; allowed here: .*max_connections/],
  [{ limits: { max_connections: 0 } }, /limits\.max_connections = 0 is not allowed: expected more than 0/],
  [{ limits: { idle_timeout: 'soon' } }, /limits\.idle_timeout = "soon" is not allowed: expected a duration/],
  [{ relay: { smarthost_tls: 'tls' } }, /relay\.smarthost_tls = "tls" is not allowed: expected one of "implicit", "starttls", "none"/],
  [{ listen: { smtp: ['localhost'] } }, /listen\.smtp\[0\] = "localhost" is not allowed: expected a "host:port" address/],
  [{ listen: { smtp: ['127.0.0.1:70000'] } }, /a port from 0 to 65535/],
  [{ tls: { key: '/k.pem' } }, /tls: cert and key go together/],
  [{ listen: { smtp: ['127.0.0.1:2600'], pop3: ['127.0.0.1:2600'] } }, /^test\.toml: listen\.pop3: 127\.0\.0\.1:2600 clashes with 127\.0\.0\.1:2600 of listen\.smtp; give each listener an address of its own$/],
  [{ listen: { smtp: ['0.0.0.0:25'], submission: ['127.0.0.1:25'] } }, /listen\.submission: 127\.0\.0\.1:25 clashes with 0\.0\.0\.0:25 of listen\.smtp/],
  [{ listen: { smtp: ['[::]:25'], submission: ['127.0.0.1:25'] } }, /listen\.submission: 127\.0\.0\.1:25 clashes with \[::\]:25 of listen\.smtp/],
  [{ listen: { smtp: ['0.0.0.0:25'], pop3: ['localhost:25'] } }, /listen\.pop3: localhost:25 clashes with 0\.0\.0\.0:25 of listen\.smtp/],
  [{ listen: { smtp: ['0.0.0.0:25'], pop3: ['[::ffff:127.0.0.1]:25'] } }, /listen\.pop3: \[::ffff:127\.0\.0\.1\]:25 clashes with 0\.0\.0\.0:25/],
  // A clash with a listener's default is said as one.
  [{ listen: { smtp: ['127.0.0.1:2587'] } }, /^test\.toml: listen\.submission, by default: 127\.0\.0\.1:2587 clashes with 127\.0\.0\.1:2587 of listen\.smtp; give each listener an address of its own$/],
  [{ relay: { smarthost: 'smtp.example:465', username: 'u' } }, /relay: username and password go together: set both to log in to the smarthost, or neither/],
  [{ relay: { username: 'u', password: 'p' } }, /relay: username and password are the smarthost's login: set smarthost too, or leave them out/],
  [{ domains: ['bad domain'] }, /domains\[0\] = "bad domain" is not allowed: expected a domain name/],
  [{ auth: { allow_insecure: 'yes' } }, /auth\.allow_insecure = "yes" is not allowed: expected a boolean/],
  [{ limits: { pop3_idle_timeout: '5m' } }, /at least "10m"/],
  [{ dns_servers: ['dns.example'] }, /dns_servers\[0\] = "dns.example" is not allowed: expected an IP address with an optional port/],
  [{ domains: 'example.org' }, /domains = "example.org" is not allowed: expected a list in brackets, such as domains = \["example\.org"\]$/],
  [{ listen: { smtp: 25 } }, /listen\.smtp = 25 is not allowed: expected a list in brackets, such as smtp = \["\.\.\."\]$/],
  [{ listen: { smtp: '0.0.0.0:25' } }, /listen\.smtp = "0\.0\.0\.0:25" is not allowed: expected a list in brackets, such as smtp = \["0\.0\.0\.0:25"\]$/],
  // A table where a value stands: its section is shown, with what goes under it.
  [{ relay: 'smtp.example.net:587' }, /^test\.toml: relay = "smtp\.example\.net:587" is not allowed: expected a table: a \[relay\] section with its keys on the lines under it$/],
  [{ relay: { routes: 5 } }, /relay\.routes = 5 is not allowed: expected a table: a \[relay\.routes\] section of "name" = value lines$/],
  [{ checks: { dnsbl: ['zen spamhaus org'] } }, /checks\.dnsbl\[0\] = "zen spamhaus org" is not allowed: expected a domain name/],
  [{ checks: { dnsbl: 'zen.spamhaus.org' } }, /checks\.dnsbl = "zen\.spamhaus\.org" is not allowed: expected a list in brackets, such as dnsbl = \["zen\.spamhaus\.org"\]$/],
  [{ checks: { timeout: '0s' } }, /checks\.timeout = "0s" is not allowed: expected a longer duration such as "30s"/],
  // Node's timers wait at most 2^31 - 1 ms; longer, they fire at once.
  [{ queue: { poll_interval: '30d' } }, /queue\.poll_interval = "30d" is not allowed: expected at most "24d", the longest a timer can wait/],
  [{ checks: { timeout: '25d' } }, /checks\.timeout = "25d" is not allowed: expected at most "24d"/],
  [{ dns_servers: ['999.1.1.1'] }, /dns_servers\[0\] = "999\.1\.1\.1" is not allowed: expected an IP address/],
  [{ dns_servers: ['1.1.1.1:99999'] }, /dns_servers\[0\] = "1\.1\.1\.1:99999" is not allowed: expected an IP address/],
  [{ relay: { routes: { 'bad domain': '127.0.0.1:25' } } }, /^test\.toml: relay\.routes: the key "bad domain" is not allowed: expected a domain name such as "example\.com"$/],
  [{ relay: { routes: { 'bad_domain.example': '127.0.0.1:25' } } }, /^test\.toml: relay\.routes: the key "bad_domain\.example" is not allowed/],
  [{ limits: { max_recipients: Infinity } }, /limits\.max_recipients = inf is not allowed/],
  [{ limits: { max_recipients: 1.5 } }, /limits\.max_recipients = 1\.5 is not allowed: expected a whole number$/],
  [{ limits: { idle_timeout: 300 } }, /limits\.idle_timeout = 300 is not allowed: expected a duration such as "30s", "5m", "2h" or "5d", in quotes$/],
  [{ data_dir: '' }, /data_dir = "" is not allowed: expected a value that is not empty$/],
  [{ listen: { smtp: ['127.0.0.1:338525'] } }, /listen\.smtp\[0\] = "127\.0\.0\.1:338525" is not allowed: expected a port from 0 to 65535$/],
  [{ listen: { pop3: ['999.1.1.1:2600'] } }, /listen\.pop3\[0\] = "999\.1\.1\.1:2600" is not allowed: expected a "host:port" address such as "127\.0\.0\.1:2525" or "\[::1\]:2525", the host an IPv4 address \(four numbers from 0 to 255\)$/],
  [{ listen: { pop3: ['[::g]:2600'] } }, /listen\.pop3\[0\] = "\[::g\]:2600" is not allowed: expected .*, the host an IPv6 address in brackets$/],
  [{ listen: { pop3: ['bad_host:2600'] } }, /listen\.pop3\[0\] = "bad_host:2600" is not allowed: expected .*, the host a host name$/],
  [{ listen: { smtp: ['127.0.0.1:2600'], pop3: ['localhost:2600'] } }, /listen\.pop3: localhost:2600 clashes with 127\.0\.0\.1:2600 of listen\.smtp/],
  [{ listen: { smtp: ['LOCALHOST:2600'], pop3: ['[::1]:2600'] } }, /listen\.pop3: \[::1\]:2600 clashes with LOCALHOST:2600 of listen\.smtp/],
  [{ listen: { smtp: ['127.0.0.1:2600'], pop3: ['localhost.:2600'] } }, /listen\.pop3: localhost\.:2600 clashes with 127\.0\.0\.1:2600 of listen\.smtp/],
  // One address however it is spelled (RFC 5952, RFC 4291 §2.5.5.2).
  [{ listen: { smtp: ['[::1]:2600'], pop3: ['[0:0:0:0:0:0:0:1]:2600'] } }, /listen\.pop3: \[0:0:0:0:0:0:0:1\]:2600 clashes with \[::1\]:2600 of listen\.smtp/],
  [{ listen: { smtp: ['127.0.0.1:2600'], pop3: ['[::FFFF:7f00:1]:2600'] } }, /listen\.pop3: \[::FFFF:7f00:1\]:2600 clashes with 127\.0\.0\.1:2600 of listen\.smtp/],
  [{ listen: { smtp: ['127.0.0.1:2600'], pop3: ['[0::0]:2600'] } }, /listen\.pop3: \[0::0\]:2600 clashes with 127\.0\.0\.1:2600 of listen\.smtp/],
  [{ listen: { smtp: ['[fe80::1%lo]:2600'], pop3: ['[FE80:0::1%lo]:2600'] } }, /listen\.pop3: \[FE80:0::1%lo\]:2600 clashes with \[fe80::1%lo\]:2600 of listen\.smtp/],
  // A next hop has a real port; 0 is a listener's "any free port".
  [{ relay: { routes: { 'r.test': '127.0.0.1:0' } } }, /relay\.routes\."r\.test" = "127\.0\.0\.1:0" is not allowed: expected a port from 1 to 65535$/],
  [{ relay: { smarthost: 'smtp.example.net:0' } }, /relay\.smarthost = "smtp\.example\.net:0" is not allowed: expected a port from 1 to 65535$/],
  // The queue counts dates with these.
  [{ queue: { retry: ['1m', '99999999999999d'] } }, /queue\.retry\[1\] = "99999999999999d" is not allowed: expected at most "365d"$/],
  [{ queue: { max_age: '400d' } }, /queue\.max_age = "400d" is not allowed: expected at most "365d"$/],
  [{ queue: { delay_warning: '366d' } }, /queue\.delay_warning = "366d" is not allowed: expected at most "365d"$/],
  [{ data_dir: '~/mail' }, /data_dir = "~\/mail" is not allowed: expected a path without "~", which is not expanded here \(one written so used to name a directory "~" beside this file, where its mail still is\): give the whole path, such as "\/home\/me\/mail"$/],
  [{ tls: { cert: '~/certs/fullchain.pem', key: '/k.pem' } }, /tls\.cert = "~\/certs\/fullchain\.pem" is not allowed: expected a path without "~", which is not expanded here: give the whole path/],
  [{ relay: { ca_file: '~/ca.pem' } }, /relay\.ca_file = "~\/ca\.pem" is not allowed: expected a path without "~"/],
  [{ relay: { routes: { 'EXAMPLE.org': '127.0.0.1:25', 'example.org': '127.0.0.1:26' } } }, /relay\.routes\."example\.org" = "127\.0\.0\.1:26" is not allowed: expected a domain without a route yet: "EXAMPLE\.org" names it already/],
  [{ domains: ['example.com'], relay: { routes: { 'Example.com': '127.0.0.1:25' } } }, /relay\.routes\."Example\.com" = "127\.0\.0\.1:25" is not allowed: expected a domain that is not local/],
  [{ domains: ['example.com'], relay: { routes: { 'LOCALHOST.': '127.0.0.1:25' } } }, /relay\.routes\."LOCALHOST\." = "127\.0\.0\.1:25" is not allowed: expected a name other than this machine's own \(hostname or localhost\): mail for those is delivered here, as the first domain's, and never routed; remove the route$/],
  [{ hostname: 'mail.example.com', domains: ['example.com'], relay: { routes: { 'Mail.Example.com': '127.0.0.1:25' } } }, /relay\.routes\."Mail\.Example\.com" = "127\.0\.0\.1:25" is not allowed: expected a name other than this machine's own/],
  [{ relay: { routes: { 'example.org': '127.0.0.1:25', 'example.org.': '127.0.0.1:26' } } }, /relay\.routes\."example\.org\." = "127\.0\.0\.1:26" is not allowed: expected a domain without a route yet: "example\.org" names it already/],
  [{ relay: { routes: { 'xn--bcher-kva.example': '127.0.0.1:25', 'bücher.example.': '127.0.0.1:26' } } }, /relay\.routes\."bücher\.example\." = "127\.0\.0\.1:26" is not allowed: expected a domain without a route yet/],
];
for (const [raw, message] of refused) {
  test(`refused with the key, the value and what is allowed: ${JSON.stringify(raw)}`, () => {
    assert.throws(() => parseConfig(raw, 'test.toml'), (err: unknown) => err instanceof ConfigError && message.test(err.message) && err.message.startsWith('test.toml: '));
  });
}

test('a domain named twice, in any spelling, is one domain, kept as written first', () => {
  assert.deepEqual(parseConfig({ domains: ['localhost', 'LOCALHOST'] }).domains, ['localhost']);
  assert.deepEqual(parseConfig({ domains: ['Bücher.example', 'example.org', 'xn--bcher-kva.example.'] }).domains, ['xn--bcher-kva.example', 'example.org']);
});

test('an internationalised domain may be written with its U-labels; it is kept in A-labels', () => {
  const c = parseConfig({ hostname: 'mx.bücher.example', domains: ['Bücher.example', 'example.org'] });
  assert.equal(c.hostname, 'mx.xn--bcher-kva.example');
  assert.deepEqual(c.domains, ['xn--bcher-kva.example', 'example.org']);
});

test('a domain may end in the root\'s dot, as zone files write it', () => {
  const c = parseConfig({ hostname: 'mx.example.com.', domains: ['example.com.', 'bücher.example.'], relay: { routes: { 'example.org.': '127.0.0.1:25' } } });
  assert.deepEqual([c.hostname, c.domains], ['mx.example.com', ['example.com', 'xn--bcher-kva.example']]);
  // A route's domain is kept as written; the router reads it without the dot.
  assert.equal(new Router(c.relay).route('a@example.org').kind, 'route');
});

test('good DNS server addresses, with and without ports', () => {
  assert.deepEqual(parseConfig({ dns_servers: ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]:53'] }).dns_servers, ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]:53']);
});

test('durations', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('5d'), 432_000_000);
  assert.equal(parseDuration('30'), 30_000);
  assert.equal(parseDuration('5 minutes'), undefined);
});

test('a TOML syntax error names the line and shows it', () => {
  const dir = tempDir('mailnest-config-');
  const file = path.join(dir, 'mailnest.toml');
  for (const [text, message] of [
    ['hostname = "mx.example.org"\n[limits]\nmax_recipients = \n', ': not valid TOML at line 3 (`max_recipients =`): invalid value'],
    ['[limits]\nmax_recipients = 5\nmax_recipients = 6\n', ': not valid TOML at line 3 (`max_recipients = 6`): trying to redefine an already defined table or value'],
  ]) {
    fs.writeFileSync(file, text!);
    assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.message === `${file}${message}`);
  }
});

test('the smarthost password is never repeated in an error, however it is written wrong', () => {
  const dir = tempDir('mailnest-config-');
  const file = path.join(dir, 'mailnest.toml');
  for (const text of ['[relay]\nsmarthost = "smtp.example.net:465"\nusername = "me"\npassword = "s3cr3t-app-passw0rd\n', '[relay]\npassword = s3cr3t\n', '[relay]\nsmarthost = "smtp.example.net:465"\nusername = "me"\npassword = 12345\n']) {
    fs.writeFileSync(file, text);
    assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && /password/.test(err.message) && !/s3cr3t|12345/.test(err.message), text);
  }
  fs.writeFileSync(file, '[relay]\npassword = s3cr3t\n');
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`${file}: not valid TOML at line 2 (the password's line, not shown): `));
  fs.writeFileSync(file, '[relay]\nsmarthost = "smtp.example.net:465"\nusername = "me"\npassword = 12345\n');
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`${file}: relay.password (its value not shown) is not allowed: expected `));
});

test('a file that is not UTF-8 is refused, naming the line and the byte (TOML 1.0: a TOML file is UTF-8)', () => {
  const dir = tempDir('mailnest-config-');
  const file = path.join(dir, 'mailnest.toml');
  // Latin-1 "é" on line 3, after UTF-8 text and a U+FFFD written as such, which are no fault.
  fs.writeFileSync(file, Buffer.concat([Buffer.from('# café \ufffd\ndomains = ["example.test"]\nhostname = "caf'), Buffer.from([0xe9]), Buffer.from('.example.test"\n')]));
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError
    && err.message === `${file}: not UTF-8 at line 3 (byte 0xe9); a TOML file is UTF-8: save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)`);
  fs.writeFileSync(file, '# café \ufffd\ndomains = ["example.test"]\n');
  assert.deepEqual(loadConfig(file).domains, ['example.test']);
});
