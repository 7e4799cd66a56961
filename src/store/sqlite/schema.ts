import type { DatabaseSync } from 'node:sqlite';

/** A step of the schema: SQL, or a function for a step that depends on what the database holds. */
type Migration = string | ((db: DatabaseSync) => void);

/** The names of a table's columns. */
export function columnsOf(db: DatabaseSync, table: string): Set<string> {
  return new Set((db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
}

/** The SQLite schema. Each entry runs once, in order, tracked by user_version. */
export const MIGRATIONS: Migration[] = [
  `
  CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    address_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL
  );
  CREATE TABLE aliases (
    alias_key TEXT NOT NULL,
    alias TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (alias_key, target)
  );
  -- One row per accepted message body, shared by every copy of it.
  CREATE TABLE bodies (
    id INTEGER PRIMARY KEY,
    queue_id TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL
  );
  CREATE TABLE body_chunks (
    body_id INTEGER NOT NULL REFERENCES bodies(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (body_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uid_validity INTEGER NOT NULL,
    uid_next INTEGER NOT NULL DEFAULT 1,
    UNIQUE (user_id, name)
  );
  CREATE TABLE messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    body_id INTEGER NOT NULL REFERENCES bodies(id),
    prefix BLOB NOT NULL,
    size INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
  );
  CREATE INDEX messages_body ON messages(body_id);
  CREATE TABLE outbound (
    id INTEGER PRIMARY KEY,
    queue_id TEXT NOT NULL UNIQUE,
    body_id INTEGER NOT NULL REFERENCES bodies(id),
    prefix BLOB NOT NULL,
    sender TEXT NOT NULL,
    created INTEGER NOT NULL,
    dsn_ret TEXT,
    dsn_envid TEXT
  );
  CREATE INDEX outbound_body ON outbound(body_id);
  CREATE TABLE outbound_rcpts (
    id INTEGER PRIMARY KEY,
    outbound_id INTEGER NOT NULL REFERENCES outbound(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    notify TEXT,
    orcpt TEXT,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_reply TEXT,
    warned INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX outbound_rcpts_due ON outbound_rcpts(status, next_attempt);
  CREATE INDEX outbound_rcpts_entry ON outbound_rcpts(outbound_id);
  CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    last_used INTEGER
  );
  `,
  // Body chunks move to a rowid table: a large row reads about twice as fast from a rowid
  // table's leaf as from a WITHOUT ROWID index b-tree.
  `
  CREATE TABLE body_parts (
    id INTEGER PRIMARY KEY,
    body_id INTEGER NOT NULL REFERENCES bodies(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL
  );
  INSERT INTO body_parts (body_id, seq, data) SELECT body_id, seq, data FROM body_chunks ORDER BY body_id, seq;
  DROP TABLE body_chunks;
  CREATE UNIQUE INDEX body_parts_seq ON body_parts(body_id, seq);
  `,
  // Large bodies are kept as files in data_dir/bodies/ (see body-files.ts); those stored before
  // stay in body_parts.
  `
  ALTER TABLE bodies ADD COLUMN external INTEGER NOT NULL DEFAULT 0;
  `,
  // Medium-sized bodies are appended to the body log (see body-log.ts): external = 2, where, and
  // the body's CRC-32. log_crc is kept for a body file's CRC-32 too (NULL for one an earlier
  // version wrote, read back unchecked); renaming it would break a server of the version before,
  // still running, at the first command of the new one.
  `
  ALTER TABLE bodies ADD COLUMN log_segment INTEGER;
  ALTER TABLE bodies ADD COLUMN log_offset INTEGER;
  ALTER TABLE bodies ADD COLUMN log_crc INTEGER;
  CREATE INDEX bodies_log_segment ON bodies(log_segment) WHERE log_segment IS NOT NULL;
  `,
  // Counters that never go back (see SqliteStore.createUser): a user removed and added again
  // gets ids no earlier user or mailbox had, so nothing that still holds an old id (a POP3
  // session) reaches the new mailbox, and its first uid is above every uid of a removed
  // mailbox (POP3 UIDL, RFC 1939 §7: a client that keeps mail must not take new messages for
  // ones it has seen). The floor starts above every mailbox's uids.
  `
  CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
  INSERT INTO counters (name, value) VALUES
    ('next_user_id', (SELECT COALESCE(MAX(id), 0) + 1 FROM users)),
    ('next_mailbox_id', (SELECT COALESCE(MAX(id), 0) + 1 FROM mailboxes)),
    ('uid_floor', (SELECT COALESCE(MAX(uid_next), 1) FROM mailboxes));
  `,
  // Whether an outbound message may be signed with DKIM (QueueEntry.sign). Entries queued
  // before this column existed are told apart by the protocol their Received field names (RFC
  // 3848, RFC 6531): mail from an unauthenticated SMTP client is not signed; the rest (ESMTPSA,
  // local, HTTP: written here) keeps being signed when its From or sender is local.
  `
  ALTER TABLE outbound ADD COLUMN sign INTEGER NOT NULL DEFAULT 1;
  UPDATE outbound SET sign = 0 WHERE CAST(prefix AS TEXT) LIKE '% with SMTP id %' OR CAST(prefix AS TEXT) LIKE '% with ESMTP id %'
    OR CAST(prefix AS TEXT) LIKE '% with ESMTPS id %' OR CAST(prefix AS TEXT) LIKE '% with UTF8SMTP id %' OR CAST(prefix AS TEXT) LIKE '% with UTF8SMTPS id %';
  `,
  // bodies.log_crc, whatever way the database came: the first form of migration 4 had no such
  // column, and builds of a later stretch renamed it crc (as their version 7, taken as 6 by
  // schemaVersion). Bodies stored without one are read unchecked.
  (db) => {
    const columns = columnsOf(db, 'bodies');
    if (columns.has('log_crc')) return;
    db.exec(columns.has('crc') ? 'ALTER TABLE bodies RENAME COLUMN crc TO log_crc' : 'ALTER TABLE bodies ADD COLUMN log_crc INTEGER');
  },
  // The delivery status report a recipient's outcome calls for, kept with the outcome until it is
  // sent: the reports of every recipient of a message settled in one round go to the sender as
  // one (see QueueRunner.sendReports), and a crash between the two sends it at the next start.
  // Made so that it may run again on a database that has it (one whose version was set back).
  (db) => {
    if (!columnsOf(db, 'outbound_rcpts').has('report')) db.exec('ALTER TABLE outbound_rcpts ADD COLUMN report TEXT');
    db.exec('CREATE INDEX IF NOT EXISTS outbound_rcpts_report ON outbound_rcpts(outbound_id) WHERE report IS NOT NULL');
  },
  // Outbound recipients' ids never go back either (see SqliteStore.accept): the queue runner
  // knows a recipient in flight by its id, and a recipient queued after one removed from the
  // queue mid-transfer (`mailnest queue remove`) must not wait behind that transfer for it.
  `
  INSERT OR IGNORE INTO counters (name, value) VALUES ('next_outbound_rcpt_id', (SELECT COALESCE(MAX(id), 0) + 1 FROM outbound_rcpts));
  `,
  // Counts every user and alias added or removed (see SqliteStore.directoryVersion): an operator
  // command checks an alias against the others (loops, depth) and adds it only if none changed
  // meanwhile, whichever process changed them.
  `
  INSERT OR IGNORE INTO counters (name, value) VALUES ('directory_version', 0);
  `,
  // Recipients at other domains of the mail each user sent over submission, by the minute (see
  // SqliteStore.sentInLastDay): limits.max_outgoing_per_day. A user's rows go with it.
  `
  CREATE TABLE IF NOT EXISTS sent_counts (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    minute INTEGER NOT NULL,
    recipients INTEGER NOT NULL,
    PRIMARY KEY (user_id, minute)
  ) WITHOUT ROWID;
  `,
  // The MTA-STS policies of the domains mail went to (see delivery/mta-sts.ts), each kept for its
  // max_age: mx is the policy's patterns, one a line.
  `
  CREATE TABLE IF NOT EXISTS mta_sts_policies (
    domain TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    mode TEXT NOT NULL,
    mx TEXT NOT NULL,
    max_age INTEGER NOT NULL,
    fetched INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
];

/** The schema version of `db`: how many of MIGRATIONS it has been through. Builds of one stretch
 *  of history gave out version 7 for renaming bodies.log_crc to crc, a step later taken back:
 *  such a database is at version 6, and migration 7 names the column back. */
export function schemaVersion(db: DatabaseSync): number {
  const version = Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
  return version === 7 && columnsOf(db, 'bodies').has('crc') ? 6 : version;
}
