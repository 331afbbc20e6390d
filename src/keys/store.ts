import { randomBytes, timingSafeEqual } from "node:crypto";
import type { LRUCache } from "lru-cache";
import { boundedCache } from "../bounded-cache.js";
import type { CredentialKind, KeyKind, RunBinding } from "../pipeline/identity.js";
import type { Db } from "./db.js";
import { hashKey, keyDigest, keyLookup, mintKey, newKeyId, type ParsedKey } from "./format.js";
import { type CreateKeyInput, KeyInputError, validateKeyInput } from "./input.js";

export { type CreateKeyInput, KeyInputError } from "./input.js";

/** A key as the admin surfaces show it. Holds no secret and no hash. */
export interface KeyRecord {
  readonly id: string;
  readonly keyLookup: string;
  readonly kind: KeyKind;
  readonly name: string;
  readonly tenant: string;
  readonly owner: string;
  readonly scopes: readonly string[];
  readonly binding: RunBinding | undefined;
  /** `expired` is derived from `expiresAt` at read time; it is never stored. */
  readonly status: "active" | "revoked" | "expired";
  readonly createdAt: number;
  readonly expiresAt: number | undefined;
  readonly revokedAt: number | undefined;
  readonly lastUsedAt: number | undefined;
}

/** A key together with its plaintext; returned once, by create and rotate only. */
export interface MintedKey {
  readonly key: KeyRecord;
  readonly secret: string;
}

export interface ListKeysFilter {
  readonly tenant?: string;
  readonly kind?: KeyKind;
  /** Any of these kinds (for callers confined to some kinds). */
  readonly kinds?: readonly KeyKind[];
  readonly status?: KeyRecord["status"];
  readonly owner?: string;
  readonly run?: string;
}

/** Where a page of {@link KeyStore.list} starts: just after this key. */
export interface PageCursor {
  readonly createdAt: number;
  readonly id: string;
}

/** What the store knows about a presented key (see {@link KeyStore.verify}). */
export type KeyVerdict = { readonly ok: true; readonly key: VerifiedKey } | KeyDenied;

export interface KeyDenied {
  readonly ok: false;
  readonly code: "invalid_token" | "key_revoked" | "key_expired";
  readonly keyId?: string | undefined;
}

/** The facts of a key that authorization needs, read on the hot path. */
export interface VerifiedKey {
  readonly id: string;
  readonly kind: CredentialKind;
  readonly tenant: string;
  readonly owner: string;
  readonly scopes: readonly string[];
  readonly expiresAt: number | undefined;
  readonly binding: RunBinding | undefined;
}

interface KeyRow {
  id: string;
  lookup: string;
  hash: Buffer;
  kind: KeyKind;
  name: string;
  tenant: string;
  owner: string;
  scopes: string;
  experiment: string | null;
  variation: string | null;
  run: string | null;
  status: "active" | "revoked";
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

/**
 * Compared against when a lookup is unknown and the table is empty, so that
 * an unknown id costs the same hash-and-compare as a wrong secret and answers
 * the same way.
 */
const DUMMY_HASH = randomBytes(32);

/**
 * The API-key table. Statements are prepared once; `verify` is the Check hot
 * path and does one indexed read, one SHA-256 and one constant-time compare.
 */
export class KeyStore {
  readonly #db: Db;
  readonly #now: () => number;
  readonly #byLookup;
  readonly #hashByLookup;
  readonly #byId;
  readonly #insert;
  readonly #setHash;
  readonly #revoke;
  readonly #touch;
  readonly #dataVersion;
  /**
   * The decision cache: verdicts of presented keys whose secret matched,
   * keyed by the SHA-256 of the presented key (never the key). Any commit by
   * another connection (admin API, CLI, replication) clears it before the
   * next event-loop turn's first verification (see {@link KeyStore.verify}),
   * so a revocation or rotation holds for every request sent after it.
   */
  readonly #cache: LRUCache<string, Extract<KeyVerdict, { ok: true }> | KeyDenied> | undefined;
  /**
   * Presented keys that matched no stored hash (unknown id or wrong secret
   * alike), keyed the same way: a client retrying with a rotated-out or
   * mistyped key is answered without reading the table. Kept apart from the
   * decision cache and bounded at a tenth of it, so that guessing can neither
   * evict verified keys nor grow memory without bound; cleared with it.
   */
  readonly #refused: LRUCache<string, KeyDenied> | undefined;
  #seenVersion = -1;
  /** True from a data_version read until the end of that event-loop turn. */
  #versionRead = false;
  readonly #endTurn = () => {
    this.#versionRead = false;
  };
  #hits = 0;
  #misses = 0;

