/**
 * The configuration: every key, its type and its built-in default live here and nowhere else.
 * The TOML file (docs/CONFIGURATION.md) is validated into `Config`; unknown keys are refused.
 */
import net from 'node:net';
import os from 'node:os';
import { z } from 'zod';
import { aLabels } from '../ascii.ts';
import { clientAddress } from '../net/client-key.ts';
import { parseDuration } from './duration.ts';

const DURATION = 'a duration such as "30s", "5m", "2h" or "5d"';

const duration = z.string({ error: (issue) => (issue.code === 'invalid_type' ? `${DURATION}, in quotes` : undefined) }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: ms === undefined ? DURATION : `a longer ${DURATION.slice(2)}` });
    return z.NEVER;
  }
  return ms;
});

/** A duration that a timer waits for: Node's timers take at most 2^31 - 1 ms (about 24.8 days)
 *  and fire at once for more, which would make a poll a busy loop and a timeout instant. */
const timerDuration = duration.refine((ms) => ms <= 24 * 86_400_000, { message: 'at most "24d", the longest a timer can wait' });

/** A duration of the queue's, which dates are counted with: a year at most, far past any use. */
const queueDuration = duration.refine((ms) => ms <= 365 * 86_400_000, { message: 'at most "365d"' });

const DOMAIN_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A host or domain name in ASCII (LDH labels of 63 octets at most, 253 in all). */
export function isDomainName(name: string): boolean {
  return DOMAIN_NAME.test(name);
}

const HOST_PORT = 'a "host:port" address such as "127.0.0.1:2525" or "[::1]:2525"';

/** The host (an IPv6 one without its brackets) and port of a "host:port" as this file writes it. */
export function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(s.slice(i + 1)) };
}

/** "host:port" or "[v6]:port", the host an IPv4 address, a bracketed IPv6 one or a host name,
 *  and the port from `minPort` to 65535. */
function hostPort(minPort: number) {
  return z.string().superRefine((text, ctx) => {
    const m = /^(?:\[([^\]]*)\]|([^:[\]]+)):(\d+)$/.exec(text);
    const host = m?.[1] ?? m?.[2];
    if (!m || host === undefined) return void ctx.addIssue({ code: 'custom', message: HOST_PORT });
    const fine = m[1] !== undefined ? net.isIPv6(host)
      : /^[\d.]+$/.test(host) ? net.isIPv4(host) : DOMAIN_NAME.test(host.replace(/\.$/, ''));
    if (!fine) {
      const what = m[1] !== undefined ? 'an IPv6 address in brackets' : /^[\d.]+$/.test(host) ? 'an IPv4 address (four numbers from 0 to 255)' : 'a host name';
      return void ctx.addIssue({ code: 'custom', message: `${HOST_PORT}, the host ${what}` });
    }
    const port = Number(m[3]);
    if (port < minPort || port > 65535) ctx.addIssue({ code: 'custom', message: `a port from ${minPort} to 65535` });
  });
}

/** Where mailnest listens: port 0 asks the OS for a free port (tests). */
const listenAddress = hostPort(0);
/** Where it connects to. */
const nextHop = hostPort(1);

const listenList = z.array(listenAddress);

/** The interface's IMAP addresses, kept though IMAP is not served yet. */
export const IMAP_DEFAULTS = { imap: ['127.0.0.1:2143'], imaps: ['127.0.0.1:2993'] } as const;

const NOT_A_DOMAIN = { message: 'a domain name such as "example.com"' };

/** A domain as the file may write it, in the form DNS and the rest of mailnest use: without the
 *  root's final dot ("example.com.", as zone files write it), and an internationalised one in
 *  A-labels (RFC 5890) when written with its U-labels. */
export function canonicalDomain(written: string): string {
  const name = written.replace(/(?<=.)\.$/, '');
  return aLabels(name) ?? name;
}

/** The machine's own names: its host name and localhost. Those that are not mail domains stay
 *  here as the first domain's (delivery/recipients.ts), and are no destination of a route. */
