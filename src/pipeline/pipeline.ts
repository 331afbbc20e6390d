import {
  type Decision,
  type Deny,
  deny,
  isDeny,
  newDecisionId,
  shadowAllow,
} from "../auth/decision.js";
import type { Identity } from "../auth/identity.js";
import type { RequestView } from "../auth/request-view.js";
import { type MaybePromise, whenReady } from "../lib/maybe-async.js";
import { notAdmitted, type Policy, type Requirement } from "../policy/policy.js";
import { createIdentifier, type IdentifierOptions } from "./identify.js";
import { describeRoutePath } from "./path.js";
import { createRateLimiter } from "./rate-limit.js";
import { createRouteRequirements } from "./route-requirement.js";

/** Options for {@link createPipeline}. */
export interface PipelineOptions extends IdentifierOptions {
  /** The route policy; read on every decision, so swapping it reloads. */
  readonly policy: () => Policy;
  /**
   * Whether keyward can decide at all; a string says why not (e.g. a replica
   * before its first snapshot), and every request is then a 503 deny.
   */
  readonly unavailable?: () => string | undefined;
  /** Most keys with a rate limit tracked at once (config cache.max_entries); default 100 000. */
  readonly rateLimitKeys?: number;
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
 *
 * The phases share the options and read as one chain, so they stay in one
 * closure; each phase is a short nested function.
 */
export function createPipeline(options: PipelineOptions): Pipeline {
  const identify = createIdentifier(options);
  const routeRequirement = createRouteRequirements();
  const limited = createRateLimiter({ maxKeys: options.rateLimitKeys ?? 100_000 });

  /**
   * The route's requirement. Scopes come from the proxy's per-route setting
   * when it has one (context extensions or route metadata: operator
   * configuration, not client input), else from the
   * first matching policy rule. Which credentials may come at all (`kinds:`,
   * `jwt:`) is always the policy rule's: a per-route scope list narrows or
   * widens the scopes, never the credential kinds the policy admits.
   */
  function requirementOf(view: RequestView, path: string | undefined): Requirement {
    // A requirement the proxy states but keyward cannot read is not replaced by a weaker one.
    if (view.requiredScopesProblem !== undefined) return { type: "deny" };
    const policy = options.policy();
    if (view.requiredScopes !== undefined) {
      // Parsed once per distinct string (route-requirement.ts).
      const scopes = routeRequirement(view.requiredScopes);
      // Matching costs a walk over the rules; skip it when no rule limits credentials.
      const rule =
        policy.limitsCredentials && path !== undefined
          ? policy.requirementFor(view.method, path)
          : undefined;
      if (rule?.type !== "scopes" || (rule.kinds === undefined && rule.jwt === undefined)) {
        return scopes;
      }
      return {
        ...scopes,
        ...(rule.kinds !== undefined && { kinds: rule.kinds }),
        ...(rule.jwt !== undefined && { jwt: rule.jwt }),
      };
    }
    if (path === undefined) return { type: "deny" };
    return policy.requirementFor(view.method, path);
  }

  function authorize(identity: Identity, view: RequestView): Decision {
    // A target keyward cannot read (ambiguous, undecodable) names no route:
    // a plain 403, with the reason in the deny's log line, never a fault.
    const { path, problem } = describeRoutePath(view.path);
    const requirement = requirementOf(view, path);
    if (requirement.type === "deny") {
      const reason =
        view.requiredScopesProblem ??
        (problem ? `${problem}: matches no rule` : "no rule grants this route");
      return deny("insufficient_scope", { reason, ...who(identity) });
    }
    // The rule names the credentials it admits (DESIGN "Route policy": others get 403).
    const refused = notAdmitted(requirement, identity);
    if (refused !== undefined) {
      return deny("insufficient_scope", {
        requiredScopes: requirement.scopes,
        reason: refused,
        ...who(identity),
      });
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
      if (isDeny(identity)) return identity;
      // A key bound to networks is a credential that only works from there,
      // whatever the route: checked before the route is.
      if (identity.network !== undefined && !identity.network.allows(view.clientAddress)) {
        return deny("ip_not_allowed", {
          reason: `client address ${view.clientAddress ?? "unknown"} is outside the key's allowed networks`,
          ...who(identity),
        });
      }
      const decision = authorize(identity, view);
      // Only a request that would go upstream takes a token.
      if (decision.allow && identity.rateLimit !== undefined) {
        return limited(identity, identity.rateLimit) ?? decision;
      }
      return decision;
    } catch (cause) {
      return fault(cause);
    }
  }

  /**
   * Shadow mode: a deny on a route whose mode is `shadow` becomes an allow
   * that carries it. Every deny the pipeline makes counts (unknown and
   * malformed credentials, faults included: in shadow mode the operator has
   * asked keyward to block nothing yet). If even the mode cannot be read,
   * the deny stands.
   */
  function enforced(decision: Decision, view: RequestView): Decision {
    if (decision.allow) return decision;
    try {
      const path = describeRoutePath(view.path).path;
      return options.policy().modeFor(view.method, path) === "shadow"
        ? shadowAllow(decision)
        : decision;
    } catch {
      return decision;
    }
  }

  function decideView(view: RequestView): MaybePromise<Decision> {
    try {
      const why = options.unavailable?.();
      if (why !== undefined) return deny("unavailable", { reason: why });
      return whenReady(identify(view.authorization), (found) => decide(found, view), fault);
    } catch (cause) {
      return fault(cause);
    }
  }

  return (view) => {
    const decision = decideView(view);
    // Without a shadow route anywhere, nothing more is done per request.
    return options.policy().shadows
      ? whenReady(decision, (made) => enforced(made, view))
      : decision;
  };
}

function fault(cause: unknown): Decision {
  return deny("unavailable", { reason: "internal error", cause });
}

function who(identity: Identity): { keyId: string; kind: string; identity: Identity } {
  return { keyId: identity.keyId, kind: identity.kind, identity };
}
