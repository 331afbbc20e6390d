import { hash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { calculateJwkThumbprint, createLocalJWKSet, type JWK, type LocalJWKSet } from "jose";
import type { IssuerConfig } from "../config/issuers.js";

/** Largest JWKS document read; an IdP key set is a few KiB. */
export const MAX_JWKS_BYTES = 1024 * 1024;
/** Key types that can hold an asymmetric public key; `oct` (a shared secret) is never loaded. */
const PUBLIC_KEY_TYPES = new Set(["RSA", "EC", "OKP"]);

/**
 * One public key of an issuer's set. `keySet` holds this key alone, so jose's
 * own selection rules (kid, alg, kty/crv, use, key_ops) decide whether it fits
 * a token, and a successful verification says exactly which key it was.
 */
export interface TrustedKey {
  readonly kid: string | undefined;
  /** Identifies the key material and how it may be used; see {@link keyFingerprint}. */
  readonly fingerprint: string;
  readonly keySet: LocalJWKSet;
}

/**
 * Reads an issuer's JWK Set (from `jwks_uri` within `timeoutMs`, at most
 * {@link MAX_JWKS_BYTES}, or from `jwks_file`) and keeps its public signing
 * keys. Throws, with a log-safe message, when there is none to keep.
 */
export async function readKeySet(
  config: IssuerConfig,
  timeoutMs: number,
  closing: AbortSignal,
): Promise<TrustedKey[]> {
  return trustedKeys(publicKeys(await readDocument(config, timeoutMs, closing)));
}

async function readDocument(
  config: IssuerConfig,
  fetchTimeoutMs: number,
  closing: AbortSignal,
): Promise<unknown> {
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
  closing.addEventListener("abort", stop, { once: true });
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
    closing.removeEventListener("abort", stop);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A log-safe description of a load failure (JWKS content is public; tokens never reach here). */
export function describeLoadError(error: unknown, timeoutMs: number): string {
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