export function machineNames(hostname: string): string[] {
  return [canonicalDomain(hostname).toLowerCase(), 'localhost'];
}

const domainName = z.preprocess((v) => (typeof v === 'string' ? canonicalDomain(v) : v), z.string().regex(DOMAIN_NAME, NOT_A_DOMAIN));
/** A route's domain is kept as written, so that two spellings of one domain can be named (see
 *  the check at the end); the router reads it through canonicalDomain too. */
const routeDomain = z.string().refine((d) => DOMAIN_NAME.test(canonicalDomain(d)), NOT_A_DOMAIN);

const positiveInt = z.number().int().positive();

/** "ip", "ip:port", "v6", "[v6]" or "[v6]:port", as the resolver takes them, with a real address and port. */
function isServerAddress(text: string): boolean {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3}))(?::(\d{1,5}))?$/.exec(text);
  if (!m) return net.isIPv6(text);
  const port = m[3] === undefined ? 53 : Number(m[3]);
  return port >= 1 && port <= 65535 && (m[1] !== undefined ? net.isIPv6(m[1]) : net.isIPv4(m[2]!));
}

/** A listening host in one spelling, so that two spellings of one address are seen as one: an
 *  IPv4-mapped one as its IPv4 address (as clients are counted, see clientAddress), an IPv6
 *  address as RFC 5952 §4 writes it (zeros compressed, lower case; its zone kept), a name in
 *  lower case without its final dot. */
export function oneSpelling(host: string): string {
  const address = clientAddress(host);
  if (!net.isIPv6(address)) return address.toLowerCase().replace(/\.$/, '');
  const [v6, zone] = address.split('%');
  const compressed = new URL(`http://[${v6}]/`).hostname.slice(1, -1);
  return zone === undefined ? compressed : `${compressed}%${zone}`;
}

/** A file's path, relative to the config file or whole; "~" is not expanded here, as a shell would. */
const filePath = z.string().min(1).refine((f) => !/^~/.test(f), { message: 'a path without "~", which is not expanded here: give the whole path, such as "/home/me/certs/fullchain.pem"' });

