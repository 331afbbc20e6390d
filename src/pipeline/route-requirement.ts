import type { Requirement } from "../policy/policy.js";

/** How many distinct `required_scopes` strings a pipeline keeps parsed. */
export const ROUTE_REQUIREMENTS_MAX = 1024;

/**
 * Parses Envoy's per-route `context_extensions.required_scopes` (scopes
 * separated by whitespace) into a requirement, once per distinct string: an
 * Envoy sends the same few strings, one per route, on every request, so the
 * parse would otherwise cost every Check more than the policy file's
 * precompiled rules do. At most `max` strings are kept (the first ones seen:
 * they come from the proxy's route table, not from clients); a string beyond
 * that is parsed on each request, with the same result.
 */
export function createRouteRequirements(
  max: number = ROUTE_REQUIREMENTS_MAX,
): (requiredScopes: string) => Requirement {
  const parsed = new Map<string, Requirement>();
  return (requiredScopes) => {
    const known = parsed.get(requiredScopes);
    if (known !== undefined) return known;
    const requirement: Requirement = Object.freeze({
      type: "scopes",
      scopes: Object.freeze(requiredScopes.split(/\s+/).filter((scope) => scope !== "")),
    });
    if (parsed.size < max) parsed.set(requiredScopes, requirement);
    return requirement;
  };
}
