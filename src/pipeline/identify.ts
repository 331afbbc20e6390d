import { type Deny, deny } from "../auth/decision.js";
import type { Identity } from "../auth/identity.js";
import type { TokenResult, TokenVerifier } from "../auth/token.js";
import type { KeyVerifier, VerifiedKey } from "../keys/verifier.js";
import { whenReady } from "../lib/maybe-async.js";
import { readCredential } from "./credential.js";

/** Options for {@link createIdentifier}. */
export interface IdentifierOptions {
  readonly store: KeyVerifier;
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
            ...(key.previousUntil !== undefined && { previousSecret: true }),
            ...(key.meta !== undefined && { meta: key.meta }),
            ...(key.network !== undefined && { network: key.network }),
            ...(key.rateLimit !== undefined && { rateLimit: key.rateLimit }),
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
