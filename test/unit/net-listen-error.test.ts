/** Why a listener could not open: the key, the address, the code, and what to do. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Logger } from 'pino';
import { listenError, listenOn } from '../../src/net/listener.ts';

test('listen errors name the key and the address, and say what to do for the usual causes', () => {
  const err = (code: string) => Object.assign(new Error(code), { code });
  assert.equal(listenError('listen.smtp', '0.0.0.0:25', err('EACCES')).message,
    'listen.smtp: cannot listen on 0.0.0.0:25: EACCES: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability (setcap cap_net_bind_service=+ep on the node binary), or use a port above 1023');
  assert.match(listenError('listen.pop3', '127.0.0.1:110', err('EADDRINUSE')).message, /EADDRINUSE: another program listens there/);
  assert.match(listenError('listen.http', '192.0.2.7:8025', err('EADDRNOTAVAIL')).message, /EADDRNOTAVAIL: no network interface of this machine has that address$/);
  assert.match(listenError('listen.pop3', 'mail.invalid:110', err('ENOTFOUND')).message, /ENOTFOUND: this machine cannot resolve that host name; give an IP address instead$/);
  assert.equal(listenError('listen.imap', '127.0.0.1:143', err('EMFILE')).message, 'listen.imap: cannot listen on 127.0.0.1:143: EMFILE');
});

test('once listening, a server\'s own error (an accept that fails: EMFILE) is logged once a minute, and the server goes on', async () => {
  const lines: string[] = [];
  const log = { error: (_: unknown, msg: string) => lines.push(msg) } as unknown as Logger;
  const server = net.createServer();
  await listenOn(server, { host: '127.0.0.1', port: 0 }, 'listen.smtp', '127.0.0.1:0', log);
  try {
    for (let i = 0; i < 3; i++) server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }));
    assert.deepEqual(lines, ['a connection could not be accepted (said once a minute)']);
    assert.equal(server.listening, true);
  } finally {
    server.close();
  }
  // One that cannot listen rejects, naming the key.
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  await assert.rejects(listenOn(net.createServer(), { host: '127.0.0.1', port }, 'listen.pop3', `127.0.0.1:${port}`, log), /^Error: listen\.pop3: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  blocker.close();
});
