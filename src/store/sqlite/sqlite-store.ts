/**
 * The embedded store: one SQLite file in data_dir, in WAL mode. Every method that changes
 * something resolves only once the change is on disk (see wal-sync.ts: commits on the event
 * loop, fdatasync in the thread pool, shared by every commit made meanwhile). `accept` also
 * batches: every message handed in during one turn of the event loop shares one transaction.
 * Medium-sized bodies are appended to the body log, large ones are files of their own (see
 * placement below).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import {
  addressKey, BodyMissing, domainKey, isStorageFull, messageBytes, StoreConflict,
  type Acceptance, type AliasRecord, type DueRecipient, type MailboxEntry, type OpenedMessage, type QueueEntry, type QueueRecipient,
  type RecipientUpdate, type ReportOn, type Store, type StsPolicy, type TokenRecord, type UserRecord, type UserUsage, type QueueStatus,
} from '../store.ts';
import { BodyFiles } from './body-files.ts';
import { BodyLog, type LogPlace } from './body-log.ts';
import { Reserve } from '../reserve.ts';
import { totalLength } from '../../chunks.ts';
import { PiecePool } from './piece-pool.ts';
import { PIECE } from './read-pieces.ts';
import { MIGRATIONS, schemaVersion } from './schema.ts';
import { WalSync } from './wal-sync.ts';
import { keepPrivate, prepareDataDir } from '../data-dir.ts';
import { freeBytes, roomFor } from '../free-space.ts';
import { openingError, storeError } from './sqlite-errors.ts';

/** Bodies in the database were once split into rows (body_parts) of this size; those stored
 *  since are at most LOG_OVER bytes, one row each. */
const CHUNK = 64 * 1024;

/**
 * The page size of a new database. Every page a commit changes goes to the write-ahead log whole,
 * and is flushed before the `250`: a message changes about eight pages (the body, the message,
 * their indexes, the mailbox's next UID), so the page size sets the bytes each message puts on
 * the disk: 32 KiB with 4 KiB pages, 128 KiB with 16 KiB. A database made with other pages keeps
 * them (SQLite changes them only by rewriting the whole file).
 */
const PAGE_BYTES = 4096;

/** The write-ahead log is copied into the database (a checkpoint) once it holds this much,
 *  whatever the page size (see reserve.ts). */
const CHECKPOINT_BYTES = 16 * 1024 * 1024;

/** Where a body is kept: `bodies.external`. */
const IN_PARTS = 0;
const IN_FILE = 1;
const IN_LOG = 2;

/**
 * Bodies longer than this are appended to the body log (see body-log.ts). The database costs
 * per byte (each page copied into the WAL with a frame of its own, and into the database file at
 * the checkpoint); the log costs a second flush, beside the commit's, which a short body does not
 * repay.
 */
const LOG_OVER = 32 * 1024;

/**
 * Bodies longer than this are files of their own (see body-files.ts). A file has a fixed cost
 * (its creation, the flushes of it and of its directory: journal commits on ext4), but it goes
 * at once with its last message, where the log's dead space waits for the sweep to move what
 * lives around it.
 */
const FILE_OVER = 256 * 1024;

/** Where a body kept outside the database lies, with its CRC-32: a place in the log, or only the
 *  checksum for a file of its own (named by the queue id). */
type Outside = LogPlace | { crc: number };

function placement(bodySize: number): number {
  return bodySize > FILE_OVER ? IN_FILE : bodySize > LOG_OVER ? IN_LOG : IN_PARTS;
}

/** A segment of the body log is compacted once less than this share of it is alive. */
const COMPACT_UNDER = 0.5;

/** How old a body file without a row must be before `sweep` removes it. */
const ORPHAN_AGE_MS = 60 * 60 * 1000;
/** Messages deleted in one transaction, about 20 ms of the event loop (see deleteMessages). */
const DELETE_BATCH = 1000;
/** Between two batches of removeUser: longer than the sleeps of SQLite's busy handler in its
 *  first 0.2 s of waiting (at most 50 ms), so that a writer that began to wait during a batch
 *  tries again, and gets in, in the pause after it. */
const BATCH_PAUSE_MS = 60;

/** sent_counts keeps a user's count by the minute, a day of them (limits.max_outgoing_per_day). */
const MINUTE_MS = 60_000;
const SENT_MINUTES_KEPT = 24 * 60;

type Row = Record<string, unknown>;

/** What openBody reads, in this column order (BODY_COLUMNS): body_id, the copy's prefix, the
 *  body's size, queue_id, external, where in the log and its checksum, and part 0's data (null
 *  unless IN_PARTS). */
type BodyRow = [bodyId: number, prefix: Uint8Array, size: number, queueId: string, external: number,
  logSegment: number | null, logOffset: number | null, crc: number | null, data: Uint8Array | null];
const BODY_COLUMNS = 'b.size, b.queue_id, b.external, b.log_segment, b.log_offset, b.log_crc, p.data';

/** See the constructor. */
interface StoreOptions {
  fdatasync?: (fd: number) => Promise<void>;
  segmentBytes?: number;
  onFailedFlush?: (err: Error) => void;
  onMigrate?: (from: number, to: number) => void;
  reserveBytes?: number;
  onReserveGiven?: () => void;
}

