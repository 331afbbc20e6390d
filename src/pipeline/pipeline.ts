import type { Policy, Requirement } from "../policy/policy.js";
import { type Decision, type Deny, newDecisionId } from "./decision.js";
import { createIdentifier, deny, type IdentifierOptions, isDeny } from "./identify.js";
import type { Identity } from "./identity.js";
import { type MaybePromise, whenReady } from "./maybe-async.js";
import { routePath } from "./path.js";
import type { RequestView } from "./request-view.js";
import { createRouteRequirements } from "./route-requirement.js";

export type { TokenResult, TokenVerifier } from "./identify.js";

/** Options for {@link createPipeline}. */
export interface PipelineOptions extends IdentifierOptions {
  /** The route policy; read on every decision, so swapping it reloads. */
  readonly policy: () => Policy;
  /**
   * Whether keyward can decide at all; a string says why not (e.g. a replica
   * before its first snapshot), and every request is then a 503 deny.
   */
  readonly unavailable?: () => string | undefined;
}

/**
 * Turns a request view into a decision. Never throws: a fault is a 503 deny.
 * Synchronous when nothing has to be waited for (an API key, a cached JWT),
 * so the common request allocates no promise; a promise otherwise (read it
 * with `whenReady`, maybe-async.ts).
 */
export type Pipeline = (view: RequestView) => MaybePromise<Decision>;

/**
 * The decision pipeline: credential → identity → route requirement →
 * authorization. Each phase either hands its result on or ends the request
 * with a deny; an unexpected error anywhere ends it with `unavailable`, so a
 * fault can never turn into an allow.
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  const identify = createIdentifier(options);
  const routeRequirement = createRouteRequirements();

  function requirementOf(view: RequestView, path: string | undefined): Requirement {
    // Envoy's per-route setting wins: it is operator configuration, not client input.
    if (view.requiredScopes !== undefined) return routeRequirement(view.requiredScopes);
    if (path === undefined) return { type: "deny" };
    return options.policy().requirementFor(view.method, path);
  }

  function authorize(identity: Identity, view: RequestView): Decision {
    const path = routePath(view.path);
    const requirement = requirementOf(view, path);
    if (requirement.type === "deny") {
      return deny("insufficient_scope", { reason: "no rule grants this route", ...who(identity) });
    }
    // every() first: the allow path allocates nothing; the missing list is for the deny log.
    if (!requirement.scopes.every((scope) => identity.scopes.includes(scope))) {
      const missing = requirement.scopes.filter((scope) => !identity.scopes.includes(scope));
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
    return { allow: true, decisionId: newDecisionId(), identity };
  }

  function decide(identity: Identity | Deny, view: RequestView): Decision {
    try {
      return isDeny(identity) ? identity : authorize(identity, view);
    } catch (cause) {
      return fault(cause);
    }
  }

  return (view) => {
    try {
      const why = options.unavailable?.();
      if (why !== undefined) return deny("unavailable", { reason: why });
      return whenReady(identify(view.authorization), (found) => decide(found, view), fault);
    } catch (cause) {
      return fault(cause);
    }
  };
}

function fault(cause: unknown): Decision {
  return deny("unavailable", { reason: "internal error", cause });
}

function who(identity: Identity): { keyId: string; kind: string } {
  return { keyId: identity.keyId, kind: identity.kind };
}
