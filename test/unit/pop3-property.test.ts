/**
 * Random and mutated command lines fed to the POP3 session in every state, whatever the store
 * answers: no exception escapes, every response is well-formed (RFC 1939 §3: a status line
 * "+OK" or "-ERR", a multi-line response ended by a lone "." with its lines byte-stuffed; RFC
 * 5034 §4: "+ " for a SASL challenge), and nothing follows the close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { LoginResult, Pop3Result } from '../../src/pop3/effects.ts';
import { MESSAGES, Pop3Driver } from '../helpers/pop3-driver.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const LOGIN = 'USER alice@example.test\r\nPASS secret word\r\n';

/** Prefixes that bring a session into each state before the random input. */
const STATES: Record<string, string> = {
  greeted: '',
  user: 'USER alice@example.test\r\n',
  'failed login': 'USER alice@example.test\r\nPASS wrong\r\n',
  'SASL challenge': 'AUTH PLAIN\r\n',
  'after STLS': 'STLS\r\n',
  transaction: LOGIN,
  'messages deleted': `${LOGIN}DELE 1\r\nDELE 3\r\n`,
  'by AUTH PLAIN': `AUTH PLAIN ${b64('\0alice@example.test\0secret word')}\r\n`,
};

const VERBS = ['USER', 'PASS', 'AUTH', 'AUTH PLAIN', 'AUTH LOGIN', 'APOP', 'STLS', 'CAPA', 'QUIT', 'STAT', 'LIST', 'RETR', 'DELE', 'NOOP', 'RSET', 'TOP', 'UIDL', '*', '.'];