export class SqliteStore implements Store {
  readonly file: string;
  private db!: DatabaseSync;
  private wal!: WalSync;
  private files!: BodyFiles;
  private log!: BodyLog;
  private reserve!: Reserve;
  private onReserveGiven: (() => void) | undefined;
  /** Read buffers for the body files of messages opened for a mailbox client (openMessage). */
  private pieces = new PiecePool(PIECE, 8);
  /** Body files whose rows the open transaction deletes: removed once it is durable. */
  private doomed: string[] = [];
  private stmts = new Map<string, StatementSync>();
  private arrayStmts = new Map<string, StatementSync>();
  /** Messages waiting for the fsync under way to end (see accept). */
  private pending: { message: Acceptance; place: Outside | undefined; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private pendingUpdates: { id: string; updates: RecipientUpdate[]; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private updateFlushScheduled = false;
  /** A read transaction is open until the end of this event-loop turn (see read). */
  private reading = false;
  /** Queue ids of the messages that recovery removed when the store opened (see recover). */
  readonly recovered: string[] = [];

  /** `fdatasync`: the system call unless a test observes it (see wal-sync.ts); `segmentBytes`:
   *  the body log's segment size (see body-log.ts); `onFailedFlush`: called when a flush of the
   *  database or the body log fails, after which nothing written is acknowledged any more (see
   *  SharedFlush); without it, the writes waiting on that flush fail. `onMigrate`: called
   *  before the schema is brought from version `from` to `to`, and may refuse (throw).
   *  `reserveBytes`: the size of data_dir/reserve (see reserve.ts); `onReserveGiven`: called when
   *  a deletion on a full disk gave it up. */
  constructor(dataDir: string, opts: StoreOptions = {}) {
    prepareDataDir(dataDir);
    this.file = path.join(dataDir, 'mailnest.sqlite');
    // On a disk filled to the last byte SQLite cannot make its write-ahead log to open the
    // database (a crash left none, or a command removed it): the reserve kept for deletions is
    // given up, once, so that the server starts and mail can be deleted.
    for (let attempt = 1; ; attempt++) {
      try {
        this.open(dataDir, opts);
        break;
      } catch (err) {
        const e = openingError(this.file, err);
        try {
          // A database opened before the failure (undefined when none was).
          (this.db as DatabaseSync | undefined)?.close();
        } catch {
          // not open
        }
        if (attempt > 1 || !isStorageFull(e) || !new Reserve(dataDir).release()) throw e;
        opts.onReserveGiven?.();
      }
    }
  }

  /** Opens the database and the body files, and recovers from a crash. */
  private open(dataDir: string, opts: StoreOptions): void {
    this.db = openDatabase(this.file);
    // mmap for reads: message bodies are read straight from the mapped file instead of one
    // read() per page (about 8x faster when streaming mail out over POP3); writes are unchanged.
    // synchronous = NORMAL: durability comes from WalSync before anything is acknowledged.
    // temp_store = MEMORY: the journal of each message's savepoint in a batch (see flush) stays
    // in memory; past 64 KiB SQLite would otherwise spill it to a temporary file, made and
    // deleted in almost every batch.
    // journal_size_limit: the write-ahead log, reused from its start after each checkpoint, is
    // cut back to 64 MiB then; without it the file keeps the size of the largest stretch between
    // two checkpoints for good (hundreds of megabytes after a long POP3 session's deletions).
    this.db.exec(`PRAGMA page_size = ${PAGE_BYTES}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 67108864;`);
    checkpointEvery(this.db, CHECKPOINT_BYTES);
    this.wal = new WalSync(this.file, opts.fdatasync, opts.onFailedFlush);
    this.migrate(opts.onMigrate);
    keepPrivate([this.file, `${this.file}-wal`, `${this.file}-shm`]);
    this.wal.syncNow();
    this.files = new BodyFiles(dataDir);
    this.log = new BodyLog(dataDir, { segmentBytes: opts.segmentBytes, onFailure: opts.onFailedFlush });
    this.reserve = new Reserve(dataDir, opts.reserveBytes);
    this.onReserveGiven = opts.onReserveGiven;
    this.recover();
  }

  /**
   * After a crash of the machine: the bodies of each body-log segment whose writer never sealed
   * it are checked against their rows' checksums (see body-log.ts). A body that is not all there
   * belongs to a message that was never acknowledged (the body's flush had not ended), and the
   * message goes, from every mailbox and the queue.
   */
  private recover(): void {
    for (const segment of this.log.abandoned()) {
      const rows = this.q('SELECT id, queue_id, size, log_offset, log_crc FROM bodies WHERE log_segment = ?').all(segment) as Row[];
      const broken = rows.filter((r) => !this.log.intact({ segment, offset: Number(r.log_offset), crc: r.log_crc === null ? undefined : Number(r.log_crc) }, Number(r.size)));
      if (broken.length > 0) {
        this.transaction(() => {
          for (const r of broken) {
            this.q('DELETE FROM messages WHERE body_id = ?').run(Number(r.id));
            this.q('DELETE FROM outbound WHERE body_id = ?').run(Number(r.id));
            this.dropBodyIfUnused(Number(r.id));
          }
        });
        this.wal.syncNow();
        this.recovered.push(...broken.map((r) => String(r.queue_id)));
      }
      this.log.sealAbandoned(segment);
    }
  }

  private migrate(onMigrate?: (from: number, to: number) => void): void {
    const version = schemaVersion(this.db);
    if (version > MIGRATIONS.length) {
      throw new Error(`${this.file} was made by a newer mailnest (schema ${version}; this one knows ${MIGRATIONS.length}): run that version, or restore a copy of the file from before it`);
    }
    if (version < MIGRATIONS.length) onMigrate?.(version, MIGRATIONS.length);
    for (let v = version; v < MIGRATIONS.length; v++) {
      const step = MIGRATIONS[v]!;
      this.transaction(() => {
        // Another process that opened the store at the same time (two commands run at once on a
        // new data_dir) may have taken this step since: the version is read again under the
        // write lock, and a step taken is not taken twice.
        if (schemaVersion(this.db) > v) return;
        if (typeof step === 'string') this.db.exec(step);
        else step(this.db);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
      });
    }
  }

  private q(sql: string): StatementSync {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** The same for reads on the POP3 path: rows come as arrays in column order, which costs
   *  about 1 µs less per row than an object with named fields. */
  private qa(sql: string): StatementSync {
    let s = this.arrayStmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      s.setReturnArrays(true);
      this.arrayStmts.set(sql, s);
    }
    return s;
  }

  /** A transaction whose promise resolves once it is durable; `frees` as for transaction. */
  private async write<T>(fn: () => T, frees = false): Promise<T> {
    const result = this.transaction(fn, frees);
    await this.wal.sync();
    return result;
  }

  /** `frees`: the transaction deletes mail, and may have the reserve's room when the disk is
   *  full (see reserve.ts). */
  private transaction<T>(fn: () => T, frees = false): T {
    try {
      return this.transactionOnce(fn);
    } catch (err) {
      if (!frees || !isStorageFull(err) || !this.reserve.release()) throw err;
      this.onReserveGiven?.();
      return this.transactionOnce(fn);
    }
  }

  private transactionOnce<T>(fn: () => T): T {
    this.endRead();
    this.doomed = [];
    this.db.exec('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = fn();
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw storeError(err);
    }
    const doomed = this.doomed;
    // The files of dropped bodies go once the drop is durable: after the flush that follows this
    // commit. If that flush fails, or a removal does, the files stay for sweep() to find.
    if (doomed.length > 0) void this.wal.sync().then(() => this.files.remove(doomed)).catch(() => {});
    return result;
  }

  /**
   * Runs a lookup inside one read transaction shared by every read(...) of this event-loop turn.
   * Outside a transaction SQLite takes and drops the WAL read lock around each statement, a few
   * system calls that cost more than the lookup itself. Message bodies are read this way: POP3
   * reads the messages of pipelined RETRs back to back. The snapshot ends before any write and
   * when the turn ends, so nothing stale outlives it.
   */
  private read<T>(fn: () => T): T {
    if (!this.db.isTransaction) {
      this.db.exec('BEGIN');
      this.reading = true;
      setImmediate(this.endRead);
    }
    return fn();
  }

  private endRead = (): void => {
    if (!this.reading) return;
    this.reading = false;
    if (this.db.isOpen && this.db.isTransaction) this.db.exec('COMMIT');
  };

  // ---------------------------------------------------------------- users

  async createUser(address: string, passwordHash: string): Promise<UserRecord> {
    return this.write(() => {
      this.claimAddress(address, 'user');
      const now = Date.now();
      const id = this.nextValue('next_user_id');
      this.q('INSERT INTO users (id, address, address_key, password_hash, created) VALUES (?, ?, ?, ?, ?)')
        .run(id, address, addressKey(address), passwordHash, now);
      this.q(`INSERT INTO mailboxes (id, user_id, name, uid_validity, uid_next)
              VALUES (?, ?, 'INBOX', ?, (SELECT value FROM counters WHERE name = 'uid_floor'))`)
        .run(this.nextValue('next_mailbox_id'), id, Math.floor(now / 1000));
      return { id, address, passwordHash };
    });
  }

  /** Inside the transaction that adds `address` as a user or an alias: refuses it when it is a
   *  user already, or an alias when a user is to be made, or when users and aliases have changed
   *  since `seen`; counts the change (see directoryVersion). */
  private claimAddress(address: string, as: 'user' | 'alias', seen?: number): void {
    const key = addressKey(address);
    if (this.q('SELECT 1 FROM users WHERE address_key = ?').get(key)) throw new StoreConflict('user', `${address} is a user`);
    if (as === 'user' && this.q('SELECT 1 FROM aliases WHERE alias_key = ?').get(key)) throw new StoreConflict('alias', `${address} is an alias`);
    if (seen !== undefined && this.directoryVersionNow() !== seen) throw new StoreConflict('changed', 'users or aliases changed meanwhile');
    this.directoryChanged();
  }

  private directoryVersionNow(): number {
    return Number((this.q("SELECT value FROM counters WHERE name = 'directory_version'").get() as Row).value);
  }

  private directoryChanged(): void {
    this.q("UPDATE counters SET value = value + 1 WHERE name = 'directory_version'").run();
  }

  async directoryVersion(): Promise<number> {
    return this.directoryVersionNow();
  }

  /** Takes the next value of one of the counters that never go back (see schema.ts). */
  private nextValue(counter: 'next_user_id' | 'next_mailbox_id'): number {
    return Number((this.q('UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value - 1 AS taken').get(counter) as Row).taken);
  }

  /** Takes `n` ids in a row for `table` from a counter that never goes back, above every id the
   *  table has (rows an earlier build inserted with ids of SQLite's choosing included). */
  private takeValues(counter: 'next_outbound_rcpt_id', table: 'outbound_rcpts', n: number): number {
    return Number((this.q(`UPDATE counters SET value = MAX(value, (SELECT COALESCE(MAX(id), 0) + 1 FROM ${table})) + ?
                           WHERE name = ? RETURNING value - ? AS first`).get(n, counter, n) as Row).first);
  }

  async findUser(address: string): Promise<UserRecord | undefined> {
    return userRecord(this.q('SELECT id, address, password_hash FROM users WHERE address_key = ?').get(addressKey(address)) as Row | undefined);
  }

  async firstUser(domain: string): Promise<UserRecord | undefined> {
    // address_key is lower case; a domain has no LIKE wildcards but "_", which substr avoids.
    const suffix = `@${domainKey(domain)}`;
    return userRecord(this.q('SELECT id, address, password_hash FROM users WHERE substr(address_key, -?) = ? ORDER BY id LIMIT 1')
      .get(suffix.length, suffix) as Row | undefined);
  }

  async setPassword(address: string, passwordHash: string): Promise<boolean> {
    return this.write(() => this.q('UPDATE users SET password_hash = ? WHERE address_key = ?').run(passwordHash, addressKey(address)).changes > 0);
  }

  /**
   * The user's messages go DELETE_BATCH at a time, each batch a transaction of its own, with a
   * pause after it: the server, a process of its own, waits for the write lock in SQLite's busy
   * handler, on its event loop, and would otherwise wait for the whole mailbox (1.6 s for 150,000
   * messages, every session of every listener with it); in the pause it gets its turn. Then
   * the user, with what arrived meanwhile, in one more. Cut short, it leaves the user with the
   * rest of its mail.
   */
  async removeUser(address: string): Promise<boolean> {
    const key = addressKey(address);
    for (;;) {
      const deleted = this.transaction(() => {
        const user = this.q('SELECT id FROM users WHERE address_key = ?').get(key) as Row | undefined;
        if (!user) return 0;
        const rows = this.q(`DELETE FROM messages WHERE rowid IN (SELECT m.rowid FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                             WHERE b.user_id = ? LIMIT ?) RETURNING body_id`).all(user.id as number, DELETE_BATCH) as Row[];
        for (const b of new Set(rows.map((r) => Number(r.body_id)))) this.dropBodyIfUnused(b);
        return rows.length;
      }, true);
      if (deleted < DELETE_BATCH) break;
      await new Promise((resolve) => setTimeout(resolve, BATCH_PAUSE_MS));
    }
    return this.write(() => {
      const user = this.q('SELECT id FROM users WHERE address_key = ?').get(key) as Row | undefined;
      if (!user) return false;
      const bodies = this.q(`SELECT DISTINCT m.body_id AS id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                             WHERE b.user_id = ?`).all(user.id as number) as Row[];
      this.q('DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)').run(user.id as number);
      // A mailbox made later starts above the uids this one gave out (see schema.ts).
      this.q(`UPDATE counters SET value = MAX(value, (SELECT COALESCE(MAX(uid_next), 1) FROM mailboxes WHERE user_id = ?))
              WHERE name = 'uid_floor'`).run(user.id as number);
      this.q('DELETE FROM users WHERE id = ?').run(user.id as number);
      this.directoryChanged();
      for (const b of bodies) this.dropBodyIfUnused(Number(b.id));
      return true;
    }, true);
  }

  async listUsers(): Promise<UserUsage[]> {
    const rows = this.q(`SELECT u.address, COUNT(m.uid) AS messages, COALESCE(SUM(m.size), 0) AS bytes
                         FROM users u LEFT JOIN mailboxes b ON b.user_id = u.id LEFT JOIN messages m ON m.mailbox_id = b.id
                         GROUP BY u.id ORDER BY u.address_key`).all() as Row[];
    return rows.map((r) => ({ address: String(r.address), messages: Number(r.messages), bytes: Number(r.bytes) }));
  }

  // ---------------------------------------------------------------- aliases

  async addAlias(alias: string, targets: string[], seen?: number): Promise<void> {
    await this.write(() => {
      this.claimAddress(alias, 'alias', seen);
      // A target is named once, however its case is written (addresses match without it).
      const named = new Set((this.q('SELECT target FROM aliases WHERE alias_key = ?').all(addressKey(alias)) as Row[]).map((r) => addressKey(String(r.target))));
      for (const t of targets) {
        if (named.has(addressKey(t))) continue;
        named.add(addressKey(t));
        this.q('INSERT INTO aliases (alias_key, alias, target) VALUES (?, ?, ?)').run(addressKey(alias), alias, t);
      }
    });
  }

  async removeAlias(alias: string): Promise<boolean> {
    return this.write(() => {
      const removed = this.q('DELETE FROM aliases WHERE alias_key = ?').run(addressKey(alias)).changes > 0;
      if (removed) this.directoryChanged();
      return removed;
    });
  }

  async findAlias(alias: string): Promise<AliasRecord | undefined> {
    const rows = this.q('SELECT alias, target FROM aliases WHERE alias_key = ? ORDER BY rowid').all(addressKey(alias)) as Row[];
    if (rows.length === 0) return undefined;
    return { alias: String(rows[0]!.alias), targets: rows.map((r) => String(r.target)) };
  }

  async listAliases(): Promise<AliasRecord[]> {
    const rows = this.q('SELECT alias_key, alias, target FROM aliases ORDER BY alias_key, rowid').all() as Row[];
    const out = new Map<string, AliasRecord>();
    for (const r of rows) {
      const key = String(r.alias_key);
      if (!out.has(key)) out.set(key, { alias: String(r.alias), targets: [] });
      out.get(key)!.targets.push(String(r.target));
    }
    return [...out.values()];
  }

  // ---------------------------------------------------------------- accepting mail

  /**
   * Group commit. With the disk idle, the message is committed and synced at once (lowest
   * latency for a lone session). While an fsync is under way, messages gather and are committed
   * together in one transaction as soon as it ends, then made durable by one more fsync.
   */
  async accept(message: Acceptance): Promise<void> {
    // A body file is on disk before the transaction that refers to it begins; a body in the log
    // is flushed beside it (below).
    const where = placement(totalLength(message.body));
    if (where === IN_FILE) return this.commitAcceptance(message, { crc: await this.files.write(message.id, message.body) });
    if (where !== IN_LOG) return this.commitAcceptance(message, undefined);
    const place = this.log.append(message.body);
    try {
      // The body's flush and the commit's run at the same time; the message is acknowledged
      // once both are done (a crash between them is what recover() is for).
      await Promise.all([this.log.sync(), this.commitAcceptance(message, place)]);
    } finally {
      this.log.release(place.segment);
    }
  }

  private commitAcceptance(message: Acceptance, place: Outside | undefined): Promise<void> {
    if (!this.wal.busy && this.pending.length === 0) {
      try {
        this.transaction(() => this.insertAcceptance(message, place));
      } catch (err) {
        this.discardFile(message);
        return Promise.reject(err);
      }
      return this.wal.sync();
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ message, place, resolve, reject });
      if (this.pending.length === 1) void this.wal.settled().then(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const results: (Error | undefined)[] = [];
    try {
      this.transaction(() => {
        for (const p of batch) {
          // A message that cannot be stored fails alone; the others of the batch go on.
          this.db.exec('SAVEPOINT one');
          try {
            this.insertAcceptance(p.message, p.place);
            results.push(undefined);
            this.db.exec('RELEASE one');
          } catch (err) {
            this.db.exec('ROLLBACK TO one');
            this.db.exec('RELEASE one');
            this.discardFile(p.message);
            const e = storeError(err);
            results.push(e instanceof Error ? e : new Error(String(e)));
          }
        }
      });
    } catch (err) {
      for (const p of batch) {
        this.discardFile(p.message);
        p.reject(err);
      }
      return;
    }
    this.wal.sync().then(() => {
      batch.forEach((p, i) => {
        const err = results[i];
        if (err) p.reject(err);
        else p.resolve();
      });
    }, (err: unknown) => {
      for (const p of batch) p.reject(err);
    });
  }

  /** A message whose insert was rolled back leaves no body file behind. (After a failed flush
   *  its commit may be on disk all the same: then the file stays, and sweep() decides.) */
  private discardFile(m: Acceptance): void {
    if (placement(totalLength(m.body)) === IN_FILE) void this.files.remove([m.id]).catch(() => {});
  }

  /** `place`: a body kept outside the database has its checksum, and where it lies in the log. */
  private insertAcceptance(m: Acceptance, place: Outside | undefined): void {
    const now = Date.now();
    const queueId = m.id;
    const size = totalLength(m.body);
    const where = placement(size);
    const inLog = place && 'segment' in place ? place : undefined;
    const bodyId = Number(this.q('INSERT INTO bodies (queue_id, size, created, external, log_segment, log_offset, log_crc) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(queueId, size, now, where, inLog?.segment ?? null, inLog?.offset ?? null, place?.crc ?? null).lastInsertRowid);
    if (where === IN_PARTS && size > 0) {
      const data = m.body.length === 1 ? m.body[0]! : Buffer.concat(m.body, size);
      this.q('INSERT INTO body_parts (body_id, seq, data) VALUES (?, 0, ?)').run(bodyId, data);
    }
    let copies = 0;
    for (const copy of m.local) {
      const mb = this.q("SELECT id, uid_next FROM mailboxes WHERE user_id = ? AND name = 'INBOX'").get(copy.userId) as Row | undefined;
      // A user removed since its address was looked up (`user remove` during the transaction):
      // its copy goes as if the removal had come just after, and the others are kept.
      if (!mb) continue;
      copies++;
      this.q('UPDATE mailboxes SET uid_next = uid_next + 1 WHERE id = ?').run(mb.id as number);
      this.q('INSERT INTO messages (mailbox_id, uid, body_id, prefix, size, received_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(mb.id as number, mb.uid_next as number, bodyId, copy.prefix, copy.prefix.length + size, now);
    }
    if (m.outbound && m.outbound.recipients.length > 0) {
      const outId = Number(this.q(`INSERT INTO outbound (queue_id, body_id, prefix, sender, created, dsn_ret, dsn_envid, sign)
                                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(queueId, bodyId, m.outbound.prefix, m.sender, now, m.dsn?.ret ?? null, m.dsn?.envid ?? null, m.outbound.sign ? 1 : 0).lastInsertRowid);
      let id = this.takeValues('next_outbound_rcpt_id', 'outbound_rcpts', m.outbound.recipients.length);
      for (const r of m.outbound.recipients) {
        this.q('INSERT INTO outbound_rcpts (id, outbound_id, address, notify, orcpt, next_attempt) VALUES (?, ?, ?, ?, ?, ?)')
          .run(id++, outId, r.address, r.notify ? r.notify.join(',') : null, r.orcpt ?? null, now);
      }
      if (m.sentBy !== undefined) this.countSent(m.sentBy, m.outbound.recipients.length, now);
    }
    // Last: a body file it dooms is not doomed by a message whose insert then fails.
    if (m.reportOn) this.clearReports(m.reportOn);
    if (copies === 0 && !(m.outbound && m.outbound.recipients.length > 0)) this.dropBodyIfUnused(bodyId);
  }

  /** One row per user and minute; those a day old are no longer needed to answer sentInLastDay. A
   *  user removed meanwhile (see the local copies above) has nothing counted. */
  private countSent(userId: number, recipients: number, now: number): void {
    const minute = Math.floor(now / MINUTE_MS);
    this.q(`INSERT INTO sent_counts (user_id, minute, recipients) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)
            ON CONFLICT (user_id, minute) DO UPDATE SET recipients = recipients + excluded.recipients`).run(userId, minute, recipients, userId);
    this.q('DELETE FROM sent_counts WHERE user_id = ? AND minute < ?').run(userId, minute - SENT_MINUTES_KEPT);
  }

  async sentInLastDay(userId: number, now: number): Promise<number> {
    const r = this.q('SELECT COALESCE(SUM(recipients), 0) AS n FROM sent_counts WHERE user_id = ? AND minute >= ?').get(userId, Math.floor(now / MINUTE_MS) - SENT_MINUTES_KEPT) as Row;
    return Number(r.n);
  }

  async stsPolicy(domain: string): Promise<StsPolicy | undefined> {
    const r = this.q('SELECT domain, id, mode, mx, max_age, fetched FROM mta_sts_policies WHERE domain = ?').get(domain) as Row | undefined;
    if (!r) return undefined;
    return { domain: String(r.domain), id: String(r.id), mode: String(r.mode) as StsPolicy['mode'], mx: String(r.mx).split('\n').filter((m) => m !== ''), maxAge: Number(r.max_age), fetched: Number(r.fetched) };
  }

  async saveStsPolicy(p: StsPolicy): Promise<void> {
    await this.write(() => {
      this.q(`INSERT INTO mta_sts_policies (domain, id, mode, mx, max_age, fetched) VALUES (?, ?, ?, ?, ?, ?)
              ON CONFLICT (domain) DO UPDATE SET id = excluded.id, mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age, fetched = excluded.fetched`)
        .run(p.domain, p.id, p.mode, p.mx.join('\n'), p.maxAge, p.fetched);
      // Those ended by now are no use: the table holds the domains mail goes to lately.
      this.q('DELETE FROM mta_sts_policies WHERE fetched + max_age * 1000 < ?').run(p.fetched);
    });
  }

  private dropBodyIfUnused(bodyId: number): void {
    const used = this.q('SELECT 1 FROM messages WHERE body_id = ? UNION ALL SELECT 1 FROM outbound WHERE body_id = ? LIMIT 1').get(bodyId, bodyId);
    if (used) return;
    // The parts first, by their index: several times cheaper than leaving them to the cascade.
    this.q('DELETE FROM body_parts WHERE body_id = ?').run(bodyId);
    const body = this.q('DELETE FROM bodies WHERE id = ? RETURNING queue_id, external').get(bodyId) as Row | undefined;
    if (body && Number(body.external) === IN_FILE) this.doomed.push(String(body.queue_id));
  }

  // ---------------------------------------------------------------- mailboxes

  async listMailbox(userId: number): Promise<MailboxEntry[]> {
    const rows = this.q(`SELECT m.uid, m.size, m.received_at FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                         WHERE b.user_id = ? AND b.name = 'INBOX' ORDER BY m.uid`).all(userId) as Row[];
    return rows.map((r) => ({ uid: Number(r.uid), size: Number(r.size), receivedAt: Number(r.received_at) }));
  }

  async openMessage(userId: number, uid: number): Promise<OpenedMessage | undefined> {
    // The first part comes with the lookup: a message under one part is one query.
    const row = this.read(() => this.qa(`SELECT m.body_id, m.prefix, ${BODY_COLUMNS} FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                        JOIN bodies b ON b.id = m.body_id LEFT JOIN body_parts p ON p.body_id = m.body_id AND p.seq = 0
                        WHERE x.user_id = ? AND x.name = 'INBOX' AND m.uid = ?`).get(userId, uid)) as BodyRow | undefined;
    return row && this.openBody(row, this.pieces);
  }

  /** With a `pool`, the pieces of a body file are its buffers, and the message says how to hand them back. */
  private openBody([bodyId, prefix, size, queueId, external, logSegment, logOffset, crc, data]: BodyRow, pool?: PiecePool): OpenedMessage {
    const head: Buffer[] = [];
    if (prefix.length > 0) head.push(asBuffer(prefix));
    if (external !== IN_PARTS) {
      if (external === IN_FILE ? !this.files.has(queueId) : !this.log.has(logSegment!)) {
        throw new BodyMissing(`the body of message ${queueId} is missing from data_dir (${external === IN_FILE ? `bodies/${queueId}` : `body-log segment ${logSegment}`})`);
      }
      const rest = external === IN_FILE
        ? this.files.read(queueId, size, crc ?? undefined, pool)
        : this.log.read(logSegment!, logOffset!, size, crc ?? undefined, pool);
      return pool ? { head, rest, recycle: (piece) => pool.give(piece) } : { head, rest };
    }
    const parts = Math.ceil(size / CHUNK);
    if (parts > 0) {
      if (!data) throw new Error(`message body ${bodyId} is missing part 0`);
      head.push(asBuffer(data));
    }
    return { head, rest: parts > 1 ? this.bodyParts(bodyId, parts) : undefined };
  }

  /** Parts 1.. of a body, one per step, no statement held open across the consumer's awaits. */
  private async *bodyParts(bodyId: number, parts: number): AsyncIterable<Buffer> {
    for (let seq = 1; seq < parts; seq++) {
      const row = this.read(() => this.qa('SELECT data FROM body_parts WHERE body_id = ? AND seq = ?').get(bodyId, seq)) as [Uint8Array] | undefined;
      if (!row) throw new Error(`message body ${bodyId} is missing part ${seq}`);
      yield asBuffer(row[0]);
    }
  }

  /** In batches of DELETE_BATCH, other sessions served between them: a POP3 QUIT that deletes a
   *  hundred thousand messages would otherwise hold every other session for seconds. A failure
   *  half-way leaves the rest in place, which RFC 1939 §6 allows (the client's UIDs tell it
   *  which remain). Resolves once every batch is on disk. */
  async deleteMessages(userId: number, uids: number[]): Promise<void> {
    for (let start = 0; start < uids.length; start += DELETE_BATCH) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve));
      this.transaction(() => {
        const mb = this.q("SELECT id FROM mailboxes WHERE user_id = ? AND name = 'INBOX'").get(userId) as Row | undefined;
        if (!mb) return;
        const bodies = new Set<number>();
        for (const uid of uids.slice(start, start + DELETE_BATCH)) {
          const row = this.q('DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING body_id').get(mb.id as number, uid) as Row | undefined;
          if (row) bodies.add(Number(row.body_id));
        }
        for (const b of bodies) this.dropBodyIfUnused(b);
      }, true);
    }
    if (uids.length > 0) await this.wal.sync();
  }

  // ---------------------------------------------------------------- outbound queue

  async listQueue(): Promise<QueueEntry[]> {
    const rows = this.q(`SELECT DISTINCT o.queue_id FROM outbound o JOIN outbound_rcpts r ON r.outbound_id = o.id
                         WHERE r.status IN ('queued', 'deferred') ORDER BY o.id`).all() as Row[];
    const out: QueueEntry[] = [];
    for (const r of rows) {
      const e = await this.getQueueEntry(String(r.queue_id));
      if (e) out.push(e);
    }
    return out;
  }

  async getQueueEntry(id: string): Promise<QueueEntry | undefined> {
    const o = this.q(`SELECT o.id, o.queue_id, o.sender, o.created, o.dsn_ret, o.dsn_envid, o.sign, length(o.prefix) + b.size AS size
                      FROM outbound o JOIN bodies b ON b.id = o.body_id WHERE o.queue_id = ?`).get(id) as Row | undefined;
    if (!o) return undefined;
    const rcpts = this.q('SELECT * FROM outbound_rcpts WHERE outbound_id = ? ORDER BY id').all(o.id as number) as Row[];
    return { ...queueEntry(o), recipients: rcpts.map(queueRecipient) };
  }

  readQueued(id: string): AsyncIterable<Buffer> {
    const row = this.qa(`SELECT o.body_id, o.prefix, ${BODY_COLUMNS} FROM outbound o JOIN bodies b ON b.id = o.body_id
                        LEFT JOIN body_parts p ON p.body_id = o.body_id AND p.seq = 0 WHERE o.queue_id = ?`).get(id) as BodyRow | undefined;
    if (!row) return failing(new Error(`no queue entry ${id}`));
    try {
      return messageBytes(this.openBody(row));
    } catch (err) {
      return failing(err as Error);
    }
  }

  /** Group-committed like `accept`: every update handed in during one turn of the event loop
   *  shares a transaction and its fsync; resolves once it is on disk. */
  updateRecipients(id: string, updates: RecipientUpdate[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pendingUpdates.push({ id, updates, resolve, reject });
      if (!this.updateFlushScheduled) {
        this.updateFlushScheduled = true;
        setImmediate(() => this.flushUpdates());
      }
    });
  }

  private flushUpdates(): void {
    const batch = this.pendingUpdates;
    this.pendingUpdates = [];
    this.updateFlushScheduled = false;
    if (batch.length === 0) return;
    try {
      this.transaction(() => {
        for (const { id, updates } of batch) {
          for (const u of updates) {
            // A report still owed is kept by an outcome that calls for none while the recipient
            // waits on (a "delayed" one, still true), and dropped once it is settled: a delay
            // warning a crash or a full disk held back is not sent after the delivery.
            const settled = u.status === 'delivered' || u.status === 'failed';
            // A retry asked for while the attempt ran moved next_attempt: the earlier time stands.
            this.q(`UPDATE outbound_rcpts SET status = ?, attempts = ?, last_reply = ?, warned = COALESCE(?, warned),
                      next_attempt = CASE WHEN ? AND next_attempt <> ? THEN MIN(next_attempt, ?) ELSE ? END,
                      report = COALESCE(?, CASE WHEN ? THEN NULL ELSE report END)
                    WHERE id = ? AND outbound_id = (SELECT id FROM outbound WHERE queue_id = ?)`)
              .run(u.status, u.attempts, u.lastReply, u.warned === undefined ? null : Number(u.warned),
                Number(!settled && u.dueWhenTaken !== undefined), u.dueWhenTaken ?? null, u.nextAttempt, u.nextAttempt,
                u.report ?? null, Number(settled), u.recipientId, id);
          }
          this.dropOutboundIfDone(id);
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.wal.sync().then(() => {
      for (const p of batch) p.resolve();
    }, (err: unknown) => {
      for (const p of batch) p.reject(err);
    });
  }

  async entriesWithReports(): Promise<string[]> {
    const rows = this.q(`SELECT DISTINCT o.queue_id FROM outbound_rcpts r JOIN outbound o ON o.id = r.outbound_id
                         WHERE r.report IS NOT NULL ORDER BY o.id`).all() as Row[];
    return rows.map((r) => String(r.queue_id));
  }

  async reportsSent(on: ReportOn): Promise<void> {
    await this.write(() => this.clearReports(on), true);
  }

  private clearReports(on: ReportOn): void {
    for (const rid of on.recipientIds) {
      this.q('UPDATE outbound_rcpts SET report = NULL WHERE id = ? AND outbound_id = (SELECT id FROM outbound WHERE queue_id = ?)').run(rid, on.queueId);
    }
    this.dropOutboundIfDone(on.queueId);
  }

  async dueRecipients(now: number, limit: number, fresh: boolean, exclude: number[]): Promise<DueRecipient[]> {
    const rows = this.q(`SELECT r.*, o.queue_id, o.sender, o.created, o.dsn_ret, o.dsn_envid, o.sign, length(o.prefix) + b.size AS size
                         FROM outbound_rcpts r JOIN outbound o ON o.id = r.outbound_id JOIN bodies b ON b.id = o.body_id
                         WHERE r.status IN ('queued', 'deferred') AND r.next_attempt <= ? AND ${fresh ? 'r.attempts = 0' : 'r.attempts > 0'}
                           AND r.id NOT IN (SELECT value FROM json_each(?))
                         ORDER BY r.next_attempt, r.id LIMIT ?`).all(now, JSON.stringify(exclude), limit) as Row[];
    return rows.map((r) => ({ entry: queueEntry(r), recipient: queueRecipient(r) }));
  }

  async queueDepth(): Promise<number> {
    const r = this.q("SELECT COUNT(*) AS n FROM outbound_rcpts WHERE status IN ('queued', 'deferred')").get() as Row;
    return Number(r.n);
  }

  /** An entry with no recipient left to deliver and no report left to send is removed, and its
   *  body with it when unused. */
  private dropOutboundIfDone(id: string): void {
    const o = this.q('SELECT id, body_id FROM outbound WHERE queue_id = ?').get(id) as Row | undefined;
    if (!o) return;
    const open = this.q("SELECT 1 FROM outbound_rcpts WHERE outbound_id = ? AND (status IN ('queued', 'deferred') OR report IS NOT NULL) LIMIT 1").get(o.id as number);
    if (open) return;
    this.q('DELETE FROM outbound WHERE id = ?').run(o.id as number);
    this.dropBodyIfUnused(Number(o.body_id));
  }

  async retryNow(id: string | undefined, now: number): Promise<number> {
    const r = await this.write(() => id === undefined
      ? this.q("UPDATE outbound_rcpts SET next_attempt = ? WHERE status IN ('queued', 'deferred')").run(now)
      : this.q(`UPDATE outbound_rcpts SET next_attempt = ? WHERE status IN ('queued', 'deferred')
                AND outbound_id = (SELECT id FROM outbound WHERE queue_id = ?)`).run(now, id));
    return Number(r.changes);
  }

  async removeQueued(id: string): Promise<boolean> {
    return this.write(() => {
      const o = this.q('SELECT id, body_id FROM outbound WHERE queue_id = ?').get(id) as Row | undefined;
      if (!o) return false;
      this.q('DELETE FROM outbound WHERE id = ?').run(o.id as number);
      this.dropBodyIfUnused(Number(o.body_id));
      return true;
    }, true);
  }

  // ---------------------------------------------------------------- tokens

  async addToken(name: string, hash: string): Promise<void> {
    await this.write(() => {
      if (this.q('SELECT 1 FROM tokens WHERE name = ?').get(name)) throw new StoreConflict('token', `token ${name} already exists`);
      this.q('INSERT INTO tokens (name, hash, created) VALUES (?, ?, ?)').run(name, hash, Date.now());
    });
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | undefined> {
    const r = this.q('SELECT name, created, last_used FROM tokens WHERE hash = ?').get(hash) as Row | undefined;
    return r && tokenRecord(r);
  }

  async touchToken(name: string, when: number): Promise<void> {
    await this.write(() => this.q('UPDATE tokens SET last_used = ? WHERE name = ?').run(when, name));
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (this.q('SELECT name, created, last_used FROM tokens ORDER BY name').all() as Row[]).map(tokenRecord);
  }

  async removeToken(name: string): Promise<boolean> {
    return this.write(() => this.q('DELETE FROM tokens WHERE name = ?').run(name).changes > 0);
  }

  /**
   * Removes body files that a crash left without a row (see body-files.ts) and body-log segments
   * no row refers to, then compacts the segments that are mostly dead space: their live bodies
   * are appended to the current segment, and the next sweep removes them, by then without rows.
   * (Not in the same sweep: a reader that looked a body up just before the move may be about to
   * open its old segment.) A body that cannot be read back whole and matching its checksum is
   * left where it is, its segment with it, and named in `damaged`: moving it would give the
   * damage a new checksum, and it would be served as the message. Moving a body costs the space
   * it takes before its old place is freed: on a disk too full for that (see roomFor), a segment
   * waits, and is counted in `waiting`; the segments with the least to move go first, so that
   * what can be freed is. Returns how many files it removed.
   */
  async sweep(): Promise<{ removed: number; damaged: string[]; waiting: number }> {
    // Made here, not when the store opens: every command opens the store.
    await this.reserve.keep();
    const known = (queueId: string) => this.q('SELECT 1 FROM bodies WHERE queue_id = ?').get(queueId) !== undefined;
    let removed = await this.files.sweep(known, Date.now() - ORPHAN_AGE_MS);
    const idle = this.log.segments().filter((n) => !this.log.busy(n, ORPHAN_AGE_MS));
    const live = new Map<number, number>();
    const dead: number[] = [];
    for (const n of idle) {
      const r = this.q('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM bodies WHERE log_segment = ?').get(n) as Row;
      if (Number(r.n) === 0) dead.push(n);
      else live.set(n, Number(r.bytes));
    }
    if (dead.length > 0) {
      // What made them rowless must be durable before they go.
      await this.wal.sync();
      this.log.remove(dead);
      removed += dead.length;
    }
    const damaged: string[] = [];
    let waiting = 0;
    const worth = [...live].filter(([n, bytes]) => bytes < COMPACT_UNDER * this.log.size(n)).sort((a, b) => a[1] - b[1]);
    for (const [n, bytes] of worth) {
      if (!roomFor(freeBytes(path.dirname(this.file)), bytes)) {
        waiting++;
        continue;
      }
      try {
        damaged.push(...await this.compact(n));
      } catch (err) {
        if (!isStorageFull(err)) throw err;
        waiting++;
      }
    }
    return { removed, damaged, waiting };
  }

  /** Moves the bodies of a segment that read back intact to the end of the log, durable before
   *  their rows move; returns the queue ids of those that do not. */
  private async compact(segment: number): Promise<string[]> {
    const rows = this.q('SELECT id, queue_id, size, log_offset, log_crc FROM bodies WHERE log_segment = ?').all(segment) as Row[];
    const moved: [id: number, place: LogPlace][] = [];
    const damaged: string[] = [];
    try {
      for (const r of rows) {
        const chunks: Buffer[] = [];
        try {
          for await (const piece of this.log.read(segment, Number(r.log_offset), Number(r.size), Number(r.log_crc))) chunks.push(piece);
        } catch {
          damaged.push(String(r.queue_id));
          continue;
        }
        moved.push([Number(r.id), this.log.append(chunks)]);
        // Reads and writes on the event loop: sessions get their turn between two bodies.
        await new Promise((resolve) => setImmediate(resolve));
      }
      await this.log.sync();
      // A body deleted meanwhile stays deleted.
      await this.write(() => {
        for (const [id, place] of moved) {
          this.q('UPDATE bodies SET log_segment = ?, log_offset = ?, log_crc = ? WHERE id = ? AND log_segment = ?').run(place.segment, place.offset, place.crc, id, segment);
        }
      });
    } finally {
      for (const [, place] of moved) this.log.release(place.segment);
    }
    return damaged;
  }

  /** Writes what is pending and flushes it; the files are closed even when that fails (a disk
   *  gone read-only), and the failure is thrown after. */
  close(): void {
    try {
      this.endRead();
      this.flush();
      if (this.pendingUpdates.length > 0) this.flushUpdates();
      this.wal.close();
    } finally {
      this.files.close();
      this.log.close();
      this.db.close();
    }
  }
}

/** Sets SQLite's automatic checkpoint, which counts pages, to `bytes` of the database's own. */
function checkpointEvery(db: DatabaseSync, bytes: number): void {
  const { page_size: pageBytes } = db.prepare('PRAGMA page_size').get() as { page_size: number };
  db.exec(`PRAGMA wal_autocheckpoint = ${Math.max(1, Math.round(bytes / Number(pageBytes)))}`);
}

/** Opens the database; a directory or file this user may not write is said so, with the path
 *  (SQLite would only say "unable to open database file"), as an EACCES error. */
function openDatabase(file: string): DatabaseSync {
  try {
    return new DatabaseSync(file, { timeout: 10_000 });
  } catch (err) {
    for (const target of [path.dirname(file), file]) {
      try {
        fs.accessSync(target, fs.constants.R_OK | fs.constants.W_OK);
      } catch (access) {
        if ((access as NodeJS.ErrnoException).code !== 'EACCES') continue;
        const e = new Error(`cannot open ${file}: ${target} is not writable by this user; run mailnest as the user that owns data_dir`) as NodeJS.ErrnoException;
        e.code = 'EACCES';
        throw e;
      }
    }
    throw err;
  }
}

function userRecord(r: Row | undefined): UserRecord | undefined {
  return r && { id: Number(r.id), address: String(r.address), passwordHash: String(r.password_hash) };
}

/** An outbound row (with its size) as a QueueEntry, without the recipients. */
function queueEntry(o: Row): Omit<QueueEntry, 'recipients'> {
  return {
    id: String(o.queue_id),
    sender: String(o.sender),
    created: Number(o.created),
    size: Number(o.size),
    dsn: {
      ...(o.dsn_ret ? { ret: o.dsn_ret as 'FULL' | 'HDRS' } : {}),
      ...(o.dsn_envid ? { envid: String(o.dsn_envid) } : {}),
    },
    sign: Number(o.sign) === 1,
  };
}

function queueRecipient(r: Row): QueueRecipient {
  return {
    id: Number(r.id),
    address: String(r.address),
    ...(r.notify ? { notify: String(r.notify).split(',') as QueueRecipient['notify'] } : {}),
    ...(r.orcpt ? { orcpt: String(r.orcpt) } : {}),
    status: String(r.status) as QueueStatus,
    attempts: Number(r.attempts),
    nextAttempt: Number(r.next_attempt),
    lastReply: r.last_reply === null ? null : String(r.last_reply),
    warned: Number(r.warned) === 1,
    ...(r.report === null || r.report === undefined ? {} : { report: String(r.report) }),
  };
}

function tokenRecord(r: Row): TokenRecord {
  return { name: String(r.name), created: Number(r.created), lastUsed: r.last_used === null ? null : Number(r.last_used) };
}


function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.length);
}

async function* failing(err: Error): AsyncIterable<Buffer> {
  throw err;
}
