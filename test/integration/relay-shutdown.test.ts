/**
 * Closing an outbound connection in the middle of a transaction (what the queue runner does when
 * the shutdown grace period runs out) settles the transaction, so that the server can exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { SmtpClient } from '../../src/delivery/smtp-client.ts';

test('a transaction whose reply never comes is settled as a temporary failure when its connection is closed', async () => {
  let sawDot!: () => void;
  const dot = new Promise<void>((r) => { sawDot = r; });
  // A next hop that takes the message and never answers the final dot.
  const server = net.createServer((s) => {
    s.write('220 slow.test ESMTP\r\n');
    let data = false;
    let text = '';
    s.on('data', (chunk) => {
      text += chunk.toString('latin1');
      for (let nl = text.indexOf('\r\n'); nl >= 0; nl = text.indexOf('\r\n')) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 2);
        if (data) {
          if (line === '.') sawDot();
        } else if (/^EHLO/i.test(line)) s.write('250-slow.test\r\n250 8BITMIME\r\n');
        else if (/^DATA/i.test(line)) { data = true; s.write('354 go on\r\n'); } else s.write('250 ok\r\n');
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const client = await SmtpClient.connect({ host: '127.0.0.1', port, tls: 'none', verify: false },
      { name: 'mx.example.test', connectTimeout: 5000, greetingTimeout: 5000, commandTimeout: 600_000 });
    const body = 'Subject: s\r\n\r\nx\r\n';
    const sending = client.send({ sender: 'a@example.test', recipients: ['b@slow.test'], size: body.length, eightBit: false, content: () => Readable.from([Buffer.from(body)]) });
    await dot;
    client.close();
    const results = await Promise.race([sending, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000).unref())]);
    assert.notEqual(results, 'hung', 'the transaction never settled');
    assert.deepEqual(results, [{ address: 'b@slow.test', ok: false, permanent: false, reply: 'connection closed before the reply' }]);
  } finally {
    server.close();
    server.unref();
  }
});
