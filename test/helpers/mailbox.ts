/** Reads a user's mailbox straight from the store in the data directory (whole messages). */
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { messageBytes, type Store } from '../../src/store/store.ts';

/** Every byte of a stored message of the user's INBOX; throws when there is none. */
export async function storedMessage(store: Store, userId: number, uid: number): Promise<Buffer> {
  const opened = await store.openMessage(userId, uid);
  if (!opened) throw new Error(`no message ${uid} for user ${userId}`);
  const chunks: Buffer[] = [];
  for await (const c of messageBytes(opened)) chunks.push(c);
  return Buffer.concat(chunks);
}

export async function mailbox(dataDir: string, address: string): Promise<Buffer[]> {
  const store = new SqliteStore(dataDir);
  try {
    const user = await store.findUser(address);
    if (!user) throw new Error(`no user ${address}`);
    const out: Buffer[] = [];
    for (const entry of await store.listMailbox(user.id)) {
      const message = await storedMessage(store, user.id, entry.uid);
      if (message.length !== entry.size) throw new Error(`message ${entry.uid}: ${message.length} bytes read, ${entry.size} listed`);
      out.push(message);
    }
    return out;
  } finally {
    store.close();
  }
}

export function dataDirOf(dir: string): string {
  return path.join(dir, 'data');
}