const word = fc.oneof(
  fc.constantFrom(...VERBS),
  fc.constantFrom('1', '2', '3', '0', '4', '-1', '+1', '01', '1.5', '99999999999999999999', 'alice@example.test', 'secret', 'word', 'PLAIN', '=', b64('\0alice@example.test\0secret word'), 'AGFsaWNl'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
/** Whole commands, good and bad, so that every state's answers come up often. */
const command = fc.constantFrom('CAPA', 'STAT', 'LIST', 'LIST 2', 'LIST 9', 'UIDL', 'UIDL 3', 'RETR 1', 'RETR 2', 'RETR 3', 'RETR 4', 'TOP 2 0', 'TOP 2 1', 'TOP 3 99',
  'DELE 2', 'RSET', 'NOOP', 'QUIT', 'AUTH', 'AUTH PLAIN', 'USER alice@example.test', 'PASS secret word', 'STLS');
const line = fc.oneof({ arbitrary: command, weight: 2 }, { arbitrary: fc.array(word, { minLength: 1, maxLength: 4 }).map((ws) => ws.join(' ')), weight: 3 });
const ending = fc.oneof({ arbitrary: fc.constant('\r\n'), weight: 4 }, fc.constantFrom('\n', '\r', '', '\r\r\n'));
const input = fc.array(fc.tuple(line, ending).map(([l, e]) => l + e), { minLength: 1, maxLength: 12 });

/** What the store answers: the login ('ok' for the right password), messages gone or
 *  unreadable, the QUIT's commit. */
interface World {
  login: 'ok' | LoginResult;
  missing: number[];
  unreadable: number[];
  quit: Pop3Result;
}

const world: fc.Arbitrary<World> = fc.record({
  login: fc.oneof(
    { arbitrary: fc.constant<'ok'>('ok'), weight: 5 },
    fc.constantFrom<LoginResult>({ type: 'auth-failed', disconnect: false }, { type: 'auth-failed', disconnect: true }, { type: 'blocked' }, { type: 'in-use' }, { type: 'temp' }),
  ),
  missing: fc.subarray([10, 15, 20]),
  unreadable: fc.subarray([10, 15, 20]),
  quit: fc.constantFrom<Pop3Result>({ type: 'committed' }, { type: 'commit-failed' }),
});

function driver(w: World): Pop3Driver {
  const d = new Pop3Driver();
  const good = d.login;
  if (w.login !== 'ok') {
    const refusal = w.login;
    d.login = (u, p) => (good(u, p).type === 'ok' ? refusal : good(u, p));
  }
  d.missing = new Set(w.missing);
  d.unreadable = new Set(w.unreadable);
  d.quitResult = w.quit;
  return d;
}

/** The status lines of this server's multi-line responses (CAPA, AUTH, LIST, UIDL, RETR, TOP):
 *  the client knows them by its command, the checker by their words. */
const MULTI_LINE = /^\+OK (capability list follows|SASL mechanisms follow|unique-id listing follows|top of message follows|\d+ octets|\d+ messages? \(\d+ octets\))\r\n$/;

/** Checks that `text` is a sequence of well-formed responses. */
function assertResponses(text: string): void {
  const lines = text.split(/(?<=\r\n)/).filter((l) => l !== '');
  let k = 0;
  while (k < lines.length) {
    const status = lines[k++]!;
    assert.ok(status.endsWith('\r\n') && !/[\r\n]/.test(status.slice(0, -2)), `a response line not ended by CRLF alone: ${JSON.stringify(status)}`);
    assert.match(status, /^(\+OK( |\r\n)|-ERR( |\r\n)|\+ )/, `not a status line: ${JSON.stringify(status)}`);
    if (!MULTI_LINE.test(status)) continue;
    // A multi-line response: its lines until the lone ".", each byte-stuffed (RFC 1939 §3).
    while (k < lines.length && lines[k] !== '.\r\n') {
      const l = lines[k++]!;
      assert.ok(l.endsWith('\r\n'), `an unterminated line in a multi-line response: ${JSON.stringify(l)}`);
      assert.ok(!l.startsWith('.') || l.startsWith('..'), `an unstuffed line in a multi-line response: ${JSON.stringify(l)}`);
    }
    assert.ok(k < lines.length, `a multi-line response without its end: ${JSON.stringify(text)}`);
    k++;
  }
}

for (const [state, prefix] of Object.entries(STATES)) {
  test(`random input in state ${state}: no exception, only well-formed responses`, async () => {
    await fc.assert(fc.asyncProperty(world, input, fc.integer({ min: 1, max: 9 }), async (w, lines, chunk) => {
      const d = driver(w);
      let out = (await d.greet()) + (await d.send(prefix));
      const bytes = Buffer.from(lines.join(''), 'utf8');
      // Fed in pieces of varying size, as a network would.
      for (let i = 0; i < bytes.length; i += chunk) out += await d.send(bytes.subarray(i, i + chunk));
      assertResponses(out);
      assert.deepEqual(d.afterClose, [], 'output after the close');
    }), { numRuns: 150 });
  });
}

test('mutated valid dialogues never break the session', async () => {
  const dialogue = `CAPA\r\n${LOGIN}STAT\r\nLIST\r\nUIDL 2\r\nRETR 2\r\nTOP 3 1\r\nDELE 1\r\nRSET\r\nDELE 2\r\nNOOP\r\nQUIT\r\n`;
  await fc.assert(fc.asyncProperty(world, fc.array(fc.tuple(fc.nat(dialogue.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), async (w, mutations) => {
    const bytes = Buffer.from(dialogue);
    for (const [at, value] of mutations) bytes[at] = value;
    const d = driver(w);
    const out = (await d.greet()) + (await d.send(bytes));
    assertResponses(out);
    assert.deepEqual(d.afterClose, [], 'output after the close');
    // Whatever was deleted at QUIT is what the maildrop held.
    for (const e of d.effects) {
      if (e.type === 'quit') for (const uid of e.uids) assert.ok([10, 15, 20].includes(uid), `QUIT deletes ${uid}`);
    }
  }), { numRuns: 500 });
});

test('the checker refuses what is not well-formed', () => {
  for (const bad of ['OK\r\n', '+OK a\n', '+OK\r\nline\r\n', '+OK 12 octets\r\n.hidden\r\n.\r\n', '+OK a\r\n-ERR b',
    '+OK 3 messages (90 octets)\r\n+OK\r\n', '+OK capability list follows\r\nTOP\r\n']) {
    assert.throws(() => assertResponses(bad), `${JSON.stringify(bad)} passed`);
  }
  assertResponses(`+OK\r\n+ \r\n-ERR x\r\n+OK 3 messages (90 octets)\r\n1 ${MESSAGES[0]!.length}\r\n.\r\n+OK 8 octets\r\n..dot\r\n.\r\n+OK 1 message (0 octets)\r\n.\r\n`);
});