  /**
   * @param cacheMaxEntries bound of the decision cache; 0 (the default) disables it.
   */
  constructor(db: Db, now: () => number = Date.now, cacheMaxEntries = 0) {
    this.#db = db;
    this.#now = now;
    this.#cache = cacheMaxEntries > 0 ? boundedCache(cacheMaxEntries) : undefined;
    this.#refused =
      cacheMaxEntries > 0 ? boundedCache(Math.max(1, Math.floor(cacheMaxEntries / 10))) : undefined;
    this.#dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();
    this.#hashByLookup = db
      .prepare<[string, number, Buffer], Buffer>(
        // An unknown lookup reads a decoy row's hash instead: a row picked
        // by the presented digest, so that both kinds of refusal read one
        // index entry and one table row from anywhere in the table. The
        // decoy can never match: equal SHA-256 digests would mean the
        // presented key is the decoy's, whose lookup is known.
        `SELECT COALESCE(
           (SELECT hash FROM keys WHERE lookup = ?),
           (SELECT hash FROM keys WHERE rowid > ? % (SELECT max(rowid) FROM keys) ORDER BY rowid LIMIT 1),
           ?)`,
      )
      .pluck();
    // Only what verify() reads, once the secret matched.
    this.#byLookup = db.prepare<[string], KeyRow>(
      "SELECT id, hash, kind, tenant, owner, scopes, experiment, variation, run, status, expires_at FROM keys WHERE lookup = ?",
    );
    this.#byId = db.prepare<[string], KeyRow>("SELECT * FROM keys WHERE id = ?");
    this.#insert = db.prepare(
      `INSERT INTO keys (id, lookup, hash, kind, name, tenant, owner, scopes, experiment, variation, run, status, created_at, expires_at)
       VALUES (@id, @lookup, @hash, @kind, @name, @tenant, @owner, @scopes, @experiment, @variation, @run, 'active', @created_at, @expires_at)`,
    );
    this.#setHash = db.prepare("UPDATE keys SET hash = ?, rotated_at = ? WHERE id = ?");
    this.#revoke = db.prepare(
      "UPDATE keys SET status = 'revoked', revoked_at = ? WHERE id = ? AND status = 'active'",
    );
    this.#touch = db.prepare(
      "UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
    );
  }

  /** Mints a key; the returned secret is never stored or shown again. */
  create(input: CreateKeyInput): MintedKey {
    validateKeyInput(input);
    const id = newKeyId();
    const secret = mintKey(input.kind, id);
    this.#insert.run({
      id,
      lookup: keyLookup(input.kind, id),
      hash: hashKey(secret),
      kind: input.kind,
      name: input.name ?? "",
      tenant: input.tenant ?? "",
      owner: input.owner ?? "",
      scopes: (input.scopes ?? []).join(" "),
      experiment: input.binding?.experiment ?? null,
      variation: input.binding?.variation ?? null,
      run: input.binding?.run ?? null,
      created_at: this.#now(),
      expires_at: input.expiresAt ?? null,
    });
    return { key: this.#mustGet(id), secret };
  }

  /**
   * Replaces the key's secret, keeping its id and lookup. The old secret fails
   * from the moment this returns. A revoked key cannot be rotated back to life.
   */
  rotate(id: string): MintedKey | undefined {
    return this.#db
      .transaction((): MintedKey | undefined => {
        const row = this.#byId.get(id);
        if (!row) return undefined;
        if (row.status === "revoked") throw new KeyInputError(undefined, `key ${id} is revoked`);
        const secret = mintKey(row.kind, row.id);
        this.#setHash.run(hashKey(secret), this.#now(), id);
        return { key: this.#mustGet(id), secret };
      })
      .immediate();
  }

  /** Revokes a key; revoking a revoked key is a no-op. Undefined if unknown. */
  revoke(id: string): KeyRecord | undefined {
    this.#revoke.run(this.#now(), id);
    return this.get(id);
  }

  get(id: string): KeyRecord | undefined {
    const row = this.#byId.get(id);
    return row ? this.#toRecord(row) : undefined;
  }

  /**
   * Newest first, `limit` at most, starting after `after` (the last key of
   * the previous page). Filters combine with AND.
   */
  list(filter: ListKeysFilter = {}, limit = 100, after?: PageCursor): KeyRecord[] {
    const where: string[] = [];
    const params: Record<string, string | number> = { limit, now: this.#now() };
    for (const field of ["tenant", "kind", "owner", "run"] as const) {
      const value = filter[field];
      if (value !== undefined) {
        where.push(`${field} = @${field}`);
        params[field] = value;
      }
    }
    if (filter.kinds !== undefined) {
      where.push(`kind IN (${filter.kinds.map((k) => `'${k}'`).join(",")})`);
    }
    if (filter.status === "revoked") where.push("status = 'revoked'");
    if (filter.status === "expired") {
      where.push("status = 'active' AND expires_at IS NOT NULL AND expires_at <= @now");
    }
    if (filter.status === "active") {
      where.push("status = 'active' AND (expires_at IS NULL OR expires_at > @now)");
    }
    if (after) {
      where.push("(created_at < @afterAt OR (created_at = @afterAt AND id < @afterId))");
      params.afterAt = after.createdAt;
      params.afterId = after.id;
    }
    const sql = `SELECT * FROM keys ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
                 ORDER BY created_at DESC, id DESC LIMIT @limit`;
    return this.#db
      .prepare<Record<string, string | number>, KeyRow>(sql)
      .all(params)
      .map((row) => this.#toRecord(row));
  }

  /** The active keys bound to the run (of `tenant` only, when given). */
  runKeys(binding: RunBinding, tenant?: string): KeyRecord[] {
    return this.#db
      .prepare<[string, string, string], KeyRow>(
        "SELECT * FROM keys WHERE experiment = ? AND variation = ? AND run = ? AND status = 'active'",
      )
      .all(binding.experiment, binding.variation, binding.run)
      .filter((row) => tenant === undefined || row.tenant === tenant)
      .map((row) => this.#toRecord(row));
  }

  /** Revokes every active key bound to the run; returns the keys it revoked. */
  revokeRun(binding: RunBinding, tenant?: string): KeyRecord[] {
    return this.#db
      .transaction(() => {
        const keys = this.runKeys(binding, tenant);
        for (const key of keys) this.#revoke.run(this.#now(), key.id);
        return keys.map((key) => this.#mustGet(key.id));
      })
      .immediate();
  }

  /**
   * Records when keys were last used, in one transaction. Fed by a batching
   * tracker, never once per request; a time only ever moves forward.
   */
  recordUse(uses: ReadonlyMap<string, number>): void {
    if (uses.size === 0) return;
    this.#db.transaction(() => {
      for (const [id, at] of uses) this.#touch.run(at, id, at);
    })();
  }

  /**
   * Verifies a presented key. Order matters: the secret is checked first so
   * that only a holder of the secret learns that a key is revoked or expired;
   * an unknown lookup is compared against a decoy row's hash (a dummy when
   * the table is empty) so it answers exactly like a wrong secret.
   *
   * With the caches on, whether another connection has committed
   * (`PRAGMA data_version`) is read once per event-loop turn rather than once
   * per call: the requests handled in one turn were all read off their
   * sockets before it began, so they are concurrent with any commit made
   * during it, while a request sent after a commit returned is handled in a
   * later turn and sees it. Under load one turn answers tens of requests.
   */
  verify(parsed: ParsedKey, token: string): KeyVerdict {
    const cache = this.#cache;
    const refused = this.#refused;
    if (cache === undefined || refused === undefined) {
      return this.#verifyStored(parsed, hashKey(token));
    }
    if (!this.#versionRead) {
      const version = this.#dataVersion.get() as number;
      if (version !== this.#seenVersion) {
        cache.clear();
        refused.clear();
        this.#seenVersion = version;
      }
      this.#versionRead = true;
      setImmediate(this.#endTurn);
    }
    const cacheKey = keyDigest(token);
    let verdict = cache.get(cacheKey) ?? refused.get(cacheKey);
    if (verdict !== undefined) this.#hits++;
    else {
      this.#misses++;
      verdict = this.#verifyStored(parsed, Buffer.from(cacheKey, "base64"));
      // Only a presented key whose secret matched enters the decision cache,
      // so guessing cannot fill it; a refused one goes to its own small cache.
      if (verdict.ok || verdict.code !== "invalid_token") cache.set(cacheKey, verdict);
      else refused.set(cacheKey, verdict);
    }
    // Time moves on while an entry sits in the cache.
    const expiresAt = verdict.ok ? verdict.key.expiresAt : undefined;
    if (expiresAt !== undefined && expiresAt <= this.#now()) {
      return { ok: false, code: "key_expired", keyId: verdict.ok ? verdict.key.id : undefined };
    }
    return verdict;
  }

  /** Decision-cache counters, for metrics. */
  cacheStats(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }

  #verifyStored(parsed: ParsedKey, presented: Buffer): KeyVerdict {
    // One query shape for known and unknown ids: the stored hash, or a decoy
    // when the lookup is unknown. Only a matching secret reads the whole row,
    // so an unknown id and a wrong secret cost the same (bench/TIMING.md).
    const decoy = presented.readUInt32LE(0);
    const stored = this.#hashByLookup.get(parsed.lookup, decoy, DUMMY_HASH) as Buffer;
    if (!timingSafeEqual(presented, stored)) return { ok: false, code: "invalid_token" };
    const row = this.#byLookup.get(parsed.lookup);
    if (!row) return { ok: false, code: "invalid_token" };
    if (row.status === "revoked") return { ok: false, code: "key_revoked", keyId: row.id };
    if (row.expires_at !== null && row.expires_at <= this.#now()) {
      return { ok: false, code: "key_expired", keyId: row.id };
    }
    return {
      ok: true,
      key: {
        id: row.id,
        kind: row.kind,
        tenant: row.tenant,
        owner: row.owner,
        scopes: splitScopes(row.scopes),
        expiresAt: row.expires_at ?? undefined,
        binding: bindingOf(row),
      },
    };
  }

  #mustGet(id: string): KeyRecord {
    const record = this.get(id);
    if (!record) throw new Error(`key ${id} vanished during its own write`);
    return record;
  }

  #toRecord(row: KeyRow): KeyRecord {
    const expired = row.expires_at !== null && row.expires_at <= this.#now();
    return {
      id: row.id,
      keyLookup: row.lookup,
      kind: row.kind,
      name: row.name,
      tenant: row.tenant,
      owner: row.owner,
      scopes: splitScopes(row.scopes),
      binding: bindingOf(row),
      status: row.status === "revoked" ? "revoked" : expired ? "expired" : "active",
      createdAt: row.created_at,
      expiresAt: row.expires_at ?? undefined,
      revokedAt: row.revoked_at ?? undefined,
      lastUsedAt: row.last_used_at ?? undefined,
    };
  }
}

function splitScopes(scopes: string): string[] {
  return scopes === "" ? [] : scopes.split(" ");
}

function bindingOf(row: KeyRow): RunBinding | undefined {
  if (row.experiment === null || row.variation === null || row.run === null) return undefined;
  return { experiment: row.experiment, variation: row.variation, run: row.run };
}
