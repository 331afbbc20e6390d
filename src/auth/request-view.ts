/**
 * What the pipeline needs to know about one request, whichever transport it
 * came in on (ext_authz gRPC or HTTP forward-auth). Built once per request by
 * the transport; nothing downstream looks at the raw request again.
 */
export interface RequestView {
  /** Upper-case HTTP method. */
  readonly method: string;
  /** The request target as received: path, possibly with a query string. */
  readonly path: string;
  /**
   * The `authorization` header value; several headers are joined with ", "
   * (as Envoy joins them), which no bearer token can contain, so duplicates
   * are rejected as malformed rather than one of them being picked.
   */
  readonly authorization: string | undefined;
  /** Lower-case names of client-sent headers carrying the identity prefix (to strip). */
  readonly spoofedHeaders: readonly string[];
  /**
   * The route's `required_scopes` from Envoy's per-route context extensions,
   * or undefined when the route sets none (the policy file decides then).
   * Only the ext_authz transport sets it: Envoy's configuration is trusted,
   * request headers are not.
   */
  readonly requiredScopes: string | undefined;
  /** W3C trace context headers the proxy forwarded, for tracing only. */
  readonly traceContext?: { readonly traceparent?: string; readonly tracestate?: string };
}

/** A view of nothing: what a transport logs with when it could not even build the view. */
export const EMPTY_VIEW: RequestView = {
  method: "",
  path: "",
  authorization: undefined,
  spoofedHeaders: [],
  requiredScopes: undefined,
};
