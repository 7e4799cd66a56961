/**
 * The HTTP API on listen.http: POST /api/v1/send with bearer tokens (curl and node:http), every
 * error status with its message, token revocation, size limits, /healthz and /metrics.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { SmtpClient } from '../helpers/smtp-client.ts';
import { addUser, baseConfig, cli, startMailnest, tempDir, writeConfig, type RunningMailnest } from '../helpers/server.ts';
import { dataDirOf, mailbox } from '../helpers/mailbox.ts';
import { leaves, parseMail, shape } from '../helpers/parse-mail.ts';
import { until } from '../helpers/relay.ts';

const MAX = 50_000;

interface Reply {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
  json(): Promise<unknown>;
}

describe('HTTP API', () => {
  let dir: string;
  let configFile: string;
  let server: RunningMailnest;
  let base: string;
  let token: string;

  const post = (body: unknown, headers: Record<string, string> = {}) => request('POST', '/api/v1/send',
    { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, ...headers },
    typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));

  /** One request on its own connection (the test process blocks in spawnSync at times, so a
   *  kept-alive socket could have been closed by the server meanwhile). */
  function request(method: string, urlPath: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port('http'), method, path: urlPath, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, headers: { get: (n: string) => (res.headers[n.toLowerCase()] as string | undefined) ?? null }, text: async () => text, json: async () => JSON.parse(text) });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  function curl(args: string[]): { status: number; body: string; headers: string } {
    const r = spawnSync('curl', ['-sS', '-D', '-', '--max-time', '30', ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `curl failed: ${r.stderr}`);
    const split = r.stdout.indexOf('\r\n\r\n');
    const headers = r.stdout.slice(0, split);
    return { status: Number(headers.split(' ')[1]), headers, body: r.stdout.slice(split + 4) };
  }

  before(async () => {
    dir = tempDir();
    configFile = writeConfig(dir, baseConfig(dir, { limits: { max_message_size: MAX } }));
    addUser(configFile, 'owner@example.test', 'pw-owner-123');
    const t = cli(configFile, ['token', 'create', 'ci']);
    assert.equal(t.status, 0, t.stderr);
    token = t.stdout.trim();
    server = await startMailnest(dir, configFile);
    base = `http://127.0.0.1:${server.port('http')}`;
  });

  after(async () => {
    await server?.stop();
  });

  it('only the token hash is stored', () => {
    assert.match(token, /^mn_[A-Za-z0-9_-]{43}$/);
    const file = path.join(dataDirOf(dir), 'mailnest.sqlite');
    const db = Buffer.concat([file, `${file}-wal`].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f)));
    assert.ok(!db.includes(token), 'the token itself is in the database');
    assert.ok(db.includes(crypto.createHash('sha256').update(token).digest('hex')), 'the SHA-256 hash is not in the database');
  });

  it('curl: a full message is accepted with 202 {id} and lands in the mailbox whole', async () => {
    const pdf = crypto.randomBytes(3000);
    const body = JSON.stringify({
      from: 'Monitor <monitor@example.test>', to: ['Owner <owner@example.test>'], subject: 'Rapport été ✓',
      text: 'Tout va bien.', html: '<p>Tout va <b>bien</b>.</p>',
      attachments: [{ filename: 'données.pdf', content: pdf.toString('base64') }],
      headers: { 'X-Source': 'curl-test' },
    });
    const file = path.join(dir, 'req.json');
    fs.writeFileSync(file, body);
    const r = curl(['-X', 'POST', `${base}/api/v1/send`, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/json', '--data-binary', `@${file}`]);
    assert.equal(r.status, 202, r.body);
    const reply = JSON.parse(r.body) as { id: string; messageId: string };
    assert.match(reply.id, /^[0-9A-Z]{17}$/);
    const [m] = await mailbox(dataDirOf(dir), 'owner@example.test');
    assert.ok(m);
    assert.match(m.toString(), new RegExp(`^Return-Path: <monitor@example\\.test>\\r\\nReceived: from unknown \\(\\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.example\\.test \\(mailnest\\) with HTTP id ${reply.id} \\(authenticated as token ci\\)`));
    const p = parseMail(m);
    assert.equal(p.headers['subject'], 'Rapport été ✓');
    assert.equal(p.headers['message-id'], reply.messageId);
    assert.equal(p.headers['x-source'], 'curl-test');
    assert.equal(shape(p.root), 'multipart/mixed(multipart/alternative(text/plain,text/html),application/pdf)');
    const [t, h, a] = leaves(p.root);
    assert.equal(t!.text, 'Tout va bien.');
    assert.equal(h!.text, '<p>Tout va <b>bien</b>.</p>');
    assert.equal(a!.filename, 'données.pdf');
    assert.ok(Buffer.from(a!.bytes!, 'base64').equals(pdf));
    // Its log line says whose it is, to whom and how large, as SMTP's does.
    await until('the log line', () => server.logs.some((l) => l.msg === 'message accepted' && l.id === reply.id));
    const line = server.logs.find((l) => l.msg === 'message accepted' && l.id === reply.id)!;
    assert.deepEqual([line.listener, line.token, line.from, line.to], ['http', 'ci', 'monitor@example.test', ['owner@example.test']]);
    assert.ok(Number(line.size) > pdf.length, JSON.stringify(line));
  });

  it('drops an Authentication-Results field that claims the server\'s host name (RFC 8601 §5)', async () => {
    const res = await post({ to: 'owner@example.test', subject: 'claims', text: 'x', headers: { 'Authentication-Results': 'mx.example.test; dmarc=pass header.from=bank.test' } });
    assert.equal(res.status, 202, await res.text());
    const m = (await mailbox(dataDirOf(dir), 'owner@example.test')).map(String).find((x) => x.includes('Subject: claims'));
    assert.ok(m, 'not delivered');
    assert.doesNotMatch(m.slice(0, m.indexOf('\r\n\r\n')), /Authentication-Results|bank\.test/i);
  });

  it('the default sender is postmaster@<first domain>; bcc never shows', async () => {
    const res = await post({ bcc: 'owner@example.test', subject: 'quiet', text: 'x' });
    assert.equal(res.status, 202, await res.text());
    const mails = await mailbox(dataDirOf(dir), 'owner@example.test');
    const m = mails[mails.length - 1]!;
    const p = parseMail(m);
    assert.equal(p.headers['from'], 'postmaster@example.test');
    assert.equal(p.headers['subject'], 'quiet');
    assert.ok(!p.headerNames.includes('bcc') && !p.headerNames.includes('to'));
  });

  it('401 for a missing, malformed or wrong token', async () => {
    const none = await request('POST', '/api/v1/send', { 'Content-Type': 'application/json' }, '{}');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="mailnest"');
    assert.match((await none.json() as { error: string }).error, /missing Authorization: Bearer <token>/);
    const basic = await post({}, { Authorization: 'Basic dXNlcjpwYXNz' });
    assert.equal(basic.status, 401);
    assert.match((await basic.json() as { error: string }).error, /must be "Bearer <token>"/);
    const wrong = await post({ to: 'owner@example.test', text: 'x' }, { Authorization: `Bearer ${token}x` });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate')!, /error="invalid_token"/);
    assert.deepEqual(await wrong.json(), { error: 'invalid or revoked token' });
  });

  it('a revoked token stops working at once (curl)', async () => {
    const t = cli(configFile, ['token', 'create', 'temp']);
    assert.equal(t.status, 0, t.stderr);
    const temp = t.stdout.trim();
    const args = ['-X', 'POST', `${base}/api/v1/send`, '-H', `Authorization: Bearer ${temp}`, '-H', 'Content-Type: application/json', '-d', '{"to":"owner@example.test","text":"x"}'];
    assert.equal(curl(args).status, 202);
    const list = JSON.parse(cli(configFile, ['token', 'list', '--json']).stdout) as { name: string; last_used: string | null }[];
    assert.deepEqual(list.map((x) => x.name), ['ci', 'temp']);
    assert.ok(list.find((x) => x.name === 'temp')!.last_used, 'last_used not recorded');
    assert.equal(cli(configFile, ['token', 'revoke', 'temp']).stdout, 'revoked temp\n');
    const after = curl(args);
    assert.equal(after.status, 401);
    assert.deepEqual(JSON.parse(after.body), { error: 'invalid or revoked token' });
    // revoking again, or a token that never was, is an error
    const again = cli(configFile, ['token', 'revoke', 'temp']);
    assert.equal(again.status, 1);
    assert.equal(again.stderr, 'mailnest: no token temp\n');
  });

  it('400 with a message naming the field', async () => {
    const cases: [string | Buffer | object, string][] = [
      ['{"to": ', 'request body is not valid JSON'],
      // RFC 8259 §8.1: JSON is UTF-8; "caf\xe9" in Latin-1 is not, and is not made into U+FFFD.
      [Buffer.from('{"to": "owner@example.test", "text": "caf\xe9"}', 'latin1'), 'request body is not UTF-8'],
      ['[1,2]', 'request body: expected a JSON object'],
      // RFC 8259 §4: JSON.parse would keep the second "to" and drop the first recipient unsaid.
      ['{"to": "owner@example.test", "text": "x", "to": "other@example.test"}', 'to: given more than once, and only one would be used; give each field once'],
      [{ to: 'owner@example.test', text: 'x', color: 'red' }, 'unknown field "color"; allowed: from, to, cc, bcc, subject, text, html, attachments, headers'],
      [{ to: ['owner@example.test', 5] }, 'to: expected an address or an array of addresses (strings)'],
      [{ to: 'owner@example.test', subject: 7 }, 'subject: expected a string'],
      [{ text: 'nobody to send to' }, 'to: at least one recipient is needed in to, cc or bcc'],
      [{ to: 'owner@example.test', cc: 'not an address' }, 'cc: "not an address" is not a valid address'],
      [{ to: 'owner@example.test', attachments: [{ filename: 'a.bin', content: 'not base64!' }] }, 'attachments[0].content: not valid base64'],
      [{ to: 'owner@example.test', attachments: [{ filename: 'a.bin' }] }, 'attachments[0].content: expected a string (the file content in base64)'],
      [{ to: 'owner@example.test', attachments: [{ filename: '../x', content: '' }] }, 'attachments[0].filename: "../x" is not a file name'],
      [{ to: 'owner@example.test', attachments: [{ filename: 'a', content: '', size: 1 }] }, 'attachments[0]: unknown field "size"'],
      [{ to: 'owner@example.test', headers: { 'Content-Type': 'text/html' } }, 'headers["Content-Type"]: header Content-Type cannot be set here'],
      [{ to: 'owner@example.test', headers: { 'X-Evil': 'a\r\nBcc: x@example.org' } }, 'headers["X-Evil"]: contains a line break'],
      [{ to: 'owner@example.test', headers: { 'Reply-To': 'garbage text' } }, 'headers["Reply-To"]: header Reply-To: "garbage text" is not a valid address'],
      [{ to: 'owner@example.test', headers: ['X-A: b'] }, 'headers: expected an object of "Name": "value" pairs'],
      [{ to: ['owner@example.test', 'ghost@example.test'], text: 'x' }, 'no such local user or alias: ghost@example.test'],
    ];
    for (const [body, message] of cases) {
      const res = await post(body);
      const reply = await res.json() as { error: string };
      assert.equal(res.status, 400, `${JSON.stringify(body)} -> ${reply.error}`);
      assert.ok(reply.error.startsWith(message), `${JSON.stringify(body)}: got ${JSON.stringify(reply.error)}`);
    }
  });

  it('415 for a body that is not JSON', async () => {
    const res = await post('to=owner@example.test', { 'Content-Type': 'application/x-www-form-urlencoded' });
    assert.equal(res.status, 415);
    assert.match((await res.json() as { error: string }).error, /Content-Type must be application\/json/);
  });

  it('413 for a body over limits.max_message_size, declared or streamed, and for a message over it', async () => {
    const big = JSON.stringify({ to: 'owner@example.test', text: 'a'.repeat(MAX) });
    const file = path.join(dir, 'big.json');
    fs.writeFileSync(file, big);
    const declared = curl(['-X', 'POST', `${base}/api/v1/send`, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/json', '--data-binary', `@${file}`]);
    assert.equal(declared.status, 413);
    assert.match(declared.body, /over limits\.max_message_size \(50000 bytes\)/);
    const chunked = curl(['-X', 'POST', `${base}/api/v1/send`, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/json', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${file}`]);
    assert.equal(chunked.status, 413);
    // under the limit as JSON, over it once composed (base64 of non-Latin text grows by a third)
    const res = await post({ to: 'owner@example.test', text: 'ж'.repeat(20_000) });
    assert.equal(res.status, 413);
    assert.match((await res.json() as { error: string }).error, /^the message is \d+ bytes; at most 50000 are allowed/);
  });

  it('stops reading a streamed body once it passes the limit', async () => {
    // A raw client that sends headers and then more than the limit in chunks, and keeps the
    // connection open: the 413 comes back while the client has not finished sending.
    const port = server.port('http');
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => { got += d.toString(); if (got.includes('\r\n\r\n') && got.includes('}')) { resolve(got); s.destroy(); } });
      s.on('error', (e) => (got ? resolve(got) : reject(e)));
      s.write(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = 'b'.repeat(16_384);
      for (let i = 0; i < 5; i++) s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      // no terminating 0-chunk: the server must answer without waiting for the end
    });
    assert.match(reply, /^HTTP\/1\.1 413 /);
  });

  /** Writes `requests` at once on one connection and returns all that comes back until the
   *  server closes it, or until `answers` status lines have come (then the client closes). */
  function pipelined(requests: string, answers: number): Promise<string> {
    return new Promise((resolve) => {
      const s = net.connect(server.port('http'), '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
        if ((got.match(/^HTTP\/1\.1 \d{3} [^]*?\r\n\r\n[^]*?}\n/gm) ?? []).length >= answers) s.end();
      });
      s.on('close', () => resolve(got));
      s.on('error', () => {});
      s.write(requests);
    });
  }

  it('a client gone before its body was whole is logged as such, not as a request refused with 400', async () => {
    const s = net.connect(server.port('http'), '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.on('connect', () => resolve()));
    s.write(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"to":`);
    await new Promise((r) => setTimeout(r, 200));
    // Gone at once (a reset): a client that only half-closes may still be waiting for its answer.
    s.resetAndDestroy();
    await until('the abandonment logged', () => server.logs.some((l) => l.msg === 'request abandoned: the client went before its body was whole'));
    assert.ok(!server.logs.some((l) => (l.msg === 'request refused' && l.reason === 'aborted') || l.msg === 'HTTP request failed'));
  });

  it('pipelined requests: a refusal with a body is read past and answered in turn, after the answers owed before it', async () => {
    const before = (await mailbox(dataDirOf(dir), 'owner@example.test')).length;
    const good = (text: string) => {
      const body = JSON.stringify({ to: 'owner@example.test', text });
      return `POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    const wrongType = `POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello`;
    const noToken = 'POST /api/v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';
    const reply = await pipelined(good('pipelined first') + wrongType + noToken + good('pipelined last'), 4);
    const statuses = [...reply.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [202, 415, 401, 202], reply);
    // each refusal keeps the connection, as it says
    assert.doesNotMatch(reply, /^Connection: close/im);
    assert.equal((await mailbox(dataDirOf(dir), 'owner@example.test')).length, before + 2);
  });

  it('bytes that are no request, after a send on the same connection: the send\'s 202 first, then the 400', async () => {
    const before = (await mailbox(dataDirOf(dir), 'owner@example.test')).length;
    const body = JSON.stringify({ to: 'owner@example.test', text: 'before garbage' });
    const reply = await pipelined(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}hello\r\n\r\n`, 2);
    assert.deepEqual([...reply.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1])), [202, 400], reply);
    assert.equal((await mailbox(dataDirOf(dir), 'owner@example.test')).length, before + 1);
  });

  it('a client that half-closes after its request still gets the answer (printf ... | nc -N)', async () => {
    const body = JSON.stringify({ to: 'owner@example.test', text: 'half closed' });
    for (let i = 0; i < 5; i++) {
      const reply = await new Promise<string>((resolve) => {
        const s = net.connect(server.port('http'), '127.0.0.1');
        let got = '';
        s.on('data', (d) => { got += d.toString(); });
        s.on('close', () => resolve(got));
        s.on('error', () => {});
        s.end(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      });
      assert.match(reply, /^HTTP\/1\.1 202 /, reply);
    }
  });

  it('a request without Host is answered 400 in its turn (RFC 9112 §3.2); the send after it is run and answered', async () => {
    const body = JSON.stringify({ to: 'owner@example.test', text: 'after a Host-less request' });
    const reply = await pipelined(`GET /healthz HTTP/1.1\r\n\r\nPOST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 2);
    assert.deepEqual([...reply.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1])), [400, 202], reply);
    assert.match(reply, /needs a Host header field/);
  });

  it('a body that breaks its chunked framing is answered 400 at once, after the answers owed before it', async () => {
    const body = JSON.stringify({ to: 'owner@example.test', text: 'before a broken chunk' });
    const reply = await pipelined(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
      + `POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n`, 2);
    // (not a 408 a minute later, when the request's time is up)
    assert.deepEqual([...reply.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1])), [202, 400], reply);
  });

  it('a request after one answered with Connection: close is not run: no message is made whose answer is never sent', async () => {
    const before = (await mailbox(dataDirOf(dir), 'owner@example.test')).length;
    const good = JSON.stringify({ to: 'owner@example.test', text: 'pipelined after a refusal' });
    // refused on its headers, its body never asked for: the connection closes after the answer
    const reply = await pipelined(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`
      + `POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${good.length}\r\n\r\n${good}`, 2);
    assert.match(reply, /^HTTP\/1\.1 401 [^]*\r\nConnection: close\r\n/);
    assert.doesNotMatch(reply, /HTTP\/1\.1 202/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await mailbox(dataDirOf(dir), 'owner@example.test')).length, before, 'the second request was not run');
  });

  it('503 with Retry-After when the store cannot take the message now (a lock held elsewhere), whether it is the send or the token\'s use that waits on it', async () => {
    // A token not used yet is written down at its first use: that write meets the lock first.
    const fresh = cli(configFile, ['token', 'create', 'fresh']);
    assert.equal(fresh.status, 0, fresh.stderr);
    const freshToken = fresh.stdout.trim();
    // Another process holds the database's write lock past the store's wait for it.
    const holder = spawn('python3', ['-c', [
      'import sqlite3, sys',
      `c = sqlite3.connect(${JSON.stringify(path.join(dataDirOf(dir), 'mailnest.sqlite'))}, isolation_level=None)`,
      "c.execute('BEGIN IMMEDIATE')",
      "print('locked', flush=True)",
      'sys.stdin.read()',
    ].join('\n')], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.once('data', () => resolve());
        holder.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
      });
      for (const bearer of [token, freshToken]) {
        const res = await post({ to: 'owner@example.test', text: 'while locked' }, { Authorization: `Bearer ${bearer}` });
        assert.equal(res.status, 503);
        assert.equal(res.headers.get('retry-after'), '60');
        assert.match((await res.json() as { error: string }).error, /cannot store the message now; try again later/);
      }
    } finally {
      holder.stdin!.end();
    }
    const res = await post({ to: 'owner@example.test', text: 'after the lock' });
    assert.equal(res.status, 202);
  });

  it('a refusal before the body (no token, wrong type, a content coding) is answered, and the body is not read on past the size limit', async () => {
    const port = server.port('http');
    const refusedWhileSending = (headers: string) => new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => { got += d.toString(); });
      s.on('close', () => resolve(got));
      // the server closing while we write is the point: EPIPE or ECONNRESET then
      s.on('error', () => {});
      s.write(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: 10000000000\r\n\r\n`);
      // far more than any limit; the server closes instead of reading it all
      const chunk = Buffer.alloc(65_536, 'c');
      const pump = () => { if (!s.destroyed && s.write(chunk)) setImmediate(pump); };
      s.on('drain', pump);
      pump();
    });
    assert.match(await refusedWhileSending('Content-Type: application/json\r\n'), /^HTTP\/1\.1 401 /);
    assert.match(await refusedWhileSending(`Authorization: Bearer ${token}\r\nContent-Type: text/plain\r\n`), /^HTTP\/1\.1 415 /);
    const coded = await refusedWhileSending(`Authorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n`);
    assert.match(coded, /^HTTP\/1\.1 415 [^]*Content-Encoding gzip is not supported/i);
  });

  it('Expect: 100-continue: a request refused by its headers gets its final answer and no 100 (RFC 9110 §10.1.1)', async () => {
    const port = server.port('http');
    const ask = (headers: string) => new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => { got += d.toString(); if (/\r\n\r\n[^]*}\n/.test(got)) { resolve(got); s.destroy(); } });
      s.on('close', () => resolve(got));
      s.on('error', (e) => (got ? resolve(got) : reject(e)));
      s.write(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n${headers}\r\n`);
    });
    const noToken = await ask('Content-Length: 10\r\n');
    assert.match(noToken, /^HTTP\/1\.1 401 /);
    const tooBig = await ask(`Authorization: Bearer ${token}\r\nContent-Length: ${MAX + 1}\r\n`);
    assert.match(tooBig, /^HTTP\/1\.1 413 /);
    // A good one is asked for its body, and sent.
    const body = JSON.stringify({ to: 'owner@example.test', text: 'continued' });
    const good = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
        if (got === 'HTTP/1.1 100 Continue\r\n\r\n') s.write(body);
        if (/\r\n\r\n[^]*\r\n\r\n[^]*}\n/.test(got)) { resolve(got); s.destroy(); }
      });
      s.on('error', reject);
      s.write(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    });
    assert.match(good, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /);
  });

  it('a request target in absolute form is the same path (RFC 9112 §3.2.2)', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(server.port('http'), '127.0.0.1');
      let got = '';
      s.on('data', (d) => { got += d.toString(); });
      s.on('close', () => resolve(got));
      s.on('error', reject);
      s.write(`GET http://127.0.0.1:${server.port('http')}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
    assert.match(reply, /^HTTP\/1\.1 200 [^]*"status":"ok"/);
  });

  it('431 for oversized headers, 400 for a request that is not HTTP', async () => {
    const raw = (text: string) => new Promise<string>((resolve, reject) => {
      const s = net.connect(server.port('http'), '127.0.0.1');
      let got = '';
      s.on('data', (d) => { got += d.toString(); });
      s.on('close', () => resolve(got));
      s.on('error', (e) => (got ? resolve(got) : reject(e)));
      s.write(text);
    });
    assert.match(await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    assert.match(await raw('HELO there\r\n\r\n'), /^HTTP\/1\.1 400 /);
  });

  it('404 for an unknown path, 405 with Allow for a wrong method', async () => {
    const nf = await request('GET', '/api/v2/send');
    assert.equal(nf.status, 404);
    assert.deepEqual(await nf.json(), { error: 'no such endpoint: /api/v2/send' });
    const get = await request('GET', '/api/v1/send');
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    const del = await request('DELETE', '/healthz');
    assert.equal(del.status, 405);
    assert.equal(del.headers.get('allow'), 'GET, HEAD');
  });

  it('GET /healthz and GET /metrics', async () => {
    // A refusal the SMTP session decides alone is counted too.
    const smtp = await SmtpClient.open(server.port('smtp'));
    await smtp.ehlo();
    await smtp.cmd('MAIL FROM:<a@remote.test>');
    assert.equal((await smtp.cmd('RCPT TO:<x@elsewhere.test>')).code, 550);
    assert.equal((await smtp.cmd('RCPT TO:<nobody@example.test>')).code, 550);
    await smtp.quit();
    const h = await request('GET', '/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
    const m = await request('GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const text = await m.text();
    const value = (line: string) => Number(new RegExp(`^${line.replace(/[{}"=]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    assert.ok(value('mailnest_messages_accepted_total{listener="http"}') >= 3, text);
    assert.ok(value('mailnest_messages_rejected_total{listener="http",reason="auth"}') >= 3, text);
    assert.ok(value('mailnest_messages_rejected_total{listener="http",reason="bad_request"}') >= 10, text);
    assert.ok(value('mailnest_messages_rejected_total{listener="http",reason="size"}') >= 2, text);
    assert.ok(value('mailnest_sessions_total{listener="http"}') >= 1, text);
    assert.ok(value('mailnest_messages_rejected_total{listener="smtp",reason="relay_denied"}') >= 1, text);
    assert.ok(value('mailnest_messages_rejected_total{listener="smtp",reason="unknown_recipient"}') >= 1, text);
    assert.match(text, /^# TYPE mailnest_connections_open gauge$/m);
    assert.match(text, /^# TYPE mailnest_queue_depth gauge$/m);
    assert.match(text, /^# TYPE mailnest_deliveries_total counter$/m);
  });
});

describe('token names', () => {
  it('are checked, and unique', () => {
    const dir = tempDir();
    const configFile = writeConfig(dir, baseConfig(dir));
    const bad = cli(configFile, ['token', 'create', 'has space']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /token name "has space": use 1 to 64 letters/);
    assert.equal(cli(configFile, ['token', 'create', 'dup']).status, 0);
    const dup = cli(configFile, ['token', 'create', 'dup']);
    assert.equal(dup.status, 1);
    assert.equal(dup.stderr, 'mailnest: token dup already exists (revoke it first to replace it)\n');
    assert.equal(cli(configFile, ['token', 'list']).stdout.split('\n')[0], 'NAME  CREATED                   LAST USED');
  });
});

describe('stopping', () => {
  it('a send under way when the server is told to stop gets the sessions\' grace to finish, and is taken', async () => {
    const dir = tempDir();
    const configFile = writeConfig(dir, baseConfig(dir));
    addUser(configFile, 'owner@example.test', 'pw-owner-123');
    const token = cli(configFile, ['token', 'create', 'ci']).stdout.trim();
    const server = await startMailnest(dir, configFile);
    try {
      const body = JSON.stringify({ to: 'owner@example.test', subject: 'across the stop', text: 'x' });
      const s = net.connect(server.port('http'), '127.0.0.1');
      let got = '';
      s.on('data', (d) => { got += d.toString(); });
      const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
      s.on('error', () => {});
      // The headers read (the server says so with 100 Continue), the body under way.
      s.write(`POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
      await until('the headers read', () => got.startsWith('HTTP/1.1 100 Continue\r\n\r\n'));
      s.write(body.slice(0, 10));
      const stopped = server.stop();
      // Past the 2 s the HTTP listener once gave its requests.
      await new Promise((r) => setTimeout(r, 3000));
      s.end(body.slice(10));
      await closed;
      assert.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /, got);
      assert.equal(await stopped, 0);
      assert.equal((await mailbox(dataDirOf(dir), 'owner@example.test')).length, 1);
    } finally {
      await server.kill();
    }
  });
});
