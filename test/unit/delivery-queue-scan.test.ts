/** A queue whose store fails at every scan is said to fail once a minute, not at every poll; the
 *  reports a scan finds owed are sent, kept owed, or let go, as the store lets them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';
import type { Context } from '../../src/context.ts';
import { reportText } from '../../src/delivery/dsn.ts';
import { QueueRunner } from '../../src/delivery/queue-runner.ts';
import type { Resolution } from '../../src/delivery/recipients.ts';
import type { Logger } from '../../src/log.ts';
import { Metrics } from '../../src/metrics.ts';
import { StorageFull, type Acceptance, type QueueEntry, type ReportOn, type Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('scans that keep failing are logged once a minute, and their end once', async () => {
  const lines: [string, string][] = [];
  const at = (level: string) => (_fields: object, msg: string) => { lines.push([level, msg]); };
  const log = { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') } as unknown as Logger;
  let broken = true;
  const store = {
    dueRecipients: async () => {
      if (broken) throw new Error('database disk image is malformed');
      return [];
    },
    queueDepth: async () => 0,
    entriesWithReports: async () => [],
  } as unknown as Store;
  const config = parseConfig({ data_dir: tempDir('mailnest-scan-'), dkim: { enabled: false } });
  let now = 1_000_000;
  const runner = new QueueRunner({ config, store, log, metrics: new Metrics(), recipients: undefined as never } as Context, { now: () => now });
  const scan = async () => {
    runner.poll();
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  for (let i = 0; i < 10; i++) {
    await scan();
    now += 500;
  }
  assert.deepEqual(lines, [['error', 'queue scan failed']], 'ten failures within five seconds: one line');
  now += 60_000;
  await scan();
  assert.equal(lines.filter(([, m]) => m === 'queue scan failed').length, 2, 'and one more a minute on');
  broken = false;
  await scan();
  await scan();
  assert.deepEqual(lines.at(-1), ['info', 'queue scans work again']);
  assert.equal(lines.filter(([, m]) => m === 'queue scans work again').length, 1);
});

test('a report a scan finds owed: kept owed while the disk is full, then queued saying which reports it carries; one for no mailbox is let go; one sent already is no removal', async () => {
  const quiet = () => {};
  const said: string[] = [];
  const log = { error: quiet, warn: quiet, info: (_: unknown, msg: string) => said.push(msg), debug: quiet } as unknown as Logger;
  const report = reportText({ address: 'x@remote.test', action: 'failed', reply: '550 5.1.1 no such user' });
  const entry: QueueEntry = {
    id: 'Q1', sender: 'a@example.test', created: 0, dsn: {}, size: 20, sign: true,
    recipients: [{ id: 7, address: 'x@remote.test', status: 'failed', attempts: 1, nextAttempt: 0, lastReply: '550 5.1.1 no such user', warned: false, report }],
  };
  let owed = true;
  let full = true;
  /** The scan's list was read before an earlier call sent the report and the entry went. */
  let stale = false;
  const accepted: Acceptance[] = [];
  const marked: ReportOn[] = [];
  const store = {
    dueRecipients: async () => [],
    queueDepth: async () => 0,
    entriesWithReports: async () => (owed || stale ? ['Q1'] : []),
    getQueueEntry: async () => (owed ? entry : undefined),
    readQueued: async function* () { yield Buffer.from('Subject: s\r\n\r\nx\r\n'); },
    accept: async (a: Acceptance) => {
      if (full) throw new StorageFull('database or disk is full');
      accepted.push(a);
      owed = false;
    },
    reportsSent: async (on: ReportOn) => {
      marked.push(on);
      owed = false;
    },
  } as unknown as Store;
  let sender: Resolution = { kind: 'local', users: [{ id: 1, address: 'a@example.test' }], forward: [] } as unknown as Resolution;
  const recipients = { resolve: async () => sender };
  const config = parseConfig({ data_dir: tempDir('mailnest-scan-'), domains: ['example.test'], dkim: { enabled: false } });
  const runner = new QueueRunner({ config, store, log, metrics: new Metrics(), recipients } as unknown as Context);
  const scan = async () => {
    runner.poll();
    for (let i = 0; i < 200; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  await scan();
  assert.deepEqual([accepted, marked, owed], [[], [], true], 'a full disk leaves it owed');
  full = false;
  await scan();
  assert.equal(accepted.length, 1);
  assert.deepEqual(accepted[0]!.reportOn, { queueId: 'Q1', recipientIds: [7] }, 'the report says which reports it carries');
  assert.match(accepted[0]!.body.map(String).join(''), /^Final-Recipient: rfc822; x@remote\.test\r$/m);
  assert.deepEqual(marked, [], 'and is not marked sent apart from it');
  // A sender no mailbox answers to, and no postmaster either: the report goes nowhere, and is
  // owed no more.
  owed = true;
  sender = { kind: 'unknown' } as Resolution;
  await scan();
  assert.equal(accepted.length, 1);
  assert.deepEqual(marked, [{ queueId: 'Q1', recipientIds: [7] }]);
  stale = true;
  await scan();
  assert.deepEqual(said.filter((m) => /removed from the queue/.test(m)), [], 'a report sent already is no removal');
});
