import { decodeJwt, decodeProtectedHeader, type JWTPayload } from "jose";
import type { Identity } from "../auth/identity.js";
import { SCOPE_TOKEN } from "../auth/scope.js";
import type { TokenResult } from "../auth/token.js";
import type { IssuerConfig } from "../config/issuers.js";

type Failure = Extract<TokenResult, { ok: false }>;

/**
 * Header parameters that would let the token choose its own verification key
 * (`jwk`, `jku`, `x5u`, `x5c`) or demand extension processing (`crit`). Keys
 * come only from the configured JWKS, so these are refused outright.
 */
const FORBIDDEN_HEADER_PARAMETERS = ["jwk", "jku", "x5u", "x5c", "crit"] as const;

export function invalid(reason: string): Failure {
  return { ok: false, code: "invalid_token", reason };
}

/** What an unverified token claims about itself: enough to choose its issuer and key. */
export interface Unverified {
  readonly issuer: unknown;
  readonly alg: unknown;
  readonly kid: unknown;
}

/**
 * Phase 1 of a verification: an unverified parse, only to choose the issuer
 * and key. Nothing read here is trusted until jose has checked the signature.
 * Refuses what is not a compact JWS with canonical segments, and headers that
 * would pick their own key.
 */
export function readUnverified(token: string): Unverified | Failure {
  const segments = token.split(".");
  if (segments.length !== 3 || !segments.every(isCanonicalBase64url)) {
    return invalid("not a compact JWS with canonical base64url segments");
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch {
    return invalid("header or payload is not a JSON object");
  }
  const forbidden = FORBIDDEN_HEADER_PARAMETERS.find((name) => Object.hasOwn(header, name));
  if (forbidden !== undefined) return invalid(`"${forbidden}" header parameter is not accepted`);
  return { issuer: payload.iss, alg: header.alg, kid: header.kid };
}

/**
 * Phase 4: the identity a verified token's claims describe, per its issuer's
 * configuration (subject, tenant and scope claims, role). Checks what jose
 * leaves out: an `iat` in the future, and a subject that is missing.
 */
export function identityOf(
  claims: JWTPayload,
  config: IssuerConfig,
  at: number,
): Identity | Failure {
  // jose checks iat only together with maxTokenAge; a token issued in the
  // future means a broken or hostile issuer clock.
  if (typeof claims.iat === "number" && claims.iat * 1000 > at + config.clock_tolerance * 1000) {
    return invalid("iat is in the future");
  }
  const subject = readString(claims, config.subject_claim);
  if (subject === undefined) {
    return invalid(`"${config.subject_claim}" claim missing or not a string`);
  }
  return {
    kind: "jwt",
    subject,
    keyId: readString(claims, "jti") ?? "",
    tenant: readString(claims, config.tenant_claim) ?? "",
    scopes: readScopes(claims[config.scopes_claim]),
    expiresAt: (claims.exp ?? 0) * 1000,
    binding: undefined,
    role: config.role,
    issuer: config.issuer,
  };
}

/**
 * A segment must be the one canonical base64url spelling of its bytes. The
 * decoder ignores stray characters and unused trailing bits, so without this
 * check several different strings would verify as the same token.
 */
function isCanonicalBase64url(segment: string): boolean {
  return Buffer.from(segment, "base64url").toString("base64url") === segment;
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
