import type { RequestView } from "../auth/request-view.js";
import type { CheckRequestFields } from "./request-decoder.js";
import { routeScopes } from "./route-scopes.js";

const utf8 = new TextDecoder("utf-8", { fatal: false });
/** The spoofed-header list of a request that sent none: shared, never mutated. */
const NONE: readonly string[] = Object.freeze([]);

/**
 * Builds the pipeline's view of an ext_authz CheckRequest. Envoy sends the
 * headers either as the `headers` map (lower-case keys) or, with
 * `encode_raw_headers`, as `header_map` entries whose value is in `raw_value`
 * bytes; both are read the same way. The route's required scopes come from
 * the proxy's configuration only (route-scopes.ts), under the filter-metadata
 * `namespace`.
 */
export function viewOfCheckRequest(
  request: CheckRequestFields,
  identityPrefix: string,
  namespace?: string,
): RequestView {
  const attributes = request.attributes;
  const http = attributes?.request?.http;
  let authorization: string | undefined;
  let traceparent: string | undefined;
  let tracestate: string | undefined;
  // A Set, made only when needed: a request can carry many thousands of headers.
  let spoofed: Set<string> | undefined;

  const addHeader = (rawName: string, value: string): void => {
    const name = rawName.toLowerCase();
    if (name === "authorization") {
      authorization = authorization === undefined ? value : `${authorization}, ${value}`;
    } else if (name.startsWith(identityPrefix)) {
      spoofed ??= new Set();
      spoofed.add(name);
    } else if (name === "traceparent") {
      traceparent = value;
    } else if (name === "tracestate") {
      tracestate = value;
    }
  };

  const rawHeaders = http?.headerMap?.headers;
  if (rawHeaders && rawHeaders.length > 0) {
    for (const header of rawHeaders) {
      addHeader(
        header.key,
        header.rawValue.length > 0 ? utf8.decode(header.rawValue) : header.value,
      );
    }
  } else if (http) {
    for (const name in http.headers) addHeader(name, http.headers[name] as string);
  }

  const route = routeScopes(attributes, namespace);
  const clientAddress = attributes?.source?.address?.socketAddress?.address;
  return {
    method: (http?.method ?? "").toUpperCase(),
    path: http?.path ?? "",
    authorization,
    spoofedHeaders: spoofed === undefined ? NONE : [...spoofed],
    requiredScopes: route.scopes,
    ...(clientAddress && { clientAddress }),
    ...(route.problem !== undefined && { requiredScopesProblem: route.problem }),
    ...(traceparent !== undefined && {
      traceContext: { traceparent, ...(tracestate !== undefined && { tracestate }) },
    }),
  };
}
