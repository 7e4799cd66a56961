/**
 * The rule of the caches that remember a few thousand entries (DNS answers, clients' screenings,
 * domains' policies): an entry set is the newest, and when the map is full the oldest goes (a
 * Map keeps its keys in the order they were set).
 */
export function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  if (map.size >= max) map.delete(map.keys().next().value as K);
  map.set(key, value);
}
