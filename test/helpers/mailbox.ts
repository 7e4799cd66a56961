/** Reads a user's mailbox straight from the store in the data directory (whole messages). */
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

export async function mailbox(dataDir: string, address: string): Promise<Buffer[]> {
  const store = new SqliteStore(dataDir);
  try {
    const user = await store.findUser(address);
    if (!user) throw new Error(`no user ${address}`);
    const out: Buffer[] = [];
    for (const entry of await store.listMailbox(user.id)) {
      const chunks: Buffer[] = [];
      for await (const c of store.readMessage(user.id, entry.uid)) chunks.push(c);
      const message = Buffer.concat(chunks);
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
