import { LRUCache } from "lru-cache";

/**
 * An LRU cache of at most `maxEntries` entries whose storage grows with use.
 *
 * lru-cache's `max` option preallocates two arrays of `max` slots and three
 * typed arrays up front: with keyward's default bound that is ~2.7 MB per cache
 * before the first entry, and every full garbage collection scans those slots.
 * Counting each entry as size 1 against `maxSize` keeps the same bound and
 * eviction order while allocating only what is stored (bench/NOTES.md).
 */
export function boundedCache<K extends {}, V extends {}>(
  maxEntries: number,
  options: Omit<LRUCache.Options<K, V, unknown>, "max" | "maxSize" | "sizeCalculation"> = {},
): LRUCache<K, V> {
  return new LRUCache<K, V>({ ...options, maxSize: maxEntries, sizeCalculation: () => 1 });
}
