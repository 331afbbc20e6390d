import { hash } from "node:crypto";
import { type Stats, unwatchFile, watchFile } from "node:fs";
import { readFile } from "node:fs/promises";
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWK,
  type JWTPayload,
  type JWTVerifyOptions,
  jwtVerify,
  type LocalJWKSet,
} from "jose";
import type { Identity } from "../auth/identity.js";
import { SCOPE_TOKEN } from "../auth/scope.js";
import type { TokenResult } from "../auth/token.js";
import type { IssuerConfig } from "../config/issuers.js";
import { boundedCache } from "../lib/bounded-cache.js";
import type { Logger } from "../lib/log.js";
import type { MaybePromise } from "../lib/maybe-async.js";

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

/** Longest token accepted; anything larger is refused before it is parsed. */
export const MAX_TOKEN_LENGTH = 8 * 1024;
/** Largest JWKS document read; an IdP key set is a few KiB. */
export const MAX_JWKS_BYTES = 1024 * 1024;
const DEFAULT_CACHE_MAX_ENTRIES = 10_000;
const DEFAULT_FETCH_TIMEOUT_MS = 2_000;
const DEFAULT_REFETCH_COOLDOWN_MS = 30_000;
const DEFAULT_REFRESH_INTERVAL_MS = 600_000;
const DEFAULT_FILE_WATCH_INTERVAL_MS = 1_000;
const MIN_TIMER_TICK_MS = 1_000;

/**
 * Header parameters that would let the token choose its own verification key
 * (`jwk`, `jku`, `x5u`, `x5c`) or demand extension processing (`crit`). Keys
 * come only from the configured JWKS, so these are refused outright.
 */
const FORBIDDEN_HEADER_PARAMETERS = ["jwk", "jku", "x5u", "x5c", "crit"] as const;
/** Key types that can hold an asymmetric public key; `oct` (a shared secret) is never loaded. */
const PUBLIC_KEY_TYPES = new Set(["RSA", "EC", "OKP"]);

type Failure = Extract<JwtResult, { ok: false }>;

/**
 * One public key of an issuer's set. `keySet` holds this key alone, so jose's
 * own selection rules (kid, alg, kty/crv, use, key_ops) decide whether it fits
 * a token, and a successful verification says exactly which key it was.
 */
interface TrustedKey {
  readonly kid: string | undefined;
  /** Identifies the key material and how it may be used; see {@link keyFingerprint}. */
  readonly fingerprint: string;
  readonly keySet: LocalJWKSet;
}

/** What the verified-token cache remembers of one token. */
interface CachedVerification {
  readonly identity: Identity;
  readonly issuer: string;
  /** The {@link TrustedKey.fingerprint} of the key that verified it. */
  readonly fingerprint: string;
}
type LoadTrigger = "start" | "unknown kid" | "on demand" | "refresh" | "retry" | "file changed";

interface IssuerState {
  readonly config: IssuerConfig;
  readonly algorithms: ReadonlySet<string>;
  readonly verifyOptions: JWTVerifyOptions;
  /** The loaded public keys; undefined until the first successful load. */
  keys: readonly TrustedKey[] | undefined;
  kids: ReadonlySet<string>;
  fingerprints: ReadonlySet<string>;
  lastError: string | undefined;
  lastLoadedAt: number | undefined;
  lastAttemptAt: number | undefined;
  /** Last load a request caused; the cooldown is measured from here. */
  lastDemandAt: number | undefined;
  loading: Promise<void> | undefined;
  watcher: ((current: Stats, previous: Stats) => void) | undefined;
}

function invalid(reason: string): Failure {
  return { ok: false, code: "invalid_token", reason };
}

/**
 * A segment must be the one canonical base64url spelling of its bytes. The
 * decoder ignores stray characters and unused trailing bits, so without this
 * check several different strings would verify as the same token.
 */
