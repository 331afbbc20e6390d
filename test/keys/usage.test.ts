import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { hourOf, UsageStore, UsageTally } from "../../src/keys/usage.js";

const HOUR = 3_600_000;

describe("key usage: the tally and the hourly buckets", () => {
  let db: Db;
  let store: UsageStore;
  let id: string;

  beforeEach(() => {
    db = openDatabase(":memory:");
    store = new UsageStore(db);
    id = new KeyRepository(db).create({ kind: "live", scopes: [] }).key.id;
  });
  afterEach(() => db.close());

  it("merges a reporter's batch once: a retry after a lost answer is not counted twice", () => {
    const now = Date.now();
    const batch = [
      { keyId: id, hour: hourOf(now), lastUsedAt: now, allowed: 3, denied: { key_revoked: 1 } },
    ];
    expect(store.mergeReport("replica-a", 1, batch, now)).toBe(true);
    expect(store.mergeReport("replica-a", 1, batch, now)).toBe(false);
    expect(store.mergeReport("replica-b", 1, batch, now)).toBe(true);
    expect(store.series(id, now)).toEqual([
      { hour: hourOf(now), allowed: 6, denied: { key_revoked: 2 } },
    ]);
  });

  it("merges several reports in one transaction, a batch repeated within them once", () => {
    const now = Date.now();
    const entries = [{ keyId: id, hour: hourOf(now), lastUsedAt: now, allowed: 2, denied: {} }];
    expect(
      store.mergeReports(
        [
          { reporter: "replica-a", batch: 1, entries },
          { reporter: "replica-b", batch: 7, entries },
          { reporter: "replica-a", batch: 1, entries },
          { reporter: "replica-a", batch: 2, entries },
        ],
        now,
      ),
    ).toEqual([true, true, false, true]);
    expect(store.series(id, now)).toEqual([{ hour: hourOf(now), allowed: 6, denied: {} }]);
    expect(store.mergeReports([{ reporter: "replica-b", batch: 7, entries }], now)).toEqual([
      false,
    ]);
    // A report that fails to write leaves none of its transaction's reports merged.
    // (a key id SQLite cannot bind)
    const missing = { ...entries[0], keyId: {} } as never;
    expect(() =>
      store.mergeReports(
        [
          { reporter: "replica-c", batch: 1, entries },
          { reporter: "replica-d", batch: 1, entries: [missing] },
        ],
        now,
      ),
    ).toThrow();
    expect(
      db.prepare("SELECT count(*) FROM usage_reporters WHERE reporter = 'replica-c'").pluck().get(),
    ).toBe(0);
    expect(store.series(id, now)).toEqual([{ hour: hourOf(now), allowed: 6, denied: {} }]);
  });

  it("moves lastUsedAt only forward and ignores keys it does not hold", () => {
    const now = Date.now();
    store.merge([{ keyId: id, hour: hourOf(now), lastUsedAt: now, allowed: 1, denied: {} }]);
    store.merge([{ keyId: id, hour: hourOf(now), lastUsedAt: now - 5000, allowed: 1, denied: {} }]);
    store.merge([
      { keyId: "0123456789abcdef", hour: hourOf(now), lastUsedAt: now, allowed: 1, denied: {} },
    ]);
    expect(db.prepare("SELECT last_used_at FROM keys WHERE id = ?").pluck().get(id)).toBe(now);
    expect(
      db.prepare("SELECT count(*) FROM key_usage WHERE key_id = '0123456789abcdef'").pluck().get(),
    ).toBe(0);
  });

  it("prunes buckets older than the retention", () => {
    const now = Date.now();
    const old = now - 31 * 24 * HOUR;
    store.merge([{ keyId: id, hour: hourOf(old), lastUsedAt: old, allowed: 1, denied: {} }]);
    store.merge([{ keyId: id, hour: hourOf(now), lastUsedAt: now, allowed: 2, denied: {} }]);
    expect(store.prune(now - 30 * 24 * HOUR)).toBe(1);
    expect(store.series(id, old).map((h) => h.allowed)).toEqual([2]);
  });

  it("keeps the tally bounded: uses of new keys past the bound are counted as dropped", () => {
    const tally = new UsageTally(2);
    tally.record("a");
    tally.record("b", "insufficient_scope");
    tally.record("c");
    tally.record("a");
    expect(tally.size).toBe(2);
    expect(tally.dropped).toBe(1);
    const drained = tally.drain();
    expect(drained.find((e) => e.keyId === "a")?.allowed).toBe(2);
    expect(drained.find((e) => e.keyId === "b")?.denied).toEqual({ insufficient_scope: 1 });
    expect(tally.size).toBe(0);
  });
});
