import type { KeyStore, VerifiedKey } from "../keys/store.js";
import { readCredential } from "./credential.js";
import { type Deny, type DenyCode, newDecisionId } from "./decision.js";
import type { Identity } from "./identity.js";
import { type MaybePromise, whenReady } from "./maybe-async.js";

/** The result of verifying a JWT (implemented by src/jwt). */
export type TokenResult =
  | { readonly ok: true; readonly identity: Identity }
  | {
      readonly ok: false;
      readonly code: "invalid_token" | "token_expired" | "unavailable";
      readonly reason: string;
    };

/** Verifies bearer JWTs. Must never throw; may answer synchronously (a cached verification). */
export interface TokenVerifier {
  verify(token: string): MaybePromise<TokenResult>;
}

/** Options for {@link createIdentifier}. */
export interface IdentifierOptions {
  readonly store: KeyStore;
  /** JWT verification; undefined when no issuer is configured (every JWT is then invalid_token). */
  readonly jwt?: TokenVerifier | undefined;
  /** Called once per verified key, for last-used tracking. Must be cheap. */
  readonly onKeyUsed?: ((keyId: string) => void) | undefined;
}

/** Turns an `authorization` header value into the identity it proves, or a deny. */
export type Identifier = (
  authorization: string | undefined,
) => Identity | Deny | Promise<Identity | Deny>;

/**
 * The identity phase, shared by Check, forward-auth and the admin API:
 * classify the bearer credential, then verify it with the key store (API
 * keys, synchronously) or the JWT verifier (asynchronously).
 */
export function createIdentifier(options: IdentifierOptions): Identifier {
  const { store, jwt, onKeyUsed } = options;
  const identities = new WeakMap<VerifiedKey, Identity>();
  return (authorization) => {
    const credential = readCredential(authorization);
    switch (credential.type) {
      case "none":
        return deny("missing_credential");
      case "malformed":
        return deny("invalid_token", { reason: credential.reason });
      case "key": {
        const verdict = store.verify(credential.key, credential.token);
        if (!verdict.ok) {
          return deny(verdict.code, {
            reason: verdict.code === "invalid_token" ? "unknown key or wrong secret" : verdict.code,
            keyId: verdict.keyId ?? credential.key.lookup,
            kind: credential.key.kind,
          });
        }
        const key = verdict.key;
        onKeyUsed?.(key.id);
        // One Identity per cached verdict: the same object on every hit, which
        // also lets the response encoder find its template without hashing.
        let identity = identities.get(key);
        if (identity === undefined) {
          identity = {
            kind: key.kind,
            subject: key.owner || key.id,
            keyId: key.id,
            tenant: key.tenant,
            scopes: key.scopes,
            expiresAt: key.expiresAt,
            binding: key.binding,
          };
          identities.set(key, identity);
        }
        return identity;
      }
      case "jwt": {
        if (!jwt)
          return deny("invalid_token", { reason: "no JWT issuer is configured", kind: "jwt" });
        return whenReady(jwt.verify(credential.token), tokenIdentity);
      }
    }
  };
}

function tokenIdentity(result: TokenResult): Identity | Deny {
  return result.ok ? result.identity : deny(result.code, { reason: result.reason, kind: "jwt" });
}

/** True when an identify result is a deny rather than an identity. */
export function isDeny(value: Identity | Deny): value is Deny {
  return "allow" in value;
}

export function deny(
  code: DenyCode,
  details: Omit<Deny, "allow" | "decisionId" | "code"> = {},
): Deny {
  return { allow: false, decisionId: newDecisionId(), code, ...details };
}

/** A transport's own fault (undecodable request, handler error): a 503 deny that keeps its cause for the log. */
export function faultDeny(reason: string, cause?: unknown): Deny {
  return deny("unavailable", { reason, cause });
}
