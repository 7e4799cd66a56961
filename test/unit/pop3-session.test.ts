import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pop3Effect } from '../../src/pop3/effects.ts';
import { MESSAGES, Pop3Driver as Driver } from '../helpers/pop3-driver.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('POP3 session: greeting and AUTHORIZATION', () => {
  it('greets with +OK', async () => {
    assert.equal(await new Driver().greet(), '+OK mx.example.test mailnest POP3 server ready\r\n');
  });

  it('logs in with USER/PASS, the password taken whole with its spaces', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(d.s.currentState, 'transaction');
    assert.deepEqual(d.effects[0], { type: 'login', owner: d.owner, username: 'alice@example.test', password: 'secret word' });
  });

  it('answers wrong password and unknown user with the same -ERR [AUTH]', async () => {
    const d = new Driver();
    await d.greet();
    await d.cmd('USER alice@example.test');
    const wrong = await d.cmd('PASS nope');
    await d.cmd('USER nobody@example.test');
    const unknown = await d.cmd('PASS secret word');
    assert.equal(wrong, '-ERR [AUTH] invalid user name or password\r\n');
    assert.equal(unknown, wrong);
    assert.equal(d.s.currentState, 'authorization');
  });

  it('refuses PASS before USER, and PASS not right after USER, without [AUTH]: the order is wrong, not the password', async () => {
    const d = new Driver();
    await d.greet();
    assert.equal(await d.cmd('PASS secret word'), '-ERR send USER first\r\n');
    await d.cmd('USER alice@example.test');
    await d.cmd('NOOP');
    assert.equal(await d.cmd('PASS secret word'), '-ERR send USER first\r\n');
    assert.equal(d.effects.length, 0);
  });

  it('lets a CAPA come between USER and PASS, as Dovecot does', async () => {
    const d = new Driver();
    await d.greet();
    await d.cmd('USER alice@example.test');
    assert.match(await d.cmd('CAPA'), /^\+OK/);
    await d.cmd('PASS secret word');
    assert.equal(d.effects.length, 1);
  });

  it('after a failed PASS the USER must be sent again', async () => {
    const d = new Driver();
    await d.greet();
    await d.cmd('USER alice@example.test');
    await d.cmd('PASS wrong');
    assert.equal(await d.cmd('PASS secret word'), '-ERR send USER first\r\n');
  });

  it('closes after the throttle says the attempts are used up', async () => {
    const d = new Driver();
    d.login = () => ({ type: 'auth-failed', disconnect: true });
    await d.greet();
    await d.cmd('USER a@b');
    assert.match(await d.cmd('PASS x'), /^-ERR \[AUTH\] /);
    assert.equal(d.closed, true);
  });

  it('closes a client still blocked by earlier failures with [SYS/TEMP]', async () => {
    const d = new Driver();
    d.login = () => ({ type: 'blocked' });
    await d.greet();
    await d.cmd('USER a@b');
    assert.match(await d.cmd('PASS x'), /^-ERR \[SYS\/TEMP\] too many failed logins/);
    assert.equal(d.closed, true);
  });

  it('answers a locked maildrop with [IN-USE] and stays in AUTHORIZATION', async () => {
    const d = new Driver();
    d.login = () => ({ type: 'in-use' });
    await d.greet();
    await d.cmd('USER a@b');
    assert.match(await d.cmd('PASS x'), /^-ERR \[IN-USE\] /);
    assert.equal(d.s.currentState, 'authorization');
    assert.equal(d.closed, false);
  });

  it('answers a store failure at login with [SYS/TEMP]', async () => {
    const d = new Driver();
    d.login = () => ({ type: 'temp' });
    await d.greet();
    await d.cmd('USER a@b');
    assert.match(await d.cmd('PASS x'), /^-ERR \[SYS\/TEMP\] /);
  });

  it('rejects USER without an argument or with two', async () => {
    const d = new Driver();
    await d.greet();
    assert.equal(await d.cmd('USER'), '-ERR USER needs an argument\r\n');
    assert.equal(await d.cmd('USER a b'), '-ERR noise after the arguments of USER\r\n');
    assert.equal(await d.cmd('PASS x'), '-ERR send USER first\r\n');
  });

  it('AUTH PLAIN with an initial response', async () => {
    const d = new Driver();
    await d.greet();
    assert.match(await d.cmd(`AUTH PLAIN ${b64('\0alice@example.test\0secret word')}`), /^\+OK maildrop has 3 messages/);
    assert.equal(d.s.currentState, 'transaction');
  });

  it('AUTH PLAIN with an empty challenge', async () => {
    const d = new Driver();
    await d.greet();
    assert.equal(await d.cmd('AUTH PLAIN'), '+ \r\n');
    assert.match(await d.cmd(b64('alice@example.test\0alice@example.test\0secret word')), /^\+OK/);
  });

  it('AUTH LOGIN with challenges, and with an initial response', async () => {
    const d = new Driver();
    await d.greet();
    assert.equal(await d.cmd('auth login'), `+ ${b64('Username:')}\r\n`);
    assert.equal(await d.cmd(b64('alice@example.test')), `+ ${b64('Password:')}\r\n`);
    assert.match(await d.cmd(b64('secret word')), /^\+OK/);
    const e = new Driver();
    await e.greet();
    assert.equal(await e.cmd(`AUTH LOGIN ${b64('alice@example.test')}`), `+ ${b64('Password:')}\r\n`);
    assert.match(await e.cmd(b64('wrong')), /^-ERR \[AUTH\] /);
  });

  it('AUTH: cancel, bad base64, unknown mechanism, listing, bad PLAIN', async () => {
    const d = new Driver();
    await d.greet();
    await d.cmd('AUTH LOGIN');
    assert.equal(await d.cmd('*'), '-ERR authentication cancelled\r\n');
    assert.equal(await d.cmd('AUTH PLAIN !!!'), '-ERR initial response is not valid base64\r\n');
    await d.cmd('AUTH PLAIN');
    assert.equal(await d.cmd('%%%'), '-ERR response is not valid base64\r\n');
    assert.match(await d.cmd('AUTH CRAM-MD5'), /^-ERR unsupported authentication mechanism/);
    assert.equal(await d.cmd('AUTH'), '+OK SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n');
    assert.match(await d.cmd(`AUTH PLAIN ${b64('only-one-part')}`), /^-ERR \[AUTH\] PLAIN response/);
    assert.equal(await d.cmd('AUTH PLAIN a b'), '-ERR noise after the arguments of AUTH\r\n');
    assert.equal(d.effects.length, 0);
    assert.equal(d.s.currentState, 'authorization');
  });

  it('APOP is refused', async () => {
    const d = new Driver();
    await d.greet();
    assert.match(await d.cmd('APOP a b'), /^-ERR APOP is not supported/);
  });

  it('QUIT in AUTHORIZATION signs off without touching the maildrop', async () => {
    const d = new Driver();
    await d.greet();
    assert.match(await d.cmd('QUIT'), /^\+OK /);
    assert.equal(d.closed, true);
    assert.equal(d.effects.length, 0);
  });
});

