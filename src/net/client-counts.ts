/**
 * A count kept for each client (connections, octets held, checks or lookups under way), under the
 * client's key (an IPv6 one by its /64: see clientKey); a client whose count falls to zero is
 * forgotten, so the map holds only the clients with something under way.
 */
import { clientKey } from './client-key.ts';

export class ClientCounts {
  private readonly counts = new Map<string, number>();

  /** The count of `client` now. */
  of(client: string): number {
    return this.counts.get(clientKey(client)) ?? 0;
  }

  add(client: string, n = 1): void {
    const key = clientKey(client);
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  remove(client: string, n = 1): void {
    const key = clientKey(client);
    const left = (this.counts.get(key) ?? 0) - n;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }
}
