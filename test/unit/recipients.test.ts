/** Where an address leads: aliases expanded to users, eight deep at most, whatever the order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Recipients } from '../../src/delivery/recipients.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../helpers/temp-dir.ts';

/** A store with carol, and `c` -> carol; `first` is `a`'s targets, in its order. */
async function world(first: string[]): Promise<{ store: SqliteStore; recipients: Recipients }> {
  const store = new SqliteStore(tempDir('mailnest-recipients-'));
  await store.createUser('carol@example.test', 'h');
  await store.addAlias('c@example.test', ['carol@example.test']);
  // b1 -> b2 -> ... -> b7 -> c: c is the eighth alias on that way, past what is followed.
  for (let i = 1; i <= 7; i++) await store.addAlias(`b${i}@example.test`, [i === 7 ? 'c@example.test' : `b${i + 1}@example.test`]);
  await store.addAlias('a@example.test', first);
  return { store, recipients: new Recipients(store, ['example.test'], 'mx.example.test') };
}

test('an alias reached first at the end of a chain too deep is still followed by a shorter way', async () => {
  for (const order of [['b1@example.test', 'c@example.test'], ['c@example.test', 'b1@example.test']]) {
    const { store, recipients } = await world(order);
    try {
      const r = await recipients.resolve('a@example.test');
      assert.equal(r.kind, 'local', order.join(', '));
      assert.deepEqual(r.kind === 'local' && r.users.map((u) => u.address), ['carol@example.test'], order.join(', '));
    } finally {
      store.close();
    }
  }
  // Nor does the reason it reaches nobody: an alias to come at the end of the short way is
  // dangling, not cut off, whichever way is met first.
  for (const order of [['b1@example.test', 'c@example.test'], ['c@example.test', 'b1@example.test']]) {
    const { store, recipients } = await world(order);
    try {
      await store.removeAlias('c@example.test');
      await store.addAlias('c@example.test', ['future@example.test']);
      assert.deepEqual(await recipients.resolve('a@example.test'), { kind: 'unknown', why: 'dangling' }, order.join(', '));
    } finally {
      store.close();
    }
  }
  // By the long way alone, it is cut off.
  const { store, recipients } = await world(['b1@example.test']);
  try {
    assert.deepEqual(await recipients.resolve('a@example.test'), { kind: 'unknown', why: 'deep' });
  } finally {
    store.close();
  }
});

test('targets are refused that would loop, or take the alias, or one that leads to it, past eight aliases', async () => {
  // a -> b1 -> ... -> b7 -> c -> carol: too deep from a already, which stops nothing.
  const { store, recipients } = await world(['b1@example.test']);
  try {
    assert.equal(await recipients.refusalOfTargets('b7@example.test', ['carol@example.test']), undefined);
    await store.addAlias('q@example.test', ['p@example.test']);
    assert.deepEqual(await recipients.refusalOfTargets('p@example.test', ['q@example.test']), { why: 'loop' });
    // w -> b2 reaches carol on the eighth link; so does u through w, one further: too far.
    assert.deepEqual(await recipients.refusalOfTargets('w@example.test', ['b1@example.test']), { why: 'deep' });
    await store.addAlias('u@example.test', ['w@example.test']);
    assert.deepEqual(await recipients.refusalOfTargets('w@example.test', ['b3@example.test']), undefined);
    assert.deepEqual(await recipients.refusalOfTargets('w@example.test', ['b2@example.test']), { why: 'deep', by: 'u@example.test' });
  } finally {
    store.close();
  }
});

test('MAILER-DAEMON, and the host name\'s postmaster and MAILER-DAEMON, are the postmaster: its alias when it has one, else the first user', async () => {
  const store = new SqliteStore(tempDir('mailnest-recipients-'));
  try {
    const alice = await store.createUser('alice@example.test', 'h');
    const bob = await store.createUser('bob@example.test', 'h');
    const recipients = new Recipients(store, ['example.test', 'other.test'], 'mx.example.test');
    const usersOf = async (address: string) => {
      const r = await recipients.resolve(address);
      return r.kind === 'local' ? r.users.map((u) => u.address) : r.kind;
    };
    const postmasters = ['postmaster@example.test', 'MAILER-DAEMON@example.test', 'postmaster@mx.example.test', 'Mailer-Daemon@MX.example.test'];
    for (const a of postmasters) assert.deepEqual(await usersOf(a), ['alice@example.test'], a);
    await store.addAlias('postmaster@example.test', ['bob@example.test']);
    for (const a of postmasters) assert.deepEqual(await usersOf(a), ['bob@example.test'], a);
    // Only the postmaster may write as them.
    assert.equal(await recipients.mayUseSender(bob, 'MAILER-DAEMON@example.test'), true);
    assert.equal(await recipients.mayUseSender(alice, 'MAILER-DAEMON@example.test'), false);
    assert.equal(await recipients.mayUseSender(alice, 'postmaster@mx.example.test'), false);
    // The machine's names, the host name and localhost, are the first domain's: its users,
    // sub-addresses and aliases; a name it does not have is unknown there too.
    assert.deepEqual(await usersOf('postmaster+x@mx.example.test'), ['bob@example.test']);
    assert.deepEqual(await usersOf('Alice@localhost'), ['alice@example.test']);
    assert.deepEqual(await usersOf('alice+tag@MX.example.test'), ['alice@example.test']);
    for (const a of ['root@mx.example.test', 'root@localhost']) assert.equal(await usersOf(a), 'unknown', a);
    await store.addAlias('root@example.test', ['alice@example.test']);
    assert.deepEqual(await usersOf('root@localhost'), ['alice@example.test']);
    // No one sends as an address at them but the postmaster's names: nobody elsewhere could answer.
    assert.equal(await recipients.mayUseSender(alice, 'root@mx.example.test'), false);
    assert.equal(await recipients.mayUseSender(alice, 'alice@localhost'), false);
    assert.equal(await recipients.mayUseSender(bob, 'MAILER-DAEMON@mx.example.test'), true);
    // The step from a machine's name is no alias: a chain as deep as aliases go is followed from it.
    for (let i = 1; i <= 8; i++) await store.addAlias(`c${i}@example.test`, [i === 8 ? 'alice@example.test' : `c${i + 1}@example.test`]);
    assert.deepEqual(await usersOf('c1@example.test'), ['alice@example.test']);
    assert.deepEqual(await usersOf('c1@localhost'), ['alice@example.test']);
    // A machine name that is one of the domains is that domain.
    const own = new Recipients(store, ['mx.example.test', 'example.test'], 'mx.example.test');
    assert.equal((await own.resolve('alice@mx.example.test')).kind, 'unknown');
  } finally {
    store.close();
  }
});

