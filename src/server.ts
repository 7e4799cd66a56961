/**
 * The running server: every configured listener, the services behind them, and an orderly stop
 * (stop accepting, let open transactions finish within a grace period, close the store).
 */
import fs from 'node:fs';
import os from 'node:os';
import { IMAP_DEFAULTS, type Config, type ListenerKind } from './config/schema.ts';
import { openContext, type Context } from './context.ts';
import { whenLogStalls, type Logger } from './log.ts';
import { AuthThrottle } from './auth/throttle.ts';
import { ConnectionLimits, Listener, type ListenerContext } from './net/listener.ts';
import { CertificateWatch } from './net/certificate-watch.ts';
import { ServerCertificate } from './net/tls.ts';
import { stopInboundChecks } from './delivery/inbound-checks.ts';
import { stopFitting } from './mime/fit-thread.ts';
import { QueueRunner } from './delivery/queue-runner.ts';
import { domainIsAddressWarning, endsInNumber, isFullyQualified } from './delivery/dns-records.ts';
import { HttpService } from './http/server.ts';
import { smtpHandler, type SmtpHandler, type SmtpRole } from './smtp/handler.ts';
import { BodyBudget } from './smtp/body-budget.ts';
import { pop3Handler } from './pop3/handler.ts';
import { MaildropLocks } from './pop3/locks.ts';
import { FreeSpace } from './store/free-space.ts';
import { ServerLock } from './store/server-lock.ts';
import { StoreSweeper } from './store/sweeper.ts';

/** Something that runs beside the listeners (the queue runner, the HTTP API). */
export interface Service {
  name: string;
  /** Resolves with the addresses it listens on, if any. */
  start(): Promise<string[]>;
  /** `graceMs`: how long work under way may take to finish. */
  stop(graceMs?: number): Promise<void>;
}

export interface RunningServer {
  ctx: Context;
  /** The addresses actually bound, per listener (port 0 in the config becomes a real port). */
  addresses: Partial<Record<ListenerKind, string[]>>;
  /** The self-signed or configured certificate file, for clients to trust. */
  certFile: string;
  /** Takes up a certificate renewed on disk now (SIGHUP); resolves, once it has looked, with
   *  true when the certificate in use changed. */
  reloadTls(): Promise<boolean>;
  stop(graceMs?: number): Promise<void>;
}

