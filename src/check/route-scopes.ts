import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { CheckRequestFields } from "./request-decoder.js";

/** The filter-metadata namespace keyward reads `required_scopes` under, by default. */
export const DEFAULT_METADATA_NAMESPACE = "keyward";

/** The key of the required scopes in context extensions and in metadata. */
const KEY = "required_scopes";

/** The route's required scopes as the proxy's configuration states them. */
export interface RouteScopes {
  /** Space-separated scopes; undefined when no operator source sets any (the policy file decides). */
  readonly scopes: string | undefined;
  /** Why the value set cannot be read (the request is then denied, never judged by a weaker rule). */
  readonly problem?: string;
}

/**
 * The route's `required_scopes`, from the first of these that sets it:
 *
 * 1. `context_extensions.required_scopes` (Envoy's per-route ext_authz setting);
 * 2. the route's metadata, `route_metadata_context.filter_metadata[namespace]`
 *    (Envoy's `route_metadata_context_namespaces`; Envoy Gateway and Istio
 *    can put it on a route);
 * 3. `metadata_context.filter_metadata[namespace]` (the filter's
 *    `metadata_context_namespaces`: dynamic metadata set by the proxy's own
 *    configuration).
 *
 * All three are written by whoever configures the proxy, so they take
 * precedence over the policy file. No request header is ever read here: a
 * client cannot set its own requirement. In metadata the value is a string
 * (space-separated) or a list of strings; anything else is a problem, so a
 * mistyped route fails closed rather than falling back to the policy file.
 */
export function routeScopes(
  attributes: CheckRequestFields["attributes"],
  namespace: string = DEFAULT_METADATA_NAMESPACE,
): RouteScopes {
  if (attributes === undefined) return { scopes: undefined };
  const extension = attributes.contextExtensions[KEY];
  if (extension !== undefined) return { scopes: extension };
  const sources: [string, JsonObject | undefined][] = [
    ["route metadata", attributes.routeMetadataContext?.filterMetadata[namespace]],
    ["metadata context", attributes.metadataContext?.filterMetadata[namespace]],
  ];
  for (const [where, fields] of sources) {
    if (fields === undefined || !Object.hasOwn(fields, KEY)) continue;
    return scopesOf(fields[KEY], `${where} ${namespace}.${KEY}`);
  }
  return { scopes: undefined };
}

function scopesOf(value: JsonValue | undefined, where: string): RouteScopes {
  if (typeof value === "string") return { scopes: value };
  if (Array.isArray(value) && value.every((scope) => typeof scope === "string")) {
    return { scopes: value.join(" ") };
  }
  return { scopes: undefined, problem: `${where} is not a string or a list of strings` };
}
