import { randomUUID } from "node:crypto";
import type { KeyStore } from "../keys/store.js";
import type { Policy, Requirement } from "../policy/policy.js";
import { readCredential } from "./credential.js";
import type { Decision, Deny, DenyCode } from "./decision.js";
import type { Identity } from "./identity.js";
import { routePath } from "./path.js";
import type { RequestView } from "./request-view.js";

/** The result of verifying a JWT (implemented by src/jwt). */
export type TokenResult =
  | { readonly ok: true; readonly identity: Identity }
  | {
      readonly ok: false;
      readonly code: "invalid_token" | "token_expired" | "unavailable";
      readonly reason: string;
    };

/** Verifies bearer JWTs. Must never throw. */
export interface TokenVerifier {
  verify(token: string): Promise<TokenResult>;
}

/** Options for {@link createPipeline}. */
export interface PipelineOptions {
  readonly store: KeyStore;
  /** The route policy; read on every decision, so swapping it reloads. */
  readonly policy: () => Policy;
  /** JWT verification; undefined when no issuer is configured (every JWT is then invalid_token). */
  readonly jwt?: TokenVerifier | undefined;
  /** Called once per allowed key, for last-used tracking. Must be cheap. */
  readonly onKeyUsed?: (keyId: string) => void;
}

/** Turns a request view into a decision. Never throws: a fault is a 503 deny. */
export type Pipeline = (view: RequestView) => Promise<Decision>;

/**
 * The decision pipeline: credential → identity → route requirement →
 * authorization. Each phase either hands its result on or ends the request
 * with a deny; an unexpected error anywhere ends it with `unavailable`, so a
 * fault can never turn into an allow.
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { store, jwt, onKeyUsed } = options;

  async function identify(view: RequestView): Promise<Identity | Deny> {
    const credential = readCredential(view.authorization);
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
        return {
          kind: key.kind,
          subject: key.owner || key.id,
          keyId: key.id,
          tenant: key.tenant,
          scopes: key.scopes,
          expiresAt: key.expiresAt,
          binding: key.binding,
        };
      }
      case "jwt": {
        if (!jwt)
          return deny("invalid_token", { reason: "no JWT issuer is configured", kind: "jwt" });
        const result = await jwt.verify(credential.token);
        return result.ok
          ? result.identity
          : deny(result.code, { reason: result.reason, kind: "jwt" });
      }
    }
  }

  function requirementOf(view: RequestView, path: string | undefined): Requirement {
    // Envoy's per-route setting wins: it is operator configuration, not client input.
    if (view.requiredScopes !== undefined) {
      const scopes = view.requiredScopes.split(/\s+/).filter((s) => s !== "");
      return { type: "scopes", scopes };
    }
    if (path === undefined) return { type: "deny" };
    return options.policy().requirementFor(view.method, path);
  }

  function authorize(identity: Identity, view: RequestView): Decision {
    const path = routePath(view.path);
    const requirement = requirementOf(view, path);
    if (requirement.type === "deny") {
      return deny("insufficient_scope", { reason: "no rule grants this route", ...who(identity) });
    }
    const missing = requirement.scopes.filter((scope) => !identity.scopes.includes(scope));
    if (missing.length > 0) {
      return deny("insufficient_scope", {
        requiredScopes: requirement.scopes,
        reason: `missing scopes: ${missing.join(" ")}`,
        ...who(identity),
      });
    }
    // A worker key is confined to its own run, whatever the route requires.
    if (identity.binding) {
      if (path === undefined || !options.policy().withinRun(identity.binding, path)) {
        return deny("insufficient_scope", {
          reason: "worker key used outside its run",
          ...who(identity),
        });
      }
    }
    return { allow: true, decisionId: randomUUID(), identity };
  }

  return async (view) => {
    try {
      const identity = await identify(view);
      if ("allow" in identity) return identity;
      return authorize(identity, view);
    } catch (cause) {
      return deny("unavailable", { reason: "internal error", cause });
    }
  };
}

function who(identity: Identity): { keyId: string; kind: string } {
  return { keyId: identity.keyId, kind: identity.kind };
}

function deny(code: DenyCode, details: Omit<Deny, "allow" | "decisionId" | "code"> = {}): Deny {
  return { allow: false, decisionId: randomUUID(), code, ...details };
}
