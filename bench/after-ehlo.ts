/**
 * For the flood benches: calls `then` once the server has greeted the connection and answered
 * its EHLO, with the socket paused. A client may pipeline only from there (RFC 2920 §3.1), and
 * a server that hangs up on one pipelining earlier (mailnest, Postfix 3.9) would measure nothing.
 */
import type net from 'node:net';

export function afterEhlo(s: net.Socket, then: () => void): void {
  let heard = '';
  let greeted = false;
  const onData = (d: Buffer) => {
    heard += d.toString('latin1');
    if (!greeted && /^220 /m.test(heard)) {
      greeted = true;
      s.write('EHLO flood.example.test\r\n');
    } else if (greeted && /^250 /m.test(heard)) {
      s.off('data', onData);
      s.pause();
      then();
    }
  };
  s.on('data', onData);
}
