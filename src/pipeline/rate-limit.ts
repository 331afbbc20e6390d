import { type Deny, deny } from "../auth/decision.js";
import type { Identity, RateLimit } from "../auth/identity.js";
import { boundedCache } from "../lib/bounded-cache.js";

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

/** Options for {@link createRateLimiter}. */
export interface RateLimiterOptions {
  /** Most keys tracked at once; the least recently used one starts over with a full bucket. */
  readonly maxKeys: number;
  readonly now?: () => number;
}

/**
 * Native per-key rate limits: a token bucket per key, in this process only
 * (a sidecar limits its own traffic; the global limit is Envoy's rate-limit
 * service, README "Rate limits"). A key's bucket holds `burst` tokens (its
 * `requests` when no burst is set) and refills at `requests` per
 * `perSeconds`; a request takes one token or is denied `rate_limited` with
 * the seconds until one is back. Called only for identities that carry a
 * limit, so a key without one costs nothing here.
 */
export function createRateLimiter(options: RateLimiterOptions) {
  const now = options.now ?? Date.now;
  const buckets = boundedCache<string, Bucket>(options.maxKeys);
  return (identity: Identity, limit: RateLimit): Deny | undefined => {
    const capacity = limit.burst > 0 ? limit.burst : limit.requests;
    const perMs = limit.requests / (limit.perSeconds * 1000);
    const at = now();
    // One bucket per key: a changed limit applies from now on, and a
    // smaller capacity caps what is left (changing it never refills it).
    let bucket = buckets.get(identity.keyId);
    if (bucket === undefined) {
      bucket = { tokens: capacity, at };
      buckets.set(identity.keyId, bucket);
    } else {
      bucket.tokens = Math.min(capacity, bucket.tokens + Math.max(0, at - bucket.at) * perMs);
      bucket.at = at;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return undefined;
    }
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000));
    return deny("rate_limited", {
      reason: `rate limit of ${limit.requests} per ${limit.perSeconds}s exceeded`,
      keyId: identity.keyId,
      kind: identity.kind,
      limit: { requests: limit.requests, perSeconds: limit.perSeconds, retryAfterSeconds },
    });
  };
}