describe('POP3 session: credentials and TLS (RFC 2595)', () => {
  it('refuses USER, PASS and AUTH before STLS unless allow_insecure', async () => {
    const d = new Driver({ allowInsecure: false });
    await d.greet();
    for (const c of ['USER alice@example.test', 'PASS x', `AUTH PLAIN ${b64('\0a\0b')}`, 'AUTH LOGIN']) {
      assert.match(await d.cmd(c), /^-ERR \[AUTH\] credentials are refused on an unencrypted connection/, c);
    }
    // A bare AUTH carries no credentials: it asks for the mechanisms, of which there are none yet.
    assert.equal(await d.cmd('AUTH'), '+OK SASL mechanisms follow\r\n.\r\n');
    assert.equal(d.effects.length, 0);
  });

  it('CAPA before TLS offers STLS and no USER/SASL; after STLS the reverse', async () => {
    const d = new Driver({ allowInsecure: false });
    await d.greet();
    const before = await d.cmd('CAPA');
    assert.equal(before, '+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nSTLS\r\nEXPIRE NEVER\r\nLOGIN-DELAY 0\r\nIMPLEMENTATION mailnest\r\n.\r\n');
    assert.equal(await d.cmd('STLS'), '+OK begin TLS negotiation\r\n');
    assert.equal(d.tlsUpgrades, 1);
    const after = await d.cmd('CAPA');
    assert.equal(after, '+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN LOGIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nLOGIN-DELAY 0\r\nIMPLEMENTATION mailnest\r\n.\r\n');
    assert.equal(await d.cmd('STLS'), '-ERR already using TLS\r\n');
    await d.cmd('USER alice@example.test');
    assert.match(await d.cmd('PASS secret word'), /^\+OK/);
  });

  it('discards commands pipelined after STLS (RFC 2595 §4)', async () => {
    const d = new Driver({ allowInsecure: false });
    await d.greet();
    let upgraded = false;
    const outs = d.s.receive(Buffer.from('STLS\r\nUSER alice@example.test\r\nPASS secret word\r\n'));
    assert.deepEqual(outs.map((o) => o.type), ['write', 'starttls']);
    assert.deepEqual(d.s.receive(Buffer.from('NOOP\r\n')), []);
    assert.deepEqual(d.s.tlsStarted({ protocol: 'TLSv1.3', cipher: 'x' }), []);
    upgraded = true;
    assert.ok(upgraded);
    assert.equal(d.s.currentState, 'authorization');
    assert.equal(await d.cmd('PASS secret word'), '-ERR send USER first\r\n');
  });

  it('implicit TLS: credentials allowed, no STLS', async () => {
    const d = new Driver({ allowInsecure: false, tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, stls: false });
    await d.greet();
    const capa = await d.cmd('CAPA');
    assert.match(capa, /\r\nUSER\r\n/);
    assert.doesNotMatch(capa, /STLS/);
    assert.equal(await d.cmd('STLS'), '-ERR already using TLS\r\n');
  });

  it('STLS where no TLS is configured, and with an argument', async () => {
    const d = new Driver({ stls: false });
    await d.greet();
    assert.equal(await d.cmd('STLS now'), '-ERR STLS takes no arguments\r\n');
    assert.equal(await d.cmd('STLS'), '-ERR STLS is not available\r\n');
  });
});

