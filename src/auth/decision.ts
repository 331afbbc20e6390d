import { randomUUID } from "node:crypto";
import type { Identity } from "./identity.js";
import { SCOPE_TOKEN } from "./scope.js";

/**
 * The closed set of deny codes (DESIGN "Decisions"). They are stable: they
 * appear in deny bodies, `WWW-Authenticate`, logs and metric labels.
 */
export type DenyCode =
  | "missing_credential"
  | "invalid_token"
  | "key_revoked"
  | "key_expired"
  | "token_expired"
  | "insufficient_scope"
  | "key_disabled"
  | "ip_not_allowed"
  | "rate_limited"
  | "unavailable";

/** gRPC status codes keyward answers with (google.rpc.Code). */
export const GrpcCode = {
  OK: 0,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

interface Outcome {
  readonly httpStatus: number;
  readonly grpcCode: number;
  readonly message: string;
  /**
   * Whether the deny carries a Bearer `WWW-Authenticate` challenge. RFC 6750
   * section 3 applies to a credential that is missing, invalid or too narrow
   * (401, and 403 insufficient_scope); presenting another credential does not
   * help a client at the wrong address or over its rate, so those go without.
   * `unavailable` keeps it (a 503 has always carried it: proxies copy it).
   */
  readonly challenge: boolean;
}

/** The one table that maps a deny code to its HTTP status, gRPC code and message. */
export const OUTCOMES: Readonly<Record<DenyCode, Outcome>> = {
  missing_credential: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "No bearer credential was presented.",
    challenge: true,
  },
  invalid_token: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The credential is not valid.",
    challenge: true,
  },
  key_revoked: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The API key has been revoked.",
    challenge: true,
  },
  key_expired: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The API key has expired.",
    challenge: true,
  },
  token_expired: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The access token has expired.",
    challenge: true,
  },
  insufficient_scope: {
    httpStatus: 403,
    grpcCode: GrpcCode.PERMISSION_DENIED,
    message: "The credential does not grant access to this route.",
    challenge: true,
  },
  key_disabled: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The API key is suspended.",
    challenge: true,
  },
  ip_not_allowed: {
    httpStatus: 403,
    grpcCode: GrpcCode.PERMISSION_DENIED,
    message: "The API key may not be used from this address.",
    challenge: false,
  },
  rate_limited: {
    httpStatus: 429,
    grpcCode: GrpcCode.RESOURCE_EXHAUSTED,
    message: "The API key's rate limit is exceeded.",
    challenge: false,
  },
  unavailable: {
    httpStatus: 503,
    grpcCode: GrpcCode.UNAVAILABLE,
    message: "The authorization service cannot decide right now.",
    challenge: true,
  },
};

export interface Allow {
  readonly allow: true;
  readonly decisionId: string;
  /**
   * Who is calling. Undefined only on a shadow allow whose credential proved
   * nobody (missing, malformed, unknown): the request goes upstream with no
   * identity, and any client-sent identity header is still removed.
   */
  readonly identity: Identity | undefined;
  /**
   * Shadow mode (DESIGN "Route policy"): the deny keyward would have sent,
   * recorded in the log, the metadata and the metrics but not enforced. It
   * shares this allow's decision id.
   */
  readonly shadowDeny?: Deny;
}

export interface Deny {
  readonly allow: false;
  readonly decisionId: string;
  readonly code: DenyCode;
  /** Scopes the route required; reported on insufficient_scope. */
  readonly requiredScopes?: readonly string[];
  /** For the log only (never sent to the client): why, and which key. */
  readonly reason?: string;
  readonly keyId?: string;
  readonly kind?: string;
  readonly cause?: unknown;
  /** On rate_limited: the key's limit and when a request would next pass (response headers). */
  readonly limit?: LimitState;
  /**
   * The identity the credential proved when the deny is about the route
   * (insufficient_scope): a shadow allow passes it upstream. Never in a deny
   * answer.
   */
  readonly identity?: Identity;
}

/** A key's rate limit as a rate_limited deny reports it. */
export interface LimitState {
  /** Requests per window (the policy's quota). */
  readonly requests: number;
  readonly perSeconds: number;
  /** Whole seconds until one more request would pass (at least 1). */
  readonly retryAfterSeconds: number;
}

/** What the pipeline concludes about one request. */
export type Decision = Allow | Deny;

/**
 * The `WWW-Authenticate` value for a deny (RFC 6750 section 3), or undefined
 * for a code that carries no challenge (see {@link Outcome.challenge}).
 */
export function wwwAuthenticate(deny: Deny): string | undefined {
  if (!OUTCOMES[deny.code].challenge) return undefined;
  if (deny.code === "missing_credential") return 'Bearer realm="keyward"';
  let value = `Bearer realm="keyward", error="${deny.code}"`;
  // Only RFC 6749 scope-tokens go in the challenge: a stray quote or
  // backslash in a route's configuration must not break the header.
  const scopes =
    deny.code === "insufficient_scope"
      ? (deny.requiredScopes ?? []).filter((scope) => SCOPE_TOKEN.test(scope))
      : [];
  if (scopes.length > 0) value += `, scope="${scopes.join(" ")}"`;
  return value;
}

/**
 * The headers every transport sends with a deny besides its content type:
 * the challenge (when the code has one) and, on rate_limited, `retry-after`
 * with the IETF `ratelimit-policy` / `ratelimit` fields
 * (draft-ietf-httpapi-ratelimit-headers: quota `q` per window `w` seconds,
 * `r` remaining, `t` seconds until it resets).
 */
export function denyHeaders(deny: Deny): [string, string][] {
  const headers: [string, string][] = [];
  const challenge = wwwAuthenticate(deny);
  if (challenge !== undefined) headers.push(["www-authenticate", challenge]);
  const limit = deny.code === "rate_limited" ? deny.limit : undefined;
  if (limit !== undefined) {
    const wait = String(limit.retryAfterSeconds);
    headers.push(
      ["retry-after", wait],
      ["ratelimit-policy", `"key";q=${limit.requests};w=${limit.perSeconds}`],
      ["ratelimit", `"key";r=0;t=${wait}`],
    );
  }
  return headers;
}

/** The JSON deny body every transport sends. */
export function denyBody(deny: Deny): string {
  return JSON.stringify({
    error: deny.code,
    message: OUTCOMES[deny.code].message,
    decision_id: deny.decisionId,
  });
}

/** A fresh decision id: appears in the deny body, the log line and the dynamic metadata. */
export function newDecisionId(): string {
  return randomUUID();
}

/** A deny with a fresh decision id; `details` are for the log (and the scopes for the challenge). */
export function deny(
  code: DenyCode,
  details: Omit<Deny, "allow" | "decisionId" | "code"> = {},
): Deny {
  return { allow: false, decisionId: newDecisionId(), code, ...details };
}

/**
 * The allow a shadow-mode route answers in place of `would`: the request
 * goes upstream (with the identity the credential proved, if any) and the
 * deny is kept for the log, the metadata and the metrics.
 */
export function shadowAllow(would: Deny): Allow {
  return { allow: true, decisionId: would.decisionId, identity: would.identity, shadowDeny: would };
}

/** A transport's own fault (undecodable request, handler error): a 503 deny that keeps its cause for the log. */
export function faultDeny(reason: string, cause?: unknown): Deny {
  return deny("unavailable", { reason, cause });
}

/** True when a result is a deny rather than an identity. */
export function isDeny(value: Identity | Deny): value is Deny {
  return "allow" in value;
}
