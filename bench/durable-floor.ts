/**
 * The least a durable SMTP server can do, in Node, for smtp-source: answer the dialogue, append
 * each message to one file and fdatasync it (in the thread pool) before the 250. No parsing
 * beyond the verbs, no index, no mailbox. bench/smtp-accept runs it beside smtp-sink (which
 * stores nothing) so that the table shows, in the same run, how fast any durable server on this
 * runtime, disk and client can be. It is a yardstick for the benchmark, not a mail server: it
 * expects smtp-source's dialogue (no pipelining, end of data at the end of a read).
 *
 *   node bench/durable-floor.ts PORT FILE
 */
import fs from 'node:fs';
import net from 'node:net';

const [portText, file] = process.argv.slice(2);
if (!portText || !file) throw new Error('usage: durable-floor.ts PORT FILE');
const fd = fs.openSync(file, 'a');
const END = Buffer.from('\r\n.\r\n');

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => {});
  socket.write('220 durable-floor ESMTP\r\n');
  let lines = '';
  let body: Buffer[] | undefined;
  let tail = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    if (body) {
      body.push(chunk);
      tail = Buffer.concat([tail, chunk.subarray(-END.length)]).subarray(-END.length);
      if (!tail.equals(END)) return;
      const message = Buffer.concat(body);
      body = undefined;
      fs.write(fd, message, (err) => {
        if (err) throw err;
        fs.fdatasync(fd, (err2) => {
          if (err2) throw err2;
          socket.write('250 2.0.0 stored\r\n');
        });
      });
      return;
    }
    lines += chunk.toString('latin1');
    for (let end = lines.indexOf('\r\n'); end >= 0; end = lines.indexOf('\r\n')) {
      const verb = lines.slice(0, 4).toUpperCase();
      lines = lines.slice(end + 2);
      if (verb === 'EHLO') socket.write('250-durable-floor\r\n250 8BITMIME\r\n');
      else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
      else if (verb === 'DATA') {
        socket.write('354 go ahead\r\n');
        body = [];
        tail = Buffer.alloc(0);
      } else socket.write('250 2.0.0 ok\r\n');
    }
  });
});
server.listen(Number(portText), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