describe('POP3 session: TRANSACTION', () => {
  const sizes = MESSAGES.map((m) => m.length);
  const total = sizes.reduce((a, b) => a + b, 0);

  it('STAT, LIST and LIST n give octet sizes', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(await d.cmd('STAT'), `+OK 3 ${total}\r\n`);
    assert.equal(await d.cmd('LIST'), `+OK 3 messages (${total} octets)\r\n1 ${sizes[0]}\r\n2 ${sizes[1]}\r\n3 ${sizes[2]}\r\n.\r\n`);
    assert.equal(await d.cmd('LIST 2'), `+OK 2 ${sizes[1]}\r\n`);
    assert.equal(await d.cmd('LIST 4'), '-ERR no such message, only 3 in maildrop\r\n');
    assert.equal(await d.cmd('LIST 0'), '-ERR no such message, only 3 in maildrop\r\n');
    assert.equal(await d.cmd('LIST x'), '-ERR invalid message number\r\n');
    assert.equal(await d.cmd('LIST -1'), '-ERR invalid message number\r\n');
    assert.equal(await d.cmd('LIST 1 2'), '-ERR noise after the arguments of LIST\r\n');
    assert.equal(await d.cmd('STAT 1'), '-ERR STAT takes no arguments\r\n');
  });

  it('UIDL lists the store uids, stable and not renumbered', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(await d.cmd('UIDL'), '+OK unique-id listing follows\r\n1 10\r\n2 15\r\n3 20\r\n.\r\n');
    assert.equal(await d.cmd('UIDL 3'), '+OK 3 20\r\n');
    await d.cmd('DELE 2');
    assert.equal(await d.cmd('UIDL'), '+OK unique-id listing follows\r\n1 10\r\n3 20\r\n.\r\n');
    assert.equal(await d.cmd('UIDL 2'), '-ERR message 2 already deleted\r\n');
  });

  it('RETR sends the octet count and the byte-stuffed message', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(await d.cmd('RETR 2'), `+OK ${sizes[1]} octets\r\nSubject: two\r\n\r\n..starts with a dot\r\nsecond\r\n...two dots\r\n.\r\n`);
    assert.deepEqual(d.effects.at(-1), { type: 'retrieve', userId: 7, uid: 15 });
    assert.equal(d.s.summary().retrieved, 1);
    // TOP reads a message's top, counted apart: a client that reads headers only downloads nothing
    assert.match(await d.cmd('TOP 1 0'), /^\+OK top of message follows\r\n/);
    assert.equal(d.s.summary().retrieved, 1);
    assert.equal(d.s.summary().top, 1);
    // Arguments apart by more than one space are read all the same.
    assert.match(await d.cmd('RETR  2'), /^\+OK \d+ octets\r\n/);
    assert.match(await d.cmd('TOP 1   0 '), /^\+OK top of message follows\r\n/);
  });

  it('RETR errors: missing argument, bad number, deleted, vanished from the store, unreadable now', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(await d.cmd('RETR'), '-ERR RETR needs an argument\r\n');
    assert.equal(await d.cmd('RETR 9'), '-ERR no such message, only 3 in maildrop\r\n');
    assert.equal(await d.cmd('RETR 1 2'), '-ERR noise after the arguments of RETR\r\n');
    await d.cmd('DELE 1');
    assert.equal(await d.cmd('RETR 1'), '-ERR message 1 already deleted\r\n');
    d.missing.add(15);
    assert.equal(await d.cmd('RETR 2'), '-ERR message is no longer in the store\r\n');
    d.unreadable.add(20);
    assert.equal(await d.cmd('RETR 3'), '-ERR [SYS/TEMP] cannot read the message now, try again later\r\n');
    assert.equal(await d.cmd('TOP 3 0'), '-ERR [SYS/TEMP] cannot read the message now, try again later\r\n');
  });

  it('TOP sends header, blank line and n body lines', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(await d.cmd('TOP 3 0'), '+OK top of message follows\r\nSubject: three\r\nX: y\r\n\r\n.\r\n');
    assert.equal(await d.cmd('TOP 3 2'), '+OK top of message follows\r\nSubject: three\r\nX: y\r\n\r\nl1\r\nl2\r\n.\r\n');
    assert.equal(await d.cmd('TOP 2 1'), '+OK top of message follows\r\nSubject: two\r\n\r\n..starts with a dot\r\n.\r\n');
    assert.equal(await d.cmd('TOP 3'), '-ERR TOP needs 2 arguments\r\n');
    assert.equal(await d.cmd('TOP 3 x'), '-ERR invalid number of lines\r\n');
    assert.equal(await d.cmd('TOP 3 1 1'), '-ERR noise after the arguments of TOP\r\n');
    assert.equal(await d.cmd('TOP 5 1'), '-ERR no such message, only 3 in maildrop\r\n');
    // Numbers of any length (RFC 1939 §7: more lines than the body has send all of it).
    const all = '+OK top of message follows\r\nSubject: three\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n.\r\n';
    assert.equal(await d.cmd('TOP 3 1000000000000000'), all);
    assert.equal(await d.cmd('TOP 3 99999999999999999999999999'), all);
    assert.equal(await d.cmd('TOP 0000000000000000000003 1000000000000000'), all);
    assert.equal(await d.cmd('TOP 99999999999999999999 1'), '-ERR no such message, only 3 in maildrop\r\n');
  });

  it('DELE marks, STAT and LIST skip it, a second DELE fails, RSET unmarks', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(await d.cmd('DELE 1'), '+OK message 1 deleted\r\n');
    assert.equal(await d.cmd('DELE 1'), '-ERR message 1 already deleted\r\n');
    assert.equal(await d.cmd('STAT'), `+OK 2 ${total - sizes[0]!}\r\n`);
    assert.equal(await d.cmd('LIST 1'), '-ERR message 1 already deleted\r\n');
    assert.equal(await d.cmd('LIST'), `+OK 2 messages (${total - sizes[0]!} octets)\r\n2 ${sizes[1]}\r\n3 ${sizes[2]}\r\n.\r\n`);
    assert.equal(await d.cmd('DELE'), '-ERR DELE needs an argument\r\n');
    assert.equal(await d.cmd('RSET'), `+OK maildrop has 3 messages (${total} octets)\r\n`);
    assert.equal(await d.cmd('STAT'), `+OK 3 ${total}\r\n`);
    assert.equal(await d.cmd('RSET x'), '-ERR RSET takes no arguments\r\n');
  });

  it('NOOP', async () => {
    const d = await new Driver().loggedIn();
    assert.equal(await d.cmd('NOOP'), '+OK\r\n');
    assert.equal(await d.cmd('noop x'), '-ERR NOOP takes no arguments\r\n');
  });

  it('QUIT commits exactly the deleted uids, then closes (UPDATE, RFC 1939 §6)', async () => {
    const d = await new Driver().loggedIn();
    await d.cmd('DELE 1');
    await d.cmd('DELE 3');
    assert.equal(await d.cmd('QUIT'), '+OK mailnest POP3 server signing off (1 message left)\r\n');
    assert.deepEqual(d.effects.at(-1), { type: 'quit', owner: d.owner, userId: 7, uids: [10, 20] });
    assert.equal(d.closed, true);
    assert.equal(d.s.summary().deleted, 2);
  });

  it('QUIT with every message deleted says how many went, not that the maildrop is empty (mail may have come meanwhile)', async () => {
    const d = await new Driver().loggedIn();
    await d.send('DELE 1\r\nDELE 2\r\nDELE 3\r\n');
    assert.equal(await d.cmd('QUIT'), '+OK mailnest POP3 server signing off (3 messages deleted)\r\n');
  });

  it('a failed commit answers -ERR and closes', async () => {
    const d = await new Driver().loggedIn();
    d.quitResult = { type: 'commit-failed' };
    await d.cmd('DELE 1');
    assert.equal(await d.cmd('QUIT'), '-ERR [SYS/TEMP] some deleted messages not removed\r\n');
    assert.equal(d.closed, true);
  });

  it('RSET then QUIT deletes nothing', async () => {
    const d = await new Driver().loggedIn();
    await d.cmd('DELE 2');
    await d.cmd('RSET');
    await d.cmd('QUIT');
    assert.deepEqual(d.effects.at(-1), { type: 'quit', owner: d.owner, userId: 7, uids: [] });
  });
});

