import { errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from "jose";
import type { Identity } from "../auth/identity.js";
import type { TokenResult } from "../auth/token.js";
import { identityOf, invalid, readUnverified } from "./claims.js";
import type { IssuerKeySet, TrustedKey } from "./key-set.js";

/** What the verified-token cache remembers of one token. */
export interface CachedVerification {
  readonly identity: Identity;
  readonly issuer: string;
  /** The {@link TrustedKey.fingerprint} of the key that verified it. */
  readonly fingerprint: string;
}

/** An issuer's key set with what its tokens are verified against. */
export interface Issuer {
  readonly keys: IssuerKeySet;
  readonly algorithms: ReadonlySet<string>;
  readonly verifyOptions: JWTVerifyOptions;
}

/** A verification's answer, and the cache entry to keep when there is one. */
interface Verified {
  readonly result: TokenResult;
  readonly remember?: { readonly entry: CachedVerification; readonly ttl: number };
}

/**
 * One token through the four phases: unverified parse (which issuer, which
 * key), key set (loaded on demand for an unknown kid), signature and
 * registered claims (jose), then the identity the claims describe.
 */
export async function verifyToken(
  issuers: ReadonlyMap<string, Issuer>,
  token: string,
  at: number,
  counters: { verifications: number },
): Promise<Verified> {
  const unverified = readUnverified(token);
  if ("ok" in unverified) return { result: unverified };
  const issuer = typeof unverified.issuer === "string" ? issuers.get(unverified.issuer) : undefined;
  if (issuer === undefined) return { result: invalid("unknown issuer") };
  // Checked here as well as by jose so that `none` and HS* never reach key selection.
  if (typeof unverified.alg !== "string" || !issuer.algorithms.has(unverified.alg)) {
    return { result: invalid("algorithm not allowed for this issuer") };
  }
  const kid = unverified.kid;
  if (kid !== undefined && typeof kid !== "string")
    return { result: invalid("kid is not a string") };

  // An unknown kid may mean the IdP rotated keys.
  const set = issuer.keys;
  if (set.keys === undefined || (kid !== undefined && !set.kids.has(kid))) await set.demandLoad();
  const keys = set.keys;
  if (keys === undefined) {
    return { result: { ok: false, code: "unavailable", reason: "issuer JWKS has never loaded" } };
  }
  if (kid !== undefined && !set.kids.has(kid)) {
    return { result: invalid("no key in the issuer JWKS has this kid") };
  }

  counters.verifications++;
  let verified: { payload: JWTPayload; key: TrustedKey };
  try {
    verified = await verifyWithKeys(token, keys, kid, {
      ...issuer.verifyOptions,
      currentDate: new Date(at),
    });
  } catch (error) {
    if (error instanceof errors.JWTExpired) {
      return { result: { ok: false, code: "token_expired", reason: "exp is in the past" } };
    }
    // jose messages are fixed strings that never quote the token.
    if (error instanceof errors.JOSEError)
      return { result: invalid(`${error.code}: ${error.message}`) };
    throw error;
  }

  const identity = identityOf(verified.payload, set.config, at);
  if ("ok" in identity) return { result: identity };
  const result: TokenResult = { ok: true, identity };
  const ttl = Math.floor((identity.expiresAt ?? 0) - at);
  const fingerprint = verified.key.fingerprint;
  // A key set that changed while this token was being verified may have
  // withdrawn its key after the sweep ran: such a verification answers
  // this request but is not remembered.
  if (ttl <= 0 || !set.fingerprints.has(fingerprint)) return { result };
  return { result, remember: { entry: { identity, issuer: set.config.issuer, fingerprint }, ttl } };
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
