import { describe, expect, it } from "vitest";
import { boundedCache } from "../src/lib/bounded-cache.js";

describe("boundedCache", () => {
  it("holds at most maxEntries and evicts the least recently used first", () => {
    const cache = boundedCache<string, number>(3);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("c", 3);
    expect(cache.get("a")).toBe(1); // "b" is now the least recently used
    cache.set("d", 4);
    expect(cache.size).toBe(3);
    expect(cache.has("b")).toBe(false);
    expect([...cache.keys()].sort()).toEqual(["a", "c", "d"]);
  });

  it("passes other options on (a ttl still expires entries)", () => {
    let now = 1_000;
    const cache = boundedCache<string, number>(10, {
      ttl: 50,
      ttlResolution: 0,
      perf: { now: () => now },
    });
    cache.set("a", 1);
    now += 49;
    expect(cache.get("a")).toBe(1);
    now += 2;
    expect(cache.get("a")).toBeUndefined();
  });

  it("allocates with use, not for its bound up front", () => {
    // With lru-cache's `max`, each of these would allocate two arrays of a
    // million slots (16 MB of heap) before its first entry.
    const before = process.memoryUsage().heapUsed;
    const caches = [
      boundedCache<string, number>(1_000_000),
      boundedCache<string, number>(1_000_000),
    ];
    const grown = process.memoryUsage().heapUsed - before;
    expect(grown).toBeLessThan(2 ** 20);
    for (let i = 0; i < 5; i++) caches[0]?.set(`k${i}`, i);
    expect(caches[0]?.size).toBe(5);
  });
});
