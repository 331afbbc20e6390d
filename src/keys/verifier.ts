import { randomBytes, timingSafeEqual } from "node:crypto";
import type { LRUCache } from "lru-cache";
import type { CredentialKind, RateLimit, RunBinding } from "../auth/identity.js";
import { boundedCache } from "../lib/bounded-cache.js";
import { type NetworkMatcher, networkMatcher } from "../lib/cidr.js";
import type { Db } from "./db.js";
import { hashKey, keyDigest, type ParsedKey } from "./format.js";
import type { KeyMetadata } from "./metadata.js";
import { bindingOf, splitScopes } from "./rows.js";
import { verifyQueries } from "./verify-queries.js";

/** What the store knows about a presented key (see {@link KeyVerifier.verify}). */
export type KeyVerdict = { readonly ok: true; readonly key: VerifiedKey } | KeyDenied;

export interface KeyDenied {
  readonly ok: false;
  readonly code: "invalid_token" | "key_revoked" | "key_expired" | "key_disabled";
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
  /**
   * Set only when the key was presented with its previous secret during a
   * rotation grace: when that secret stops verifying (epoch ms).
   */
  readonly previousUntil?: number;
  /** The key's metadata object, when it has one (Check's dynamic metadata `meta`). */
  readonly meta?: KeyMetadata;
  /** The networks the key may be used from, when it lists any. */
  readonly network?: NetworkMatcher;
  readonly rateLimit?: RateLimit;
}

/**
 * Compared against when a lookup is unknown and the table is empty, so that
 * an unknown id costs the same hash-and-compare as a wrong secret and answers
 * the same way.
 */
const DUMMY_HASH = randomBytes(32);
const HASH_LENGTH = 32;

/**
 * The Check hot path over the key table: one indexed read, one SHA-256 and
 * one constant-time compare per presented key, statements prepared once,
 * and a bounded decision cache that any commit by another connection clears.
 * Read-only: the admin API writes through the repository on a connection of
 * its own.
 */
export class KeyVerifier {
  readonly #now: () => number;
  readonly #byLookup;
  readonly #hashByLookup;
  readonly #dataVersion;
  /**
   * The decision cache: verdicts of presented keys whose secret matched,
   * keyed by the SHA-256 of the presented key (never the key). Any commit by
   * another connection (admin API, CLI, replication) clears it before the
   * next event-loop turn's first verification (see {@link KeyVerifier.verify}),
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
  /** The stored current and previous hashes of the last lookup, copied out without allocating. */
  readonly #current = Buffer.alloc(HASH_LENGTH);
  readonly #previous = Buffer.alloc(HASH_LENGTH);

  /**
   * @param cacheMaxEntries bound of the decision cache; 0 (the default) disables it.
   */
  constructor(db: Db, now: () => number = Date.now, cacheMaxEntries = 0) {
    this.#now = now;
    this.#cache = cacheMaxEntries > 0 ? boundedCache(cacheMaxEntries) : undefined;
    this.#refused =
      cacheMaxEntries > 0 ? boundedCache(Math.max(1, Math.floor(cacheMaxEntries / 10))) : undefined;
    this.#dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();
    const queries = verifyQueries(db);
    this.#hashByLookup = queries.hashes;
    this.#byLookup = queries.row;
  }

  /**
   * Verifies a presented key. Order matters: the secret is checked first so
   * that only a holder of the secret learns that a key is revoked, expired or
   * suspended (in that order: the most final answer first);
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
    if (verdict.ok) {
      const { expiresAt, previousUntil } = verdict.key;
      if (expiresAt !== undefined && expiresAt <= this.#now()) {
        return { ok: false, code: "key_expired", keyId: verdict.key.id };
      }
      // A previous secret whose grace ended is just a wrong secret.
      if (previousUntil !== undefined && previousUntil <= this.#now()) {
        return { ok: false, code: "invalid_token" };
      }
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
    const now = this.#now();
    const stored = this.#hashByLookup.get(
      now,
      DUMMY_HASH,
      parsed.lookup,
      DUMMY_HASH,
      decoy,
      DUMMY_HASH,
      DUMMY_HASH,
    ) as Buffer;
    // Fail closed (a 503) rather than compare against what the last lookup left behind.
    if (stored.length !== 2 * HASH_LENGTH) throw new Error("stored key hash has the wrong length");
    stored.copy(this.#current, 0, 0, HASH_LENGTH);
    // The previous secret is compared only when the current one did not
    // match, and then always (against the dummy when there is none), so
    // every refusal costs the same two compares.
    let previous = false;
    if (!timingSafeEqual(presented, this.#current)) {
      stored.copy(this.#previous, 0, HASH_LENGTH, 2 * HASH_LENGTH);
      if (!timingSafeEqual(presented, this.#previous)) return { ok: false, code: "invalid_token" };
      previous = true;
    }
    const row = this.#byLookup.get(parsed.lookup);
    if (!row) return { ok: false, code: "invalid_token" };
    const [id, kind, tenant, owner, scopes, experiment, variation, run, status, expiresAt] = row;
    const [, , , , , , , , , , suspendedAt, previousUntil, meta, cidrs, requests, per, burst] = row;
    if (status === "revoked") return { ok: false, code: "key_revoked", keyId: id };
    if (expiresAt !== null && expiresAt <= now)
      return { ok: false, code: "key_expired", keyId: id };
    // After expiry: resuming an expired key would not bring it back.
    if (suspendedAt !== null) return { ok: false, code: "key_disabled", keyId: id };
    return {
      ok: true,
      key: {
        id,
        kind,
        tenant,
        owner,
        scopes: splitScopes(scopes),
        expiresAt: expiresAt ?? undefined,
        binding: bindingOf({ experiment, variation, run }),
        ...(previous && previousUntil !== null && { previousUntil }),
        // Parsed once per verdict (the decision cache keeps it), never for a key without metadata.
        ...(meta !== null && { meta: JSON.parse(meta) as KeyMetadata }),
        ...(cidrs !== null && { network: networkMatcher(cidrs.split(" ")) }),
        ...(requests !== null &&
          per !== null && { rateLimit: { requests, perSeconds: per, burst: burst ?? 0 } }),
      },
    };
  }
}
