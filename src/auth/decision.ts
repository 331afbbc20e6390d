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
  | "unavailable";

/** gRPC status codes keyward answers with (google.rpc.Code). */
export const GrpcCode = {
  OK: 0,
  PERMISSION_DENIED: 7,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

interface Outcome {
  readonly httpStatus: number;
  readonly grpcCode: number;
  readonly message: string;
}

/** The one table that maps a deny code to its HTTP status, gRPC code and message. */
export const OUTCOMES: Readonly<Record<DenyCode, Outcome>> = {
  missing_credential: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "No bearer credential was presented.",
  },
  invalid_token: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The credential is not valid.",
  },
  key_revoked: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The API key has been revoked.",
  },
  key_expired: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The API key has expired.",
  },
  token_expired: {
    httpStatus: 401,
    grpcCode: GrpcCode.UNAUTHENTICATED,
    message: "The access token has expired.",
  },
  insufficient_scope: {
    httpStatus: 403,
    grpcCode: GrpcCode.PERMISSION_DENIED,
    message: "The credential does not grant access to this route.",
  },
  unavailable: {
    httpStatus: 503,
    grpcCode: GrpcCode.UNAVAILABLE,
    message: "The authorization service cannot decide right now.",
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
  /**
   * The identity the credential proved when the deny is about the route
   * (insufficient_scope): a shadow allow passes it upstream. Never in a deny
   * answer.
   */
  readonly identity?: Identity;
}

/** What the pipeline concludes about one request. */
export type Decision = Allow | Deny;

/** The `WWW-Authenticate` value for a deny (RFC 6750 section 3). */
export function wwwAuthenticate(deny: Deny): string {
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
