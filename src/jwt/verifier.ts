import { hash } from "node:crypto";
import { MAX_TOKEN_LENGTH, type TokenResult } from "../auth/token.js";
import type { IssuerConfig } from "../config/issuers.js";
import { boundedCache } from "../lib/bounded-cache.js";
import type { Logger } from "../lib/log.js";
import type { MaybePromise } from "../lib/maybe-async.js";
import { invalid } from "./claims.js";
import { IssuerKeySet, type KeySetContext } from "./key-set.js";
import { type CachedVerification, type Issuer, verifyToken } from "./verify-token.js";

/** Options for {@link createJwtVerifier}. */
export interface JwtVerifierOptions {
  readonly issuers: readonly IssuerConfig[];
  readonly logger: Logger;
  /** Max entries in the verified-token cache; default 10_000. */
  readonly cacheMaxEntries?: number;
  /** JWKS fetch timeout, ms; default 2000. */
  readonly fetchTimeoutMs?: number;
  /**
   * Min ms between loads triggered by requests (an unknown `kid`, or a JWKS
   * that never loaded), per issuer; default 30_000. Also the retry period of
   * a `jwks_uri` that has never loaded.
   */
  readonly refetchCooldownMs?: number;
  /** How old a `jwks_uri` key set may get before it is refetched in the background, ms; default 600_000. */
  readonly refreshIntervalMs?: number;
  /** Poll interval of the `jwks_file` watcher, ms; default 1000. */
  readonly fileWatchIntervalMs?: number;
  /** Clock, epoch ms; default Date.now. For tests. */
  readonly now?: () => number;
}

/**
 * Outcome of {@link JwtVerifier.verify}: an identity, or a deny code from
 * DESIGN's closed set; the pipeline's TokenResult. `reason` is for logs only
 * and never contains the token or any value taken from it.
 */
export type JwtResult = TokenResult;

/** One issuer's key-set health, for `/readyz`. */
export interface IssuerStatus {
  readonly issuer: string;
  /** The key set has loaded at least once (later failures keep the cached keys). */
  readonly loaded: boolean;
  /** Why the most recent load failed; absent once a load succeeds. */
  readonly lastError?: string;
  /** Epoch ms of the last successful load. */
  readonly lastFetchAt?: number;
}

/** Counters for metrics and tests. */
export interface JwtVerifierStats {
  /** Signature verifications performed (cache misses that reached jose). */
  readonly verifications: number;
  readonly cacheHits: number;
  /** JWKS load attempts, from a URL or a file. */
  readonly jwksFetches: number;
  readonly jwksFailures: number;
  /** Cached verifications dropped because their verifying key left the issuer's key set. */
  readonly cacheInvalidations: number;
}

/** Verifies bearer JWTs against the configured issuers' JWKS. */
export interface JwtVerifier {
  /**
   * Never throws (fails closed with a result). A token verified before and
   * not yet expired is answered synchronously, from the cache.
   */
  verify(token: string): MaybePromise<JwtResult>;
  /** Fetch/load every issuer's JWKS once; resolves when all attempts finished (failures logged, not thrown). */
  start(): Promise<void>;
  /** true when every issuer's JWKS has loaded at least once. */
  ready(): boolean;
  /** Per issuer: loaded?, last error, last fetch time. For /readyz. */
  status(): readonly IssuerStatus[];
  /** Counters for metrics and tests: signature verifications performed, cache hits, jwks fetches, jwks fetch failures. */
  stats(): JwtVerifierStats;
  /** Stops the file watchers and the refresh timer, aborts fetches in flight, empties the cache. */
  close(): void;
}

const DEFAULT_CACHE_MAX_ENTRIES = 10_000;
const DEFAULT_FETCH_TIMEOUT_MS = 2_000;
const DEFAULT_REFETCH_COOLDOWN_MS = 30_000;
const DEFAULT_REFRESH_INTERVAL_MS = 600_000;
const DEFAULT_FILE_WATCH_INTERVAL_MS = 1_000;
const MIN_TIMER_TICK_MS = 1_000;

