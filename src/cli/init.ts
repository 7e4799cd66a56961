/** `mailnest init`: a commented starter mailnest.toml. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, namedConfig, parseConfig } from '../config/load.ts';
import { canonicalDomain } from '../config/schema.ts';
import { parse as parseToml } from 'smol-toml';
import { asDataDirOwner, asEffectively, dataDirOwner } from './common.ts';
import { CliError, UsageError } from './errors.ts';
import { dnsRecords, endsInNumber, formatRecords, isFullyQualified } from '../delivery/dns-records.ts';
import { prepareDataDir } from '../store/data-dir.ts';

/** The listeners of a starter config: on loopback's unprivileged ports to try mailnest out, or
 *  with `public` on every address and the standard ports, as a server on the internet has them
 *  (the HTTP API stays on loopback: it sends as any address). */
function listenLines(publicPorts: boolean): string {
  const [any, smtp, sub, subs, pop3, pop3s] = publicPorts ? ['0.0.0.0', 25, 587, 465, 110, 995] : ['127.0.0.1', 2525, 2587, 2465, 2110, 2995];
  return `smtp        = ["${any}:${smtp}"]${' '.repeat(publicPorts ? 7 : 5)}# inbound mail for the domains above, no AUTH needed
submission  = ["${any}:${sub}"]${' '.repeat(publicPorts ? 6 : 5)}# your users send here: STARTTLS, then AUTH
submissions = ["${any}:${subs}"]${' '.repeat(publicPorts ? 6 : 5)}# the same with implicit TLS
pop3        = ["${any}:${pop3}"]
pop3s       = ["${any}:${pop3s}"]
http        = ["127.0.0.1:8025"]     # the HTTP send API, /healthz and /metrics`;
}

export function starterConfig(hostname: string, domain: string, dataDir = './data', publicPorts = false): string {
  return `# mailnest configuration. Every key is optional. A line commented out shows the key's default, or,
# where its comment says "e.g." (a key with no value by default), an example.

hostname = "${hostname}"            # the name this server gives in greetings and Received headers
domains = ["${domain}"]              # mail for these domains is delivered to local mailboxes
data_dir = ${JSON.stringify(dataDir).padEnd(25)} # everything mailnest keeps (database, TLS and DKIM keys)
# log_level = "info"
# dns_servers = ["127.0.0.1:53"]     # e.g.; resolvers for MX lookups and the checks; default [], /etc/resolv.conf's

[listen]
# "host:port" lists; an empty list turns a listener off. A production server uses the standard ports
# (\`mailnest init --public\` writes them): smtp = ["0.0.0.0:25"], submission = ["0.0.0.0:587"],
# submissions = ["0.0.0.0:465"], pop3 = ["0.0.0.0:110"], pop3s = ["0.0.0.0:995"], http = ["127.0.0.1:8025"];
# "[::]:25" and so on in place of "0.0.0.0:25" listen on IPv6 as well (every address of both families)
${listenLines(publicPorts)}

[tls]
# Without these a self-signed certificate is made under data_dir on first start. Files the
# server's user can read: certbot keeps its own for root, so name copies a deploy hook makes
# (see the README).
# cert = "/etc/mailnest/fullchain.pem"   # e.g.
# key  = "/etc/mailnest/privkey.pem"     # e.g.

[auth]
# allow_insecure = false             # true accepts passwords without TLS: for local testing only
# max_failures = 5                   # failed logins from one address before it is cut off for 15 minutes

[limits]
# max_message_size = 26214400        # bytes, advertised in EHLO SIZE
# max_recipients = 100
# max_connections = 10000
# max_connections_per_ip = 50
# max_outgoing_per_day = 1000        # recipients at other domains per user in 24 hours; 0: no limit
# idle_timeout = "5m"
# max_line_length = 4096
# pop3_idle_timeout = "10m"

[relay]
# Mail to other domains goes straight to each domain's MX. When the cloud blocks port 25,
# relay through your provider instead:
# smarthost = "smtp.example.net:465"   # e.g.
# smarthost_tls = "implicit"         # implicit | starttls | none
# username = "me@example.net"          # e.g.
# password = "secret"                 # e.g.
# routes = { "example.org" = "10.0.0.5:25" }   # e.g.; per-domain next hop, overrides MX and smarthost

# tls_verify = false                 # require TLS of MX hosts and check their certificates (STARTTLS is opportunistic)
# mta_sts = true                     # hold to the MTA-STS policies domains publish (TLS to the MX hosts they name)
# smarthost_tls_verify = true        # check the smarthost's certificate (it receives your password)
# ca_file = "/path/ca.pem"           # e.g.; extra CA certificates to trust for those checks
# connect_timeout = "30s"
# greeting_timeout = "5m"            # RFC 5321 section 4.5.3.2
# command_timeout = "10m"
# dns_timeout = "10s"                # MX/A/AAAA lookups; a timeout defers the delivery

[queue]
# retry = ["1m", "5m", "15m", "30m", "1h", "2h", "4h"]   # the last interval repeats
# max_age = "5d"                     # then the message bounces to its sender
# delay_warning = "4h"               # the sender is told once that the message is still waiting
# max_connections = 50               # outbound connections at once
# max_connections_per_destination = 10
# messages_per_connection = 100
# poll_interval = "500ms"            # how often the queue is scanned for due mail

[dkim]
# Mail from the domains above is signed with a key per domain kept in data_dir/dkim;
# \`mailnest dns\` prints the record to publish.
# enabled = true
# selector = "mailnest"
# algorithm = "rsa-sha256"           # or "ed25519-sha256"

[checks]
# SPF, DKIM and DMARC of mail arriving on the smtp listener, recorded in Authentication-Results.
# enabled = true
# reject_dmarc = false               # true: refuse mail that fails DMARC when its domain says p=reject
# dns_timeout = "3s"
# timeout = "10s"
# dnsbl = []                         # DNS blocklists whose clients are refused at RCPT, such as ["zen.spamhaus.org"]
`;
}