export const configSchema = z.strictObject({
  hostname: domainName.default(() => os.hostname()),
  // A domain named twice (in another case, with a final dot, in U-labels) is one domain, kept
  // once, as written first.
  domains: z.array(domainName).min(1, { message: 'at least one domain' }).default(['localhost'])
    .transform((ds) => ds.filter((d, i) => ds.findIndex((e) => e.toLowerCase() === d.toLowerCase()) === i)),
  // A shell expands "~"; nothing here does, and "./~/mail" is a trap for a later `rm -rf ~...`.
  data_dir: z.string().min(1).refine((d) => !/^~/.test(d), { message: 'a path without "~", which is not expanded here (one written so used to name a directory "~" beside this file, where its mail still is): give the whole path, such as "/home/me/mail"' }).default('./data'),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** DNS servers ("ip" or "ip:port") for MX lookups and the inbound checks; empty: the system's (/etc/resolv.conf). */
  dns_servers: z.array(z.string().refine(isServerAddress, {
    message: 'an IP address with an optional port, such as "127.0.0.1" or "127.0.0.1:5353"',
  })).default([]),
  listen: z.strictObject({
    smtp: listenList.default(['127.0.0.1:2525']),
    submission: listenList.default(['127.0.0.1:2587']),
    submissions: listenList.default(['127.0.0.1:2465']),
    pop3: listenList.default(['127.0.0.1:2110']),
    pop3s: listenList.default(['127.0.0.1:2995']),
    imap: listenList.default([...IMAP_DEFAULTS.imap]),
    imaps: listenList.default([...IMAP_DEFAULTS.imaps]),
    http: listenList.default(['127.0.0.1:8025']),
  }).superRefine((listen, ctx) => {
    // Two listeners on one address: the second would fail to bind with EADDRINUSE, which names
    // another program. Port 0 is any free port. 0.0.0.0 takes the port on every IPv4 address (a
    // name may be one, and so is ::ffff:a.b.c.d), and [::] on every address of both families
    // (Node's sockets are dual-stack).
    // "localhost" is the loopback address of either family, whichever the system names first.
    // Hosts are compared in one spelling each (see oneSpelling).
    const loopback = (h: string) => h === '127.0.0.1' || h === '::1' || h === 'localhost';
    const clash = (a: string, b: string) => a === b || a === '::' || b === '::'
      || (a === '0.0.0.0' && !net.isIPv6(b)) || (b === '0.0.0.0' && !net.isIPv6(a))
      || (loopback(a) && loopback(b) && (a === 'localhost' || b === 'localhost'));
    const seen: { kind: string; host: string; port: number; written: string }[] = [];
    for (const [kind, addresses] of Object.entries(listen)) {
      // Reserved, never opened: they take no address from the others.
      if (kind === 'imap' || kind === 'imaps') continue;
      for (const a of addresses) {
        const { host: written, port } = splitHostPort(a);
        if (port === 0) continue;
        const host = oneSpelling(written);
        const other = seen.find((s) => s.port === port && clash(s.host, host));
        if (other) {
          ctx.addIssue({ code: 'custom', path: [kind], message: `${a} clashes with ${other.written} of listen.${other.kind}; give each listener an address of its own` });
          return;
        }
        seen.push({ kind, host, port, written: a });
      }
    }
  }).prefault({}),
  tls: z.strictObject({
    cert: filePath.optional(),
    key: filePath.optional(),
  }).refine((t) => (t.cert === undefined) === (t.key === undefined), {
    message: 'cert and key go together: set both, or neither for a self-signed certificate',
  }).prefault({}),
  auth: z.strictObject({
    allow_insecure: z.boolean().default(false),
    /** Failed logins from one address before each further attempt is delayed, then refused. */
    max_failures: positiveInt.default(5),
  }).prefault({}),
  limits: z.strictObject({
    max_message_size: positiveInt.default(26_214_400),
    max_recipients: positiveInt.default(100),
    max_connections: positiveInt.default(10_000),
    max_connections_per_ip: positiveInt.default(50),
    /** Recipients at other domains one user may send to over submission in any 24 hours; 0: no
     *  limit. What a stolen password can cost the server's name. */
    max_outgoing_per_day: z.number().int().min(0).default(1000),
    idle_timeout: timerDuration.prefault('5m'),
    /** Longest command line accepted (RFC 5321 §4.5.3.1.4 says at least 512). */
    max_line_length: z.number().int().min(512).default(4096),
    /** POP3 autologout timer (RFC 1939 §3: at least 10 minutes). */
    pop3_idle_timeout: timerDuration.prefault('10m').refine((ms) => ms >= 600_000, { message: 'at least "10m" (RFC 1939 section 3)' }),
  }).prefault({}),
  relay: z.strictObject({
    smarthost: nextHop.optional(),
    smarthost_tls: z.enum(['implicit', 'starttls', 'none']).default('implicit'),
    username: z.string().optional(),
    password: z.string().optional(),
    routes: z.record(routeDomain, nextHop).default({}),
    /** Require STARTTLS of a domain's MX hosts and check their certificates (opportunistic otherwise; routes are never checked). */
    tls_verify: z.boolean().default(false),
    /** Check the smarthost's certificate (it receives the password). */
    smarthost_tls_verify: z.boolean().default(true),
    /** Hold MX delivery to the MTA-STS policies domains publish (RFC 8461, delivery/mta-sts.ts). */
    mta_sts: z.boolean().default(true),
    /** Extra CA certificates (PEM file) trusted when a certificate is checked. */
    ca_file: filePath.optional(),
    /** RFC 5321 §4.5.3.2 timeouts; connect is ours (no RFC figure). */
    connect_timeout: timerDuration.prefault('30s'),
    greeting_timeout: timerDuration.prefault('5m'),
    /** Longest silence in a command or data exchange (§4.5.3.2.6: 10 minutes after the final dot). */
    command_timeout: timerDuration.prefault('10m'),
    /** DNS lookups for MX/A/AAAA give up after this long (the delivery is deferred). */
    dns_timeout: timerDuration.prefault('10s'),
  }).refine((r) => (r.username === undefined) === (r.password === undefined), {
    message: 'username and password go together: set both to log in to the smarthost, or neither',
  }).refine((r) => r.username === undefined || r.smarthost !== undefined, {
    message: 'username and password are the smarthost\'s login: set smarthost too, or leave them out',
  }).prefault({}),
  queue: z.strictObject({
    retry: z.array(queueDuration).min(1).prefault(['1m', '5m', '15m', '30m', '1h', '2h', '4h']),
    max_age: queueDuration.prefault('5d'),
    delay_warning: queueDuration.prefault('4h'),
    /** Outbound SMTP connections open at once, across all destinations. */
    max_connections: positiveInt.default(50),
    /** Connections to one destination (a domain, a route or the smarthost); a new destination starts with fewer and grows while deliveries succeed. */
    max_connections_per_destination: positiveInt.default(10),
    /** Messages sent over one connection before it is closed. */
    messages_per_connection: positiveInt.default(100),
    /** How often the queue is scanned for due recipients (another process may have added some). */
    poll_interval: timerDuration.prefault('500ms'),
  }).prefault({}),
  dkim: z.strictObject({
    /** Sign mail from the local domains (RFC 6376) with a key per domain kept under data_dir/dkim. */
    enabled: z.boolean().default(true),
    selector: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/, { message: 'a DNS label such as "mailnest"' }).default('mailnest'),
    algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']).default('rsa-sha256'),
  }).prefault({}),
  checks: z.strictObject({
    /** SPF, DKIM and DMARC of mail arriving on the smtp listener, recorded in Authentication-Results. */
    enabled: z.boolean().default(true),
    /** Refuse (550 5.7.1) a message that fails DMARC when the sender domain publishes p=reject. */
    reject_dmarc: z.boolean().default(false),
    /** Each DNS query of the checks gives up after this long (the check then reads temperror). */
    dns_timeout: timerDuration.prefault('3s'),
    /** All the checks of one message together give up after this long. */
    timeout: timerDuration.prefault('10s'),
    /** DNS blocklists (RFC 5782) whose listed clients are refused at RCPT (delivery/blocklists.ts). */
    dnsbl: z.array(domainName).default([]),
  }).prefault({}),
}).superRefine((c, ctx) => {
  // Domains are names without case: two routes for one, and one that is never used (mail for a
  // local domain is delivered here), are mistakes to name rather than to settle silently.
  const seen = new Map<string, string>();
  const local = new Set(c.domains.map((d) => d.toLowerCase()));
  for (const domain of Object.keys(c.relay.routes)) {
    const key = canonicalDomain(domain).toLowerCase();
    const other = seen.get(key);
    if (other !== undefined) ctx.addIssue({ code: 'custom', path: ['relay', 'routes', domain], message: `a domain without a route yet: "${other}" names it already (case, a final dot and U-labels do not count); keep one` });
    else if (local.has(key)) ctx.addIssue({ code: 'custom', path: ['relay', 'routes', domain], message: 'a domain that is not local: mail for one in domains is delivered here and never routed; remove the route, or the domain from domains' });
    // The machine's own names are the first domain's (see Recipients): their mail stays here.
    else if (machineNames(c.hostname).includes(key)) ctx.addIssue({ code: 'custom', path: ['relay', 'routes', domain], message: 'a name other than this machine\'s own (hostname or localhost): mail for those is delivered here, as the first domain\'s, and never routed; remove the route' });
    seen.set(key, domain);
  }
});

export type Config = z.output<typeof configSchema>;
export type ListenerKind = keyof Config['listen'];