/**
 * Creates the JWT verifier. Call `start()` to load the key sets; `verify()`
 * before that loads a missing key set on demand. Throws at once on a
 * contradictory configuration (two entries with the same `issuer`).
 *
 * Its methods share the cache, the counters and the key sets, so they stay
 * together in one closure; the verification itself is verify-token.ts.
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const now = options.now ?? Date.now;
  const counters = {
    verifications: 0,
    cacheHits: 0,
    jwksFetches: 0,
    jwksFailures: 0,
    cacheInvalidations: 0,
  };
  const closing = new AbortController();
  let refreshTimer: NodeJS.Timeout | undefined;
  let started = false;
  // Keyed by the token's SHA-256 so the cache never holds a bearer token;
  // per-entry ttl ends each entry at the token's exp.
  const cache = boundedCache<string, CachedVerification>(
    options.cacheMaxEntries ?? DEFAULT_CACHE_MAX_ENTRIES,
    { perf: { now } },
  );
  const context: KeySetContext = {
    log: options.logger.child({ name: "jwt" }),
    now,
    fetchTimeoutMs: options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
    refetchCooldownMs: options.refetchCooldownMs ?? DEFAULT_REFETCH_COOLDOWN_MS,
    refreshIntervalMs: options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS,
    fileWatchIntervalMs: options.fileWatchIntervalMs ?? DEFAULT_FILE_WATCH_INTERVAL_MS,
    closing: closing.signal,
    counters,
    forgetWithdrawn(issuer, kept) {
      const stale = [...cache.entries()]
        .filter(([, entry]) => entry.issuer === issuer && !kept.has(entry.fingerprint))
        .map(([cacheKey]) => cacheKey);
      for (const cacheKey of stale) cache.delete(cacheKey);
      counters.cacheInvalidations += stale.length;
      return stale.length;
    },
  };
  const issuers = issuersOf(options.issuers, context);
  const sets = [...issuers.values()].map((issuer) => issuer.keys);

  async function verifyAndRemember(token: string, cacheKey: string, at: number) {
    const { result, remember } = await verifyToken(issuers, token, at, counters);
    if (remember) cache.set(cacheKey, remember.entry, { ttl: remember.ttl });
    return result;
  }

  return {
    verify(token) {
      // The size cap comes before anything that costs work proportional to the token.
      if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return invalid(`token empty or longer than ${MAX_TOKEN_LENGTH} characters`);
      }
      try {
        const at = now();
        const cacheKey = hash("sha256", token, "base64url");
        const cached = cache.get(cacheKey);
        if (cached !== undefined && (cached.identity.expiresAt ?? 0) > at) {
          counters.cacheHits++;
          return { ok: true, identity: cached.identity };
        }
        return verifyAndRemember(token, cacheKey, at).catch(failed);
      } catch (error) {
        return failed(error);
      }
    },
    async start() {
      if (started) return;
      started = true;
      for (const set of sets) set.watch();
      const tick = Math.max(
        MIN_TIMER_TICK_MS,
        Math.min(context.refetchCooldownMs, context.refreshIntervalMs),
      );
      refreshTimer = setInterval(() => {
        for (const set of sets) set.refreshIfStale(now());
      }, tick);
      refreshTimer.unref();
      await Promise.all(sets.map((set) => set.load("start")));
    },
    ready: () => sets.every((set) => set.keys !== undefined),
    status: () =>
      sets.map((set) => ({
        issuer: set.config.issuer,
        loaded: set.keys !== undefined,
        ...(set.lastError !== undefined && { lastError: set.lastError }),
        ...(set.lastLoadedAt !== undefined && { lastFetchAt: set.lastLoadedAt }),
      })),
    stats: () => ({ ...counters }),
    close() {
      closing.abort();
      if (refreshTimer !== undefined) clearInterval(refreshTimer);
      for (const set of sets) set.unwatch();
      cache.clear();
    },
  };
}

/** Each configured issuer with its key set; two entries for one issuer is a contradiction. */
function issuersOf(
  configs: readonly IssuerConfig[],
  context: KeySetContext,
): ReadonlyMap<string, Issuer> {
  const issuers = new Map<string, Issuer>();
  for (const config of configs) {
    if (issuers.has(config.issuer)) throw new Error(`duplicate issuer ${config.issuer}`);
    issuers.set(config.issuer, {
      keys: new IssuerKeySet(config, context),
      algorithms: new Set(config.algorithms),
      verifyOptions: {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: [...config.algorithms],
        clockTolerance: config.clock_tolerance,
        // A token without exp would never expire; fail closed.
        requiredClaims: ["exp"],
      },
    });
  }
  return issuers;
}

// Fail closed on anything unexpected; the name only, as a message from a
// JSON parser could quote part of the token.
function failed(error: unknown): JwtResult {
  return invalid(`verification failed: ${error instanceof Error ? error.name : typeof error}`);
}
