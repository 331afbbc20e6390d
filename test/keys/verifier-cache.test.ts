import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { parseKey } from "../../src/keys/format.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { KeyVerifier } from "../../src/keys/verifier.js";

// The decision cache and the cache of refused keys, on real SQLite files:
// one connection serves verify() (as keyward's Check does) while another
// writes, as the admin API, the CLI or replication would. Another
// connection's commits are noticed from the next event-loop turn on, which is
// why the writes below are followed by `await nextTurn()`.

function verify(store: KeyVerifier, token: string) {
  const parsed = parseKey(token);
  if (!parsed) throw new Error(`not a key: ${token}`);
  return store.verify(parsed, token);
}

function wrongSecret(token: string): string {
  return `${token.slice(0, token.lastIndexOf("_") + 1)}${"0".repeat(48)}`;
}

describe("KeyVerifier caches", () => {
  let dir = "";
  const open: Db[] = [];
  const connect = (file: string): Db => {
    const db = openDatabase(file);
    open.push(db);
    return db;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "keyward-store-cache-"));
  });
  afterEach(() => {
    for (const db of open.splice(0)) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A writer connection with one live key minted, and a caching store on another connection. */
  const writerAndStore = (cacheMaxEntries: number) => {
    const file = join(dir, "keys.db");
    const writer = new KeyRepository(connect(file));
    const minted = writer.create({ kind: "live" });
    return { writer, ...minted, store: new KeyVerifier(connect(file), Date.now, cacheMaxEntries) };
  };

  it("answers a repeated wrong secret or unknown id from the refused cache, still invalid_token", () => {
    const { secret, store } = writerAndStore(100);
    const unknown = `sk_live_${"f".repeat(16)}_${"1".repeat(48)}`;
    for (const token of [wrongSecret(secret), unknown]) {
      const before = store.cacheStats();
      expect(verify(store, token)).toEqual({ ok: false, code: "invalid_token" });
      expect(verify(store, token)).toEqual({ ok: false, code: "invalid_token" });
      const after = store.cacheStats();
      expect([after.misses - before.misses, after.hits - before.hits]).toEqual([1, 1]);
    }
    expect(verify(store, secret).ok).toBe(true);
  });

  it("forgets a refusal when another connection commits: a key replicated after its first use is then allowed", async () => {
    // The key is minted elsewhere (the primary) and reaches this file only
    // after a client has already presented it here (a replica that is behind).
    const primary = new KeyRepository(connect(join(dir, "primary.db")));
    const minted = primary.create({ kind: "live", scopes: ["sources:read"] });
    const file = join(dir, "replica.db");
    const replicaWriter = connect(file);
    const store = new KeyVerifier(connect(file), Date.now, 100);

    expect(verify(store, minted.secret)).toEqual({ ok: false, code: "invalid_token" });
    expect(verify(store, minted.secret)).toEqual({ ok: false, code: "invalid_token" });

    replicaWriter.exec(`ATTACH DATABASE '${join(dir, "primary.db")}' AS primary_db`);
    replicaWriter.exec("INSERT INTO keys SELECT * FROM primary_db.keys");
    await nextTurn();
    const verdict = verify(store, minted.secret);
    expect(verdict.ok && verdict.key.id).toBe(minted.key.id);
  });

  it("keeps refused keys from evicting verified ones: guessing cannot push a live key out", () => {
    const { secret, store } = writerAndStore(10);
    expect(verify(store, secret).ok).toBe(true);
    for (let i = 0; i < 200; i++) {
      const guess = `sk_live_${i.toString(16).padStart(16, "0")}_${"2".repeat(48)}`;
      expect(verify(store, guess).ok).toBe(false);
    }
    const before = store.cacheStats();
    expect(verify(store, secret).ok).toBe(true);
    expect(store.cacheStats().hits - before.hits).toBe(1);
  });

  it("answers a revocation by another connection from the next event-loop turn on", async () => {
    const { writer, key, secret, store } = writerAndStore(100);
    expect(verify(store, secret).ok).toBe(true);
    writer.revoke(key.id);
    // Same turn: the store has already read data_version in it, and a request
    // handled now was received before the revocation committed.
    expect(verify(store, secret).ok).toBe(true);
    await nextTurn();
    expect(verify(store, secret)).toEqual({ ok: false, code: "key_revoked", keyId: key.id });
  });

  it("sees a rotation committed in an earlier turn on every verification of a later one", async () => {
    const { writer, key, secret, store } = writerAndStore(100);
    expect(verify(store, secret).ok).toBe(true);
    await nextTurn();
    // A rotation in a turn of its own, then a burst of verifications.
    const rotated = writer.rotate(key.id);
    await nextTurn();
    const verdicts = Array.from({ length: 50 }, () => verify(store, secret).ok);
    expect(verdicts.every((ok) => !ok)).toBe(true);
    expect(verify(store, rotated?.secret ?? "").ok).toBe(true);
  });
});