describe('POP3 session: every command in every state', () => {
  const commands = ['USER a@b', 'PASS x', 'AUTH', 'APOP a b', 'STLS', 'CAPA', 'STAT', 'LIST', 'RETR 1', 'DELE 1', 'NOOP', 'RSET', 'TOP 1 0', 'UIDL', 'QUIT', 'XYZZY', ''];
  const authOnly = new Set(['USER', 'PASS', 'AUTH', 'APOP', 'STLS']);
  const txOnly = new Set(['STAT', 'LIST', 'RETR', 'DELE', 'NOOP', 'RSET', 'TOP', 'UIDL']);

  for (const c of commands) {
    const verb = c.split(' ')[0]!;
    it(`${c || '(empty line)'} in AUTHORIZATION and TRANSACTION`, async () => {
      const a = new Driver();
      await a.greet();
      const inAuth = await a.cmd(c);
      const t = await new Driver().loggedIn();
      const inTx = await t.cmd(c);
      if (verb === '' || verb === 'XYZZY') {
        assert.equal(inAuth, '-ERR unknown command\r\n');
        assert.equal(inTx, '-ERR unknown command\r\n');
      } else if (authOnly.has(verb)) {
        assert.equal(inTx, `-ERR ${verb} is not valid in the TRANSACTION state\r\n`);
        assert.ok(inAuth.length > 0);
        if (verb === 'USER' || verb === 'STLS' || verb === 'AUTH') assert.match(inAuth, /^\+OK/);
        else assert.match(inAuth, /^-ERR/);
      } else if (txOnly.has(verb)) {
        assert.equal(inAuth, `-ERR ${verb} is not valid in the AUTHORIZATION state\r\n`);
        assert.match(inTx, /^\+OK/);
      } else {
        assert.match(inAuth, /^\+OK/);
        assert.match(inTx, /^\+OK/);
      }
    });
  }

  it('after the session closed, input is ignored', async () => {
    const d = new Driver();
    await d.greet();
    await d.cmd('QUIT');
    assert.deepEqual(d.s.receive(Buffer.from('NOOP\r\n')), []);
  });
});