test('a catch-all: what nobody has at its domain, at the machine\'s names too; targets that would come back to it are a loop; with no user at all it is the postmaster', async () => {
  const store = new SqliteStore(tempDir('mailnest-recipients-'));
  try {
    const recipients = new Recipients(store, ['example.test', 'other.test'], 'mx.example.test');
    const resolve = async (address: string) => {
      const r = await recipients.resolve(address);
      return r.kind === 'local' ? [...r.users.map((u) => u.address), ...r.forward] : r;
    };
    // No user yet: the postmaster is whom the catch-all names, and MAILER-DAEMON with it.
    await store.addAlias('@example.test', ['me@remote.test']);
    for (const a of ['postmaster@example.test', 'MAILER-DAEMON@example.test', 'nobody@example.test']) assert.deepEqual(await resolve(a), ['me@remote.test'], a);
    assert.deepEqual(await resolve('postmaster@other.test'), { kind: 'unknown' });
    const carol = await store.createUser('carol@example.test', 'h');
    assert.deepEqual(await resolve('postmaster@example.test'), ['carol@example.test']);
    // Through the machine's names as through the domain; not at another domain.
    assert.deepEqual(await resolve('root@localhost'), ['me@remote.test']);
    assert.deepEqual(await resolve('root@other.test'), { kind: 'unknown' });
    // Targets at its own domain that nobody has would come back to it (beside another target
    // they are a list that names itself, as with any alias).
    assert.equal(await recipients.refusalOfTargets('@example.test', ['later@example.test']), undefined);
    await store.removeAlias('@example.test');
    assert.deepEqual(await recipients.refusalOfTargets('@example.test', ['later@example.test']), { why: 'loop' });
    assert.equal(await recipients.refusalOfTargets('@example.test', ['carol@example.test']), undefined);
    await store.addAlias('@example.test', ['carol@example.test']);
    assert.deepEqual(await resolve('root@localhost'), ['carol@example.test']);
    // An alias that names a user to come reaches the catch-all's user meanwhile.
    await store.addAlias('list@example.test', ['later@example.test']);
    assert.deepEqual(await resolve('list@example.test'), ['carol@example.test']);
    assert.equal(await recipients.mayUseSender(carol, 'later@example.test'), true);
    // The steps from a sub-address and to the catch-all are no aliases: a chain as deep as
    // aliases go is followed from a name it catches, and from a tag on it, as from its own name.
    for (let i = 1; i <= 7; i++) await store.addAlias(`a${i}@example.test`, [i === 7 ? 'carol@example.test' : `a${i + 1}@example.test`]);
    await store.removeAlias('@example.test');
    // (list -> later, caught, would be one alias further: too deep.)
    assert.deepEqual(await recipients.refusalOfTargets('@example.test', ['a1@example.test']), { why: 'deep', by: 'list@example.test' });
    await store.removeAlias('list@example.test');
    assert.equal(await recipients.refusalOfTargets('@example.test', ['a1@example.test']), undefined);
    await store.addAlias('@example.test', ['a1@example.test']);
    for (const a of ['ghost@example.test', 'ghost+x@example.test', 'ghost@localhost']) assert.deepEqual(await resolve(a), ['carol@example.test'], a);
    await store.addAlias('a0@example.test', ['a1@example.test']);
    assert.deepEqual(await resolve('a0+x@example.test'), ['carol@example.test']);
    // Who reaches someone only through the catch-all, for the notes of the commands.
    assert.equal(await recipients.caughtBy('ghost@example.test'), '@example.test');
    assert.equal(await recipients.caughtBy('Ghost+x@localhost'), '@example.test');
    for (const a of ['carol@example.test', 'carol+x@example.test', 'a0@example.test', 'postmaster@example.test', 'x@remote.test', 'x@other.test']) assert.equal(await recipients.caughtBy(a), undefined, a);
    // Its user gone, everything it caught reaches nobody, saying why.
    await store.removeAlias('@example.test');
    await store.addAlias('@example.test', ['carol@example.test']);
    await store.removeUser('carol@example.test');
    assert.deepEqual(await resolve('nobody@example.test'), { kind: 'unknown', why: 'loop' });
  } finally {
    store.close();
  }
});
