/**
 * Relaying through a smarthost the way a cloud machine without port 25 does it: implicit TLS
 * on the provider's submissions port, AUTH with an account there. The provider here is a
 * second mailnest with a user, its self-signed certificate accepted by configuration.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { addUser, baseConfig, startMailnest, tempDir, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { inject, queueJson, until } from '../helpers/relay.ts';
import { mailbox } from '../helpers/mailbox.ts';


describe('relay through a smarthost with implicit TLS and AUTH', () => {
  let providerDir: string;
  let provider: RunningMailnest;
  let dir: string;
  let server: RunningMailnest;
  let configFile: string;

  before(async () => {
    providerDir = tempDir();
    const providerConfig = writeConfig(providerDir, baseConfig(providerDir, { hostname: 'smtp.provider.test', domains: ['provider.test'] }));
    addUser(providerConfig, 'me@provider.test', 'provider-pw');
    addUser(providerConfig, 'friend@provider.test', 'friend-pw');
    provider = await startMailnest(providerDir, providerConfig);

    dir = tempDir();
    configFile = writeConfig(dir, baseConfig(dir, {
      relay: {
        smarthost: `127.0.0.1:${provider.port('submissions')}`,
        smarthost_tls: 'implicit',
        smarthost_tls_verify: false,
        username: 'me@provider.test',
        password: 'provider-pw',
      },
      queue: { retry: ['1s'], poll_interval: '200ms' },
    }));
    server = await startMailnest(dir, configFile);
  });

  after(async () => {
    await server?.stop();
    await provider?.stop();
  });

  it('hands the message to the provider, which delivers it', async () => {
    const text = 'From: me@provider.test\r\nTo: friend@provider.test\r\nSubject: via the smarthost\r\nMessage-ID: <smarthost-1@provider.test>\r\n\r\nstatus: all good\r\n';
    const id = inject(configFile, 'me@provider.test', ['friend@provider.test'], text);
    const providerData = path.join(providerDir, 'data');
    let got: Buffer | undefined;
    await until('the provider mailbox', async () => {
      got = (await mailbox(providerData, 'friend@provider.test'))[0];
      return got !== undefined;
    });
    const s = got!.toString('utf8');
    assert.ok(s.endsWith('\r\n\r\nstatus: all good\r\n'), s);
    assert.match(s, /Subject: via the smarthost/);
    // The provider saw an authenticated TLS session (RFC 3848 ESMTPSA) from us.
    assert.match(s, /with ESMTPSA/);
    await until('the queue to empty', () => !queueJson(configFile).some((e) => e.id === id));
  });

  it('defers (does not bounce) when the provider refuses the login', async () => {
    const bad = writeConfig(dir, baseConfig(dir, {
      relay: {
        smarthost: `127.0.0.1:${provider.port('submissions')}`, smarthost_tls: 'implicit', smarthost_tls_verify: false,
        username: 'me@provider.test', password: 'wrong',
      },
      queue: { retry: ['1s'], poll_interval: '200ms' },
    }));
    await server.stop();
    server = await startMailnest(dir, bad);
    const id = inject(bad, 'me@provider.test', ['friend@provider.test'], 'Subject: x\r\n\r\ny\r\n');
    await until('a deferral', () => (queueJson(bad).find((e) => e.id === id)?.recipients[0]?.attempts ?? 0) >= 1);
    const r = queueJson(bad).find((e) => e.id === id)!.recipients[0]!;
    assert.equal(r.status, 'deferred');
    assert.match(r.last_reply ?? '', /535|auth/i);
    // The operator is told where to look.
    const refusedLogin = () => server.logs.find((l) => l.msg === 'the next hop refused our login; mail for it waits: check [relay] username and password');
    await until('a warning that names the credentials', () => refusedLogin() !== undefined);
    const warning = refusedLogin()!;
    assert.equal(warning.level, 40);
    assert.match(String(warning.reply), /535/);
    // The provider's session ended with QUIT (RFC 5321 §4.1.1.10), not a dropped connection,
    // which its logs would show as a guesser's.
    const refusedSession = () => provider.logs.find((l) => l.msg === 'session' && l.listener === 'submissions' && l.user === undefined && l.helo !== undefined);
    await until('the provider\'s log of the refused session', () => refusedSession() !== undefined);
    assert.equal(refusedSession()!.outcome, 'quit');
  });
});