describe('POP3 session: pipelining (RFC 2449 §6.6) and limits', () => {
  it('answers several commands sent in one write, in order', async () => {
    const d = new Driver();
    await d.greet();
    const all = await d.send('CAPA\r\nUSER alice@example.test\r\nPASS secret word\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nRETR 1\r\nLIST\r\nQUIT\r\n');
    const replies = all.split(/\r\n/);
    assert.equal(replies.filter((l) => l.startsWith('+OK') || l.startsWith('-ERR')).length, 9);
    assert.match(all, /^\+OK capability list follows[\s\S]*\+OK send PASS\r\n\+OK maildrop has 3 messages[\s\S]*\+OK 3 \d+\r\n\+OK \d+ octets\r\nSubject: one\r\n\r\nfirst\r\n\.\r\n\+OK message 1 deleted\r\n-ERR message 1 already deleted\r\n\+OK 2 messages[\s\S]*\+OK mailnest POP3 server signing off/);
    assert.equal(d.closed, true);
  });

  it('the 20th error of the client\'s own making closes the session, in either state; refused credentials and a locked maildrop do not count', async () => {
    const a = new Driver();
    a.login = () => ({ type: 'in-use' });
    await a.greet();
    for (let i = 0; i < 30; i++) {
      await a.cmd('USER alice@example.test');
      assert.match(await a.cmd('PASS x'), /^-ERR \[IN-USE\] /);
    }
    for (let i = 0; i < 19; i++) assert.equal(await a.cmd('XYZZY'), '-ERR unknown command\r\n');
    assert.equal(a.closed, false);
    assert.equal(await a.cmd('STAT'), '-ERR STAT is not valid in the AUTHORIZATION state\r\n-ERR too many bad commands, closing the connection\r\n');
    assert.equal(a.closed, true);
    const t = await new Driver().loggedIn();
    for (let i = 0; i < 19; i++) assert.equal(await t.cmd('RETR 99'), '-ERR no such message, only 3 in maildrop\r\n');
    assert.match(await t.cmd('LIST 1 2'), /^-ERR [^\r]*\r\n-ERR too many bad commands, closing the connection\r\n$/);
    assert.equal(t.closed, true);
  });

  it('thousands of commands in one write are answered a turn\'s worth at a time, in order', async () => {
    const d = new Driver();
    await d.greet();
    const all = await d.send('CAPA\r\n'.repeat(2000) + 'QUIT\r\n');
    assert.ok(d.mores > 10, `${d.mores} later turns`);
    assert.equal(all.split('\r\n').filter((l) => l.startsWith('+OK capability list follows')).length, 2000);
    assert.match(all, /\+OK mailnest POP3 server signing off\r\n$/);
  });

  it('handles commands split across writes, and CR-less line ends', async () => {
    const d = new Driver();
    await d.greet();
    assert.equal(await d.send('NO'), '');
    assert.equal(await d.send('OP\r'), '');
    assert.equal(await d.send('\n'), '-ERR NOOP is not valid in the AUTHORIZATION state\r\n');
    assert.equal(await d.send('CAPA\n').then((r) => r.startsWith('+OK')), true);
  });

  it('holds input that arrives during an effect and answers it afterwards', async () => {
    const d = new Driver();
    await d.greet();
    const first = d.s.receive(Buffer.from('USER alice@example.test\r\nPASS secret word\r\n'));
    assert.equal(first.at(-1)?.type, 'effect');
    assert.deepEqual(d.s.receive(Buffer.from('STAT\r\n')), []);
    const after = d.s.resolve(d.perform((first.at(-1) as { effect: Pop3Effect }).effect));
    assert.deepEqual(after.map((o) => o.type), ['write']);
    assert.match(String((after[0] as { data: string }).data), /^\+OK maildrop has 3 messages .*\r\n\+OK 3 \d+\r\n$/);
  });

  it('answers an overlong line with -ERR and goes on', async () => {
    const d = new Driver();
    await d.greet();
    assert.equal(await d.send('USER ' + 'a'.repeat(2000) + '\r\nNOOP\r\n'), '-ERR command line too long\r\n-ERR NOOP is not valid in the AUTHORIZATION state\r\n');
  });

  it('answers binary garbage with -ERR, never an exception', async () => {
    const d = await new Driver().loggedIn();
    const garbage = Buffer.from([0, 255, 254, 13, 10, 0x80, 0x20, 0x41, 13, 10, 9, 9, 13, 10]);
    assert.equal(await d.send(garbage), '-ERR unknown command\r\n-ERR unknown command\r\n-ERR unknown command\r\n');
    assert.equal(await d.cmd('RETR 99999999999999999999'), '-ERR no such message, only 3 in maildrop\r\n');
    assert.equal(await d.cmd('RETR 1e3'), '-ERR invalid message number\r\n');
  });

  it('cuts off a client that sends too much ahead while an effect is under way', async () => {
    const d = new Driver();
    await d.greet();
    d.s.receive(Buffer.from('USER alice@example.test\r\nPASS secret word\r\n'));
    const outs = d.s.receive(Buffer.alloc(1024 * 1024 + 10, 'N'));
    assert.deepEqual(outs.map((o) => o.type), ['write', 'close']);
  });
});