const SMTP_ROLES: Exclude<SmtpRole, 'local'>[] = ['smtp', 'submission', 'submissions'];

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const lock = ServerLock.acquire(config.data_dir);
  try {
    return await run(config, log, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function run(config: Config, log: Logger, lock: ServerLock): Promise<RunningServer> {
  // A flush that fails leaves unknown what reached the disk: nothing more is acknowledged, and
  // the server stops, without answering the transactions that waited on it (RFC 5321 §6.1: their
  // clients try again), rather than answer 451 for messages that may be stored all the same.
  const ctx = openContext(config, log, {
    onFailedFlush: (err) => {
      log.fatal({ err }, 'a flush to disk failed, so what was written since the last one may not be on disk; mailnest stops and acknowledges nothing more. Check the disk holding data_dir, then start mailnest again');
      log.flush(() => process.exit(1));
      whenLogStalls(log, 2_000, () => process.exit(1));
    },
  });
  const certificate = ServerCertificate.load(config, (message) => log.warn(message));
  const certificateWatch = new CertificateWatch(certificate, log);
  const limits = new ConnectionLimits(config.limits.max_connections, config.limits.max_connections_per_ip);
  const throttle = new AuthThrottle(config.auth.max_failures);
  const freeSpace = new FreeSpace(config.data_dir);
  // Mail from anyone, and the authenticated users' own apart (see BodyBudget).
  const memory = os.totalmem();
  const bodies = { strangers: BodyBudget.forServer(config.limits.max_message_size, memory, 1 / 4), users: BodyBudget.forServer(config.limits.max_message_size, memory, 1 / 8) };
  const lctx: ListenerContext = { limits, log, tls: certificate, onCount: (l, d) => ctx.metrics.count(l, d) };
  const listeners: { kind: ListenerKind; listener: Listener<any, any> }[] = [];
  const smtpHandlers: SmtpHandler[] = [];
  for (const role of SMTP_ROLES) {
    if (config.listen[role].length === 0) continue;
    const handler = smtpHandler(ctx, role, throttle, freeSpace, { bodies });
    smtpHandlers.push(handler);
    listeners.push({ kind: role, listener: new Listener(handler, lctx) });
  }
  const pop3Locks = new MaildropLocks(); // one lock table for pop3 and pop3s
  for (const kind of ['pop3', 'pop3s'] as const) {
    if (config.listen[kind].length > 0) listeners.push({ kind, listener: new Listener(pop3Handler({ ...ctx, throttle, locks: pop3Locks }, kind), lctx) });
  }
  const services: { kind?: ListenerKind; service: Service }[] = [];
  services.push({ service: certificateWatch });
  services.push({ service: new QueueRunner(ctx) });
  services.push({ service: new StoreSweeper(ctx.store, log) });
  if (config.listen.http.length > 0) services.push({ kind: 'http', service: new HttpService(ctx, freeSpace, limits) });

  // A key other users may read is theirs too (a group, as Debian's ssl-cert, is the operator's
  // choice). Said, not refused: the files are the operator's, and certbot's are 0600 already.
  const keyFile = config.tls.key;
  if (keyFile !== undefined && ((fs.statSync(keyFile, { throwIfNoEntry: false })?.mode ?? 0) & 0o004) !== 0) {
    log.warn({ key: keyFile }, 'tls.key can be read by every user of this machine: chmod o-r it (0600, or 0640 for a group of its own)');
  }
  if ((fs.statSync(config.data_dir).mode & 0o007) !== 0) {
    log.warn({ data_dir: config.data_dir }, 'data_dir can be read by other users (it is shared, another user\'s, or holds more than mailnest\'s files, so mailnest left it as it is): give mailnest a directory of its own with mode 700');
  }

  const addresses: RunningServer['addresses'] = {};
  const started: Service[] = [];
  try {
    for (const { kind, listener } of listeners) addresses[kind] = await listener.listen(config.listen[kind]);
    for (const { kind, service } of services) {
      const bound = await service.start();
      started.push(service);
      if (kind) addresses[kind] = bound;
    }
  } catch (err) {
    // One listener could not bind: undo what did start, so the process can exit.
    for (const { listener } of listeners) listener.stopAccepting();
    for (const service of started.reverse()) await service.stop();
    freeSpace.close();
    ctx.store.close();
    throw err;
  }
  // A warning for addresses someone chose; the defaults are only noted.
  for (const kind of ['imap', 'imaps'] as const) {
    const addresses = config.listen[kind];
    if (addresses.length === 0) continue;
    const chosen = addresses.join() !== IMAP_DEFAULTS[kind].join();
    log[chosen ? 'warn' : 'info']({ listener: kind }, 'IMAP is not served by this version of mailnest; the listener is not opened');
  }
  // RFC 5321 §2.3.5: the name given in EHLO, the MX's target: a bare machine name is neither.
  if (!isFullyQualified(config.hostname)) {
    const domain = config.domains.find(isFullyQualified) ?? 'example.com';
    log.warn({ hostname: config.hostname }, `hostname is not a fully qualified name: other servers cannot look it up, and many refuse mail whose EHLO gives such a name; set hostname = "mail.${domain}" (a name with an A/AAAA record for this machine) in the config`);
  }
  for (const domain of config.domains.filter(endsInNumber)) log.warn({ domain }, domainIsAddressWarning(domain));
  const { relay } = config;
  if (relay.smarthost && relay.smarthost_tls === 'none' && relay.password !== undefined) {
    log.warn({ smarthost: relay.smarthost }, 'relay.password goes to the smarthost unencrypted (relay.smarthost_tls = "none"); use "starttls" or "implicit" unless the smarthost is on this machine');
  }

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 10_000): Promise<void> => {
    stopping ??= (async () => {
      for (const { listener } of listeners) listener.stopAccepting();
      const deadline = Date.now() + graceMs;
      // The services stop beside the sessions, with the same grace: the queue runner starts no
      // transfer from now on (one begun while a session drained would be cut off at the deadline
      // and sent again after the restart) and lets those under way finish.
      const servicesStopped = Promise.allSettled([...services].reverse().map(({ service }) => service.stop(graceMs)));
      while (Date.now() < deadline && listeners.some(({ listener }) => listener.open > 0)) {
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const { listener } of listeners) listener.destroyAll();
      // Messages of the sessions just cut that wait for their lines to be fitted are not stored.
      stopFitting();
      for (const r of await servicesStopped) if (r.status === 'rejected') throw r.reason;
      // Delivery reports that follow a 250 just given are queued before the store closes.
      await Promise.all(smtpHandlers.map((h) => h.settled()));
      stopInboundChecks();
      freeSpace.close();
      try {
        ctx.store.close();
      } catch (err) {
        throw new Error(`data_dir ${config.data_dir} could not be closed cleanly (${(err as Error).message}); mail acknowledged before was on disk already`, { cause: err });
      } finally {
        // The store's failure is the one to report; the lock goes with the process anyway.
        try {
          lock.release();
        } catch (err) {
          ctx.log.warn({ err: (err as Error).message }, 'server.pid could not be removed');
        }
      }
    })();
    return stopping;
  };
  return { ctx, addresses, certFile: certificate.certFile, reloadTls: () => certificateWatch.check(), stop };
}