export function registerInit(program: Command): void {
  program.command('init').description('write a commented starter mailnest.toml')
    .option('--hostname <name>', 'the host name of this server', os.hostname())
    .option('--domain <domain>', 'the mail domain (default: the host name without its first label, or the host name itself when it has two)')
    .option('--data-dir <dir>', 'where mailnest keeps everything, the DKIM key made now included', './data')
    .option('--public', 'listen on every IPv4 address at the standard ports (25, 587, 465, 110, 995), as a server on the internet does, instead of on loopback at 2525, 2587, 2465, 2110, 2995 (for IPv6 too, write "[::]" for "0.0.0.0" in the file)')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: { hostname: string; domain?: string; dataDir: string; public?: boolean; force?: boolean }, cmd: Command) => {
      const file = namedConfig((cmd.optsWithGlobals() as { config?: string }).config) ?? 'mailnest.toml';
      // Judged as the file will hold it (A-labels, ASCII digits and dots).
      if (!isFullyQualified(canonicalDomain(opts.hostname))) {
        throw new UsageError(`the host name ${JSON.stringify(opts.hostname)} is not a fully qualified domain name, which the MX record and EHLO need (RFC 5321 §2.3.5): give a fully qualified one, e.g. --hostname mail.example.com --domain example.com`);
      }
      // mail.example.com serves example.com, example.com itself.
      const labels = opts.hostname.split('.');
      const domain = opts.domain ?? (labels.length >= 3 ? labels.slice(1).join('.') : labels.length === 2 ? opts.hostname : undefined);
      if (!domain) {
        throw new UsageError(`cannot tell the mail domain from the host name ${JSON.stringify(opts.hostname)}: give --domain (and --hostname, e.g. --hostname mail.example.com --domain example.com)`);
      }
      if (endsInNumber(canonicalDomain(domain))) {
        throw new UsageError(`the mail domain ${JSON.stringify(domain)} reads as an IP address, not a domain name (its last label is all digits): give the domain of your addresses, e.g. --domain example.com`);
      }
      const text = starterConfig(opts.hostname, domain, opts.dataDir, !!opts.public);
      try {
        parseConfig(parseToml(text), '--hostname/--domain/--data-dir'); // refuse what would make a config mailnest rejects
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      // A directory is no file to replace, --force or not.
      if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new CliError(`${file} is a directory; name the file to write in it (-c ${path.join(file, 'mailnest.toml')})`);
      // The file is replaced below, never written through a link: a link kept by an operator (to
      // a file under configuration management) would silently stop being one. Named instead.
      if (fs.lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink()) {
        const target = fs.readlinkSync(file);
        throw new CliError(`${file} is a symbolic link to ${target}: name the file itself (-c ${path.resolve(path.dirname(file), target)}) to write it, or remove the link`);
      }
      if (fs.existsSync(file) && !opts.force) throw new CliError(`${file} exists; use --force to overwrite it`);
      const dir = path.dirname(path.resolve(file));
      if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new CliError(`cannot write ${file}: ${dir} is not a directory; make it first (mkdir -p ${dir})`);
      }
      // data_dir, where the DKIM key goes below, is made before the file is written: a file
      // written and a key that could not be would leave a set-up half done, and the file in the
      // way of the next try.
      const dataDir = path.resolve(dir, opts.dataDir);
      try {
        // In a user's directory, made as that user, as the commands run as that user
        // (asDataDirOwner) would make it: nothing the user puts on the way leads root anywhere.
        asEffectively(dataDirOwner(dataDir), () => prepareDataDir(dataDir));
      } catch (err) {
        // What the system refuses is a failure, not bad usage; named by the option when given.
        const message = (err as Error).message;
        throw new CliError(cmd.getOptionValueSource('dataDir') === 'cli' ? `--data-dir ${opts.dataDir}: ${message.replace(/^data_dir /, '')}` : message);
      }
      // The owner, group and permissions an operator gave the file (chgrp and chmod 640 for the
      // service's user, as the README says) stay with it, less any for other users.
      const before = fs.lstatSync(file, { throwIfNoEntry: false });
      // A new file in its place, never one written through: a link there (in a directory of
      // someone else's) could lead anywhere.
      fs.rmSync(file, { force: true });
      // Written, given its owner and permissions through one descriptor: by its name, a link put
      // in its place meanwhile would be followed.
      const fd = fs.openSync(file, 'wx', 0o600);
      try {
        fs.writeFileSync(fd, text);
        if (before?.isFile()) {
          try {
            fs.fchownSync(fd, before.uid, before.gid);
            fs.fchmodSync(fd, before.mode & 0o660);
          } catch {
            // Only root gives a file away: without its group, the file stays the caller's alone.
          }
        }
      } finally {
        fs.closeSync(fd);
      }
      process.stdout.write(`wrote ${file} for ${domain} (host ${opts.hostname})\n`);
      // The DKIM key lives under the data_dir the new file names, relative to the file, as for
      // every other command reading it.
      const config = loadConfig(file);
      asDataDirOwner(config.data_dir);
      process.stdout.write(`\nPublish these DNS records (\`mailnest dns\` prints them again):\n\n${formatRecords(dnsRecords(config, domain))}`);
    });
}
