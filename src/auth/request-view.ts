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
   * The route's `required_scopes` (space-separated) from the proxy's
   * configuration: Envoy's per-route context extensions, else the route's
   * metadata, else the metadata context; undefined when none sets any (the
   * policy file decides then). Only the ext_authz transport sets it: the
   * proxy's configuration is trusted, request headers are not.
   */
  readonly requiredScopes: string | undefined;
  /** Why the route's configured scopes cannot be read; the request is then denied 403. */
  readonly requiredScopesProblem?: string;
  /**
   * The client's IP address: on Check `attributes.source.address` (Envoy's
   * downstream peer); on forward-auth the connection's peer, or the
   * forwarded address when the peer is a trusted proxy. Undefined when
   * unknown: a key bound to networks is then refused.
   */
  readonly clientAddress?: string;
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