describe('POP3 session: timeout, shutdown, failure', () => {
  it('autologout closes without a reply and without UPDATE (RFC 1939 §3)', async () => {
    const d = await new Driver().loggedIn();
    await d.cmd('DELE 1');
    assert.deepEqual(d.s.timeout(), [{ type: 'close' }]);
    assert.equal(d.effects.filter((e) => e.type === 'quit').length, 0);
    assert.equal(d.s.summary().outcome, 'autologout');
  });

  it('shutdown when idle: -ERR [SYS/TEMP] and close, nothing deleted', async () => {
    const d = await new Driver().loggedIn();
    await d.cmd('DELE 1');
    await d.run(d.s.shutdown());
    assert.equal(d.take(), '-ERR [SYS/TEMP] server shutting down, try again later\r\n');
    assert.equal(d.closed, true);
    assert.equal(d.effects.filter((e) => e.type === 'quit').length, 0);
  });

  it('shutdown during QUIT lets the commit finish and answers +OK', async () => {
    const d = await new Driver().loggedIn();
    await d.cmd('DELE 1');
    const outs = d.s.receive(Buffer.from('QUIT\r\n'));
    assert.equal(outs.at(-1)?.type, 'effect');
    assert.deepEqual(d.s.shutdown(), []);
    const done = d.s.resolve({ type: 'committed' });
    assert.deepEqual(done.map((o) => o.type), ['write', 'close']);
    assert.match(String((done[0] as { data: string }).data), /^\+OK mailnest POP3 server signing off/);
  });

  it('shutdown while a login is under way: no further commands run', async () => {
    const d = new Driver();
    await d.greet();
    const outs = d.s.receive(Buffer.from('USER alice@example.test\r\nPASS secret word\r\nDELE 1\r\n'));
    assert.equal(outs.at(-1)?.type, 'effect');
    assert.deepEqual(d.s.shutdown().map((o) => o.type), ['write', 'close']);
    assert.deepEqual(d.s.resolve(d.perform((outs.at(-1) as { effect: Pop3Effect }).effect)), []);
  });

  it('failure gives -ERR, but nothing in the middle of a RETR response', async () => {
    const d = await new Driver().loggedIn();
    assert.match(String((d.s.failure()[0] as { data: string }).data), /^-ERR \[SYS\/TEMP\]/);
    const e = await new Driver().loggedIn();
    const outs = e.s.receive(Buffer.from('RETR 1\r\n'));
    const streamOut = e.s.resolve(e.perform((outs[0] as { effect: Pop3Effect }).effect))[0] as { source: AsyncIterable<Buffer> };
    const it = streamOut.source[Symbol.asyncIterator]();
    await it.next();
    assert.deepEqual(e.s.failure(), []);
  });

  it('a message that cannot be read: -ERR when nothing of it was sent, only the close when some was', async () => {
    async function* failing(good: Buffer[]): AsyncIterable<Buffer> {
      yield* good;
      throw new Error('the body is gone');
    }
    for (const [good, midResponse] of [[[], false], [[Buffer.alloc(70_000, 'a')], true]] as const) {
      const d = await new Driver().loggedIn();
      d.s.receive(Buffer.from('RETR 1\r\n'));
      const [out] = d.s.resolve({ type: 'message', source: failing([...good]) });
      await assert.rejects(async () => { for await (const _ of (out as { source: AsyncIterable<Buffer> }).source); }, /the body is gone/);
      const last = d.s.failure();
      if (midResponse) assert.deepEqual(last, [], 'no -ERR inside a half-sent message');
      else assert.match(String((last[0] as { data: string }).data), /^-ERR \[SYS\/TEMP\]/);
    }
  });
});

describe('POP3 session: keywords', () => {
  it('are case-insensitive in the ASCII sense only: a Unicode look-alike is no command', async () => {
    const d = new Driver();
    await d.send(Buffer.alloc(0));
    d.take();
    assert.match(await d.cmd('capa'), /^\+OK/);
    // U+017F (long s) upper-cases to S, U+0131 (dotless i) to I, in Unicode's mapping.
    assert.match(await d.cmd('U\u017fER alice@example.test'), /^-ERR/);
    assert.match(await d.cmd('AUTH PLA\u0131N'), /^-ERR/);
    assert.match(await d.cmd('qu\u0131t'), /^-ERR/);
  });
});