function isCanonicalBase64url(segment: string): boolean {
  return Buffer.from(segment, "base64url").toString("base64url") === segment;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `scope` is a space-separated string, `permissions` a list; either claim may use either shape. */
function readScopes(value: unknown): string[] {
  const candidates: unknown[] =
    typeof value === "string" ? value.split(" ") : Array.isArray(value) ? value : [];
  // A list entry holding a space would turn into two scopes once the
  // identity headers join them with spaces, so only well-formed scope tokens pass.
  const scopes = candidates.filter(
    (s): s is string => typeof s === "string" && SCOPE_TOKEN.test(s),
  );
  return [...new Set(scopes)];
}

function readString(claims: JWTPayload, name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const value = claims[name];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** A log-safe description of a load failure (JWKS content is public; tokens never reach here). */
function describeLoadError(error: unknown, timeoutMs: number): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === "TimeoutError") return `timed out after ${timeoutMs} ms`;
  const cause = error.cause;
  if (isRecord(cause) && typeof cause.code === "string") return `${error.message} (${cause.code})`;
  return error.message;
}

async function readCapped(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > limit) {
    await response.body?.cancel();
    throw new Error(`JWKS larger than ${limit} bytes`);
  }
  if (response.body === null) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > limit) throw new Error(`JWKS larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The public signing keys of a JWK Set document; throws when there are none. */
function publicKeys(document: unknown): JWK[] {
  if (!isRecord(document) || !Array.isArray(document.keys)) {
    throw new Error('not a JWK Set (no "keys" array)');
  }
  // Private or symmetric members are dropped: a key set is only ever used to
  // verify, and a shared secret in it would re-open algorithm confusion.
  const keys = document.keys.filter(
    (key): key is JWK =>
      isRecord(key) &&
      typeof key.kty === "string" &&
      PUBLIC_KEY_TYPES.has(key.kty) &&
      !("d" in key),
  );
  if (keys.length === 0) throw new Error("JWK Set holds no public signing keys");
  return keys;
}

/**
 * What a cached verification depends on: the RFC 7638 thumbprint of the key
 * material (so a `kid` that now names other material is a different key, and
 * a key without `kid` is still told apart), plus the members that decide
 * which tokens the key may verify (`kid`, `alg`, `use`, `key_ops`). Any change
 * to them drops what the key verified; the cost is one re-verification.
 */
async function keyFingerprint(jwk: JWK): Promise<string> {
  const thumbprint = await calculateJwkThumbprint(jwk, "sha256");
  const usage = [jwk.kid ?? null, jwk.alg ?? null, jwk.use ?? null, jwk.key_ops ?? null];
  return `${thumbprint}.${hash("sha256", JSON.stringify(usage), "base64url")}`;
}

/** The issuer's keys as {@link TrustedKey}s; a member whose thumbprint cannot be computed is unusable and left out. */
async function trustedKeys(keys: readonly JWK[]): Promise<TrustedKey[]> {
  const trusted = await Promise.all(
    keys.map(async (jwk) => {
      try {
        const fingerprint = await keyFingerprint(jwk);
        const kid = typeof jwk.kid === "string" ? jwk.kid : undefined;
        return [{ kid, fingerprint, keySet: createLocalJWKSet({ keys: [jwk] }) }];
      } catch {
        return [];
      }
    }),
  );
  const usable = trusted.flat();
  if (usable.length === 0) throw new Error("JWK Set holds no usable public signing keys");
  return usable;
}

/**
 * Tries the token against each candidate key, one at a time, and says which
 * one verified it. A token with a `kid` has one candidate in practice; one
 * without is tried against every key that fits its `alg` (bounded by the size
 * of the trusted key set). Errors other than "this key does not fit" or "the
 * signature does not match" (expired, wrong audience, ...) come from the key
 * that did verify the signature and end the search.
 */
async function verifyWithKeys(
  token: string,
  keys: readonly TrustedKey[],
  kid: string | undefined,
  options: JWTVerifyOptions,
): Promise<{ payload: JWTPayload; key: TrustedKey }> {
  let failure: errors.JOSEError = new errors.JWKSNoMatchingKey();
  for (const key of keys) {
    if (kid !== undefined && key.kid !== kid) continue;
    try {
      const { payload } = await jwtVerify(token, key.keySet, options);
      return { payload, key };
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) continue;
      if (!(error instanceof errors.JWSSignatureVerificationFailed)) throw error;
      failure = error;
    }
  }
  throw failure;
}

/**
 * Creates the JWT verifier. Call `start()` to load the key sets; `verify()`
 * before that loads a missing key set on demand. Throws at once on a
 * contradictory configuration (two entries with the same `issuer`).
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const log = options.logger.child({ name: "jwt" });
  const now = options.now ?? Date.now;
  const fetchTimeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const refetchCooldownMs = options.refetchCooldownMs ?? DEFAULT_REFETCH_COOLDOWN_MS;
  const refreshIntervalMs = options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
  const fileWatchIntervalMs = options.fileWatchIntervalMs ?? DEFAULT_FILE_WATCH_INTERVAL_MS;
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
  const cacheMaxEntries = options.cacheMaxEntries ?? DEFAULT_CACHE_MAX_ENTRIES;
  const cache = boundedCache<string, CachedVerification>(cacheMaxEntries, { perf: { now } });

  const issuers = new Map<string, IssuerState>();
  for (const config of options.issuers) {
    if (issuers.has(config.issuer)) throw new Error(`duplicate issuer ${config.issuer}`);
    issuers.set(config.issuer, {
      config,
      algorithms: new Set(config.algorithms),
      verifyOptions: {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: [...config.algorithms],
        clockTolerance: config.clock_tolerance,
        // A token without exp would never expire; fail closed.
        requiredClaims: ["exp"],
      },
      keys: undefined,
      kids: new Set(),
      fingerprints: new Set(),
      lastError: undefined,
      lastLoadedAt: undefined,
      lastAttemptAt: undefined,
      lastDemandAt: undefined,
      loading: undefined,
      watcher: undefined,
    });
  }

  async function readDocument(config: IssuerConfig): Promise<unknown> {
    // One controller with its own timer (not AbortSignal.any/timeout: on
    // Node 20 a combined timeout signal can be garbage-collected before it
    // fires, leaving a hung IdP holding the load for minutes).
    const controller = new AbortController();
    const timer = setTimeout(
      () =>
        controller.abort(new DOMException(`timed out after ${fetchTimeoutMs} ms`, "TimeoutError")),
      fetchTimeoutMs,
    );
    const stop = () => controller.abort();
    closing.signal.addEventListener("abort", stop, { once: true });
    const signal = controller.signal;
    try {
      if (config.jwks_uri === undefined) {
        return JSON.parse(await readFile(config.jwks_file ?? "", { encoding: "utf8", signal }));
      }
      const response = await fetch(config.jwks_uri, {
        signal,
        headers: { accept: "application/json" },
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`HTTP ${response.status} from jwks_uri`);
      }
      return JSON.parse(await readCapped(response, MAX_JWKS_BYTES));
    } catch (error) {
      // Report the timeout as such, whichever layer noticed the abort.
      if (
        signal.aborted &&
        signal.reason instanceof DOMException &&
        signal.reason.name === "TimeoutError"
      ) {
        throw signal.reason;
      }
      throw error;
    } finally {
      clearTimeout(timer);
      closing.signal.removeEventListener("abort", stop);
    }
  }

  async function loadOnce(state: IssuerState, trigger: LoadTrigger): Promise<void> {
    const issuer = state.config.issuer;
    counters.jwksFetches++;
    state.lastAttemptAt = now();
    try {
      const keys = await trustedKeys(publicKeys(await readDocument(state.config)));
      const fingerprints = new Set(keys.map((key) => key.fingerprint));
      const withdrawn = [...state.fingerprints].some((fp) => !fingerprints.has(fp));
      state.keys = keys;
      state.kids = new Set(keys.flatMap((key) => (key.kid === undefined ? [] : [key.kid])));
      state.fingerprints = fingerprints;
      state.lastError = undefined;
      state.lastLoadedAt = now();
      // A withdrawn key must stop working now, not when the tokens it
      // verified expire. Only what that key verified goes: the rest of the
      // cache, other keys' and other issuers' tokens, stays warm.
      const dropped = withdrawn ? forgetWithdrawn(state) : 0;
      log.info({ issuer, trigger, keys: keys.length, dropped }, "JWKS loaded");
    } catch (error) {
      if (closing.signal.aborted) return;
      counters.jwksFailures++;
      state.lastError = describeLoadError(error, fetchTimeoutMs);
      // Cached keys keep working; the failure shows in status() for /readyz.
      log.warn(
        { issuer, trigger, error: state.lastError, cachedKeys: state.keys !== undefined },
        "JWKS load failed",
      );
    }
  }

  /** Drops the issuer's cached verifications whose key is no longer in its set; returns how many. */
  function forgetWithdrawn(state: IssuerState): number {
    const stale: string[] = [];
    for (const [cacheKey, entry] of cache.entries()) {
      if (entry.issuer === state.config.issuer && !state.fingerprints.has(entry.fingerprint)) {
        stale.push(cacheKey);
      }
    }
    for (const cacheKey of stale) cache.delete(cacheKey);
    counters.cacheInvalidations += stale.length;
    return stale.length;
  }

  /** One load per issuer at a time; callers arriving meanwhile share it. */
  function load(state: IssuerState, trigger: LoadTrigger): Promise<void> {
    if (state.loading !== undefined) {
      // A file edited mid-load may not be in what that load read.
      return trigger === "file changed"
        ? state.loading.then(() => load(state, trigger))
        : state.loading;
    }
    const loading = loadOnce(state, trigger).finally(() => {
      if (state.loading === loading) state.loading = undefined;
    });
    state.loading = loading;
    return loading;
  }

  /**
   * A load caused by a request. Requests are attacker-driven (any token can
   * name an invented kid), so these loads are rate-limited per issuer.
   */
  function demandLoad(state: IssuerState): Promise<void> {
    if (state.loading !== undefined) return state.loading;
    const at = now();
    if (state.lastDemandAt !== undefined && at - state.lastDemandAt < refetchCooldownMs) {
      return Promise.resolve();
    }
    state.lastDemandAt = at;
    return load(state, state.keys === undefined ? "on demand" : "unknown kid");
  }

  function refreshStale(): void {
    const at = now();
    for (const state of issuers.values()) {
      if (state.config.jwks_uri === undefined) continue; // files are watched
      const due =
        state.lastLoadedAt === undefined
          ? at - (state.lastAttemptAt ?? 0) >= refetchCooldownMs
          : at - state.lastLoadedAt >= refreshIntervalMs;
      if (due) void load(state, state.lastLoadedAt === undefined ? "retry" : "refresh");
    }
  }

  function watch(state: IssuerState): void {
    const path = state.config.jwks_file;
    if (path === undefined) return;
    state.watcher = (current, previous) => {
      if (
        current.mtimeMs !== previous.mtimeMs ||
        current.size !== previous.size ||
        current.ino !== previous.ino
      ) {
        void load(state, "file changed");
      }
    };
    // persistent: false so the watcher never keeps the process alive.
    watchFile(path, { interval: fileWatchIntervalMs, persistent: false }, state.watcher);
  }

  /** The cached verification of a token, if it has one that has not expired. */
  function fromCache(cacheKey: string, at: number): JwtResult | undefined {
    const cached = cache.get(cacheKey);
    const expiresAt = cached?.identity.expiresAt;
    if (cached !== undefined && expiresAt !== undefined && expiresAt > at) {
      counters.cacheHits++;
      return { ok: true, identity: cached.identity };
    }
    return undefined;
  }

  async function verifyToken(token: string, cacheKey: string, at: number): Promise<JwtResult> {
    // Phase 1: unverified parse, only to choose the issuer and key. Nothing
    // read here is trusted until jose has checked the signature.
    const segments = token.split(".");
    if (segments.length !== 3 || !segments.every(isCanonicalBase64url)) {
      return invalid("not a compact JWS with canonical base64url segments");
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      return invalid("header or payload is not a JSON object");
    }
    const forbidden = FORBIDDEN_HEADER_PARAMETERS.find((name) => Object.hasOwn(header, name));
    if (forbidden !== undefined) return invalid(`"${forbidden}" header parameter is not accepted`);
    const state = typeof unverified.iss === "string" ? issuers.get(unverified.iss) : undefined;
    if (state === undefined) return invalid("unknown issuer");
    // Checked here as well as by jose so that `none` and HS* never reach key selection.
    if (typeof header.alg !== "string" || !state.algorithms.has(header.alg)) {
      return invalid("algorithm not allowed for this issuer");
    }
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== "string") return invalid("kid is not a string");

    // Phase 2: key set. An unknown kid may mean the IdP rotated keys.
    if (state.keys === undefined || (kid !== undefined && !state.kids.has(kid))) {
      await demandLoad(state);
    }
    const keys = state.keys;
    if (keys === undefined) {
      return { ok: false, code: "unavailable", reason: "issuer JWKS has never loaded" };
    }
    if (kid !== undefined && !state.kids.has(kid)) {
      return invalid("no key in the issuer JWKS has this kid");
    }

    // Phase 3: signature and registered claims (iss, aud, exp, nbf, alg).
    counters.verifications++;
    let claims: JWTPayload;
    let verifiedBy: TrustedKey;
    try {
      ({ payload: claims, key: verifiedBy } = await verifyWithKeys(token, keys, kid, {
        ...state.verifyOptions,
        currentDate: new Date(at),
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) {
        return { ok: false, code: "token_expired", reason: "exp is in the past" };
      }
      // jose messages are fixed strings that never quote the token.
      if (error instanceof errors.JOSEError) return invalid(`${error.code}: ${error.message}`);
      throw error;
    }
    const config = state.config;
    const toleranceMs = config.clock_tolerance * 1000;
    // jose checks iat only together with maxTokenAge; a token issued in the
    // future means a broken or hostile issuer clock.
    if (typeof claims.iat === "number" && claims.iat * 1000 > at + toleranceMs) {
      return invalid("iat is in the future");
    }
    const subject = readString(claims, config.subject_claim);
    if (subject === undefined) {
      return invalid(`"${config.subject_claim}" claim missing or not a string`);
    }
    const expiresAt = (claims.exp ?? 0) * 1000;

    const identity: Identity = {
      kind: "jwt",
      subject,
      keyId: readString(claims, "jti") ?? "",
      tenant: readString(claims, config.tenant_claim) ?? "",
      scopes: readScopes(claims[config.scopes_claim]),
      expiresAt,
      binding: undefined,
      role: config.role,
      issuer: config.issuer,
    };
    const ttl = Math.floor(expiresAt - at);
    // A key set that changed while this token was being verified may have
    // withdrawn its key after the sweep ran: such a verification answers
    // this request but is not remembered.
    if (ttl > 0 && state.fingerprints.has(verifiedBy.fingerprint)) {
      cache.set(
        cacheKey,
        { identity, issuer: config.issuer, fingerprint: verifiedBy.fingerprint },
        { ttl },
      );
    }
    return { ok: true, identity };
  }

  // Fail closed on anything unexpected; the name only, as a message from a
  // JSON parser could quote part of the token.
  const failed = (error: unknown): JwtResult =>
    invalid(`verification failed: ${error instanceof Error ? error.name : typeof error}`);

  return {
    verify(token) {
      // The size cap comes before anything that costs work proportional to the token.
      if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return invalid(`token empty or longer than ${MAX_TOKEN_LENGTH} characters`);
      }
      try {
        const at = now();
        const cacheKey = hash("sha256", token, "base64url");
        return fromCache(cacheKey, at) ?? verifyToken(token, cacheKey, at).catch(failed);
      } catch (error) {
        return failed(error);
      }
    },

    async start() {
      if (started) return;
      started = true;
      for (const state of issuers.values()) watch(state);
      const tick = Math.max(MIN_TIMER_TICK_MS, Math.min(refetchCooldownMs, refreshIntervalMs));
      refreshTimer = setInterval(refreshStale, tick);
      refreshTimer.unref();
      await Promise.all([...issuers.values()].map((state) => load(state, "start")));
    },

    ready() {
      return [...issuers.values()].every((state) => state.keys !== undefined);
    },

    status() {
      return [...issuers.values()].map((state) => ({
        issuer: state.config.issuer,
        loaded: state.keys !== undefined,
        ...(state.lastError !== undefined && { lastError: state.lastError }),
        ...(state.lastLoadedAt !== undefined && { lastFetchAt: state.lastLoadedAt }),
      }));
    },

    stats() {
      return { ...counters };
    },

    close() {
      closing.abort();
      if (refreshTimer !== undefined) clearInterval(refreshTimer);
      for (const state of issuers.values()) {
        if (state.watcher !== undefined && state.config.jwks_file !== undefined) {
          unwatchFile(state.config.jwks_file, state.watcher);
          state.watcher = undefined;
        }
      }
      cache.clear();
    },
  };
}
