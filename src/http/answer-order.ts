/**
 * The order of an HTTP connection's answers, and its close: answers go in the order of the
 * requests (RFC 9112 §9.3.2) however they were refused, none is lost to a close, and a closing
 * answer is followed by a close that lets the client read it (§9.6).
 */
import type http from 'node:http';
import type net from 'node:net';

/** Connections answered with `Connection: close`: no request after that one is run. */
export const closing = new WeakSet<net.Socket>();

/** For each connection, its requests not yet answered, the last request read, and what waits
 *  for them to be answered. */
const owed = new WeakMap<net.Socket, { count: number; last?: { req: http.IncomingMessage; res: http.ServerResponse }; then?: () => void }>();

/** Counts a request as owed an answer until its response is done (or given up). */
export function unanswered(req: http.IncomingMessage, res: http.ServerResponse): void {
  const o = owed.get(req.socket) ?? { count: 0 };
  owed.set(req.socket, o);
  o.count++;
  o.last = { req, res };
  res.once('close', () => {
    o.count--;
    if (o.count > 0 || !o.then) return;
    const then = o.then;
    o.then = undefined;
    then();
  });
}

/** Runs `then` once every request of the connection has been answered. */
function whenAnswered(socket: net.Socket, then: () => void): void {
  const o = owed.get(socket);
  if (!o || o.count === 0) return then();
  o.then = then;
}

/** What the parser refused, answered `code reason` with the connection's close after it: the
 *  request whose headers were read and whose body was not (broken framing, too slow) in its
 *  turn, through its own response, which also ends the handler waiting for the body; bytes that
 *  are no request once every request before them is answered. */
export function answerUnparsed(socket: net.Socket, code: number, reason: string): void {
  closing.add(socket);
  const last = owed.get(socket)?.last;
  if (last && !last.req.complete && !last.res.headersSent && !last.res.writableEnded) {
    last.res.writeHead(code, { Connection: 'close', 'Content-Length': 0 });
    last.res.end();
    return;
  }
  whenAnswered(socket, () => {
    if (socket.writable) socket.end(`HTTP/1.1 ${code} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });
}

/** How long a lingering close reads on (nginx's lingering_time is 30 s), and how long it waits
 *  for more of the body before it cuts the connection (nginx's lingering_timeout is 5 s). */
const LINGER_MS = 30_000;
const LINGER_IDLE_MS = 2_000;

/**
 * The close after an answer with "Connection: close" to a request whose body may still be
 * arriving (RFC 9112 §9.6). Node would destroy the connection as soon as that answer is
 * written, and a close with unread data in it is a reset, which can cost the client the answer
 * it has not read yet. Here the answer is followed by a half-close, and the rest of the body is
 * read and dropped, up to `limit` octets: the connection goes once the body has ended, a second
 * after reading stopped at the limit, or when the body stops coming (LINGER_IDLE_MS, LINGER_MS).
 * `cut`: reading has stopped already.
 */
export function lingeringClose(req: http.IncomingMessage, limit: number, cut: boolean): void {
  const socket = req.socket;
  closing.add(socket);
  let answered = false;
  let body: 'reading' | 'ended' | 'cut' = cut ? 'cut' : 'reading';
  const destroyWhenWritten = (): void => {
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };
  // While the body is read after the answer: cut once none has come for LINGER_IDLE_MS, and
  // after LINGER_MS in all (a client that neither sends nor closes holds no slot for long).
  let idle: NodeJS.Timeout | undefined;
  const settle = (): void => {
    if (!answered) return;
    clearTimeout(idle);
    if (body === 'reading') {
      idle = setTimeout(destroyWhenWritten, LINGER_IDLE_MS).unref();
      return;
    }
    if (body === 'ended') destroyWhenWritten();
    else setTimeout(destroyWhenWritten, 1_000).unref();
  };
  // What Node calls once the answer is written, for a connection that closes after it.
  socket.destroySoon = (): void => {
    answered = true;
    socket.end();
    setTimeout(destroyWhenWritten, LINGER_MS).unref();
    settle();
  };
  if (cut) return;
  let dropped = 0;
  const drop = (chunk: Buffer): void => {
    if (answered && body === 'reading') settle();
    dropped += chunk.length;
    if (dropped <= limit) return;
    req.off('data', drop);
    req.pause();
    body = 'cut';
    settle();
  };
  req.on('data', drop);
  req.once('end', () => {
    body = 'ended';
    settle();
  });
  req.resume();
}
