import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import type { RequestView } from "../auth/request-view.js";
import type { NetworkMatcher } from "../lib/cidr.js";

/** The path forward-auth is served on (DESIGN "Forward-auth"). */
export const FORWARD_AUTH_PATH = "/authz";

/** True when a request target is for forward-auth: `/authz`, `/authz?…` or `/authz/…`. */
export function isForwardAuthTarget(target: string): boolean {
  if (!target.startsWith(FORWARD_AUTH_PATH)) return false;
  const next = target.charAt(FORWARD_AUTH_PATH.length);
  return next === "" || next === "/" || next === "?";
}

/** The pipeline's view of a forward-auth request, and why it is unjudgeable, when it is. */
export interface ForwardAuthView {
  readonly view: RequestView;
  /**
   * Set when the original request is not described, described incompletely,
   * or described twice in ways that disagree. The view then names no route
   * (empty method and path), so the pipeline can only deny; the text is for
   * the log line.
   */
  readonly problem: string | undefined;
}

/** How a proxy describes the request it wants judged. */
interface Description {
  readonly convention: string;
  readonly method: string;
  readonly uri: string;
}

/** Header conventions, by proxy. */
const HEADER_CONVENTIONS = [
  { name: "nginx", method: "x-original-method", uri: "x-original-uri" },
  { name: "Traefik", method: "x-forwarded-method", uri: "x-forwarded-uri" },
] as const;

/**
 * Builds the pipeline's view of a forward-auth request. The original request
 * is described by one of:
 *
 * - Envoy `http_service` (`path_prefix: /authz`): the original path after
 *   `/authz`, and this request's own method (`GET /authz/api/v1/sources`);
 * - nginx `auth_request`: `X-Original-Method` and `X-Original-URI`;
 * - Traefik ForwardAuth: `X-Forwarded-Method` and `X-Forwarded-Uri`
 *   (`X-Forwarded-Host` is not used: routes are matched on method and path).
 *
 * There is no precedence between them, on purpose: a client can add either
 * family of headers and most proxies pass it through to the auth request
 * (nginx passes every client header by default; Traefik does unless
 * `authRequestHeaders` is set), so whichever one keyward preferred, a client
 * behind the other proxy could name a route of its choosing. Every
 * description present must therefore be complete (method and URI, each
 * exactly once) and agree with the others; otherwise the request names no
 * route and is denied. The credential is the `authorization` header;
 * required scopes come from the policy file only, never from a header.
 */
export function viewOfForwardAuthRequest(
  request: IncomingMessage,
  identityPrefix: string,
  trustedProxies?: NetworkMatcher,
): ForwardAuthView {
  const headers = request.headersDistinct;
  const target = request.url ?? "";
  const descriptions: Description[] = [];
  const problems: string[] = [];

  if (target.startsWith(`${FORWARD_AUTH_PATH}/`)) {
    descriptions.push({
      convention: "Envoy http_service",
      method: request.method ?? "",
      uri: target.slice(FORWARD_AUTH_PATH.length),
    });
  }
  for (const convention of HEADER_CONVENTIONS) {
    const method = headers[convention.method];
    const uri = headers[convention.uri];
    if (method === undefined && uri === undefined) continue;
    if (method?.length !== 1 || uri?.length !== 1 || method[0] === "" || uri[0] === "") {
      problems.push(
        `${convention.name} headers incomplete: ${convention.method} and ${convention.uri} must each be sent once`,
      );
      continue;
    }
    descriptions.push({ convention: convention.name, method: method[0], uri: uri[0] });
  }

  if (descriptions.length === 0 && problems.length === 0) {
    problems.push(
      "no original request: expected X-Original-Method and X-Original-URI (nginx), " +
        "X-Forwarded-Method and X-Forwarded-Uri (Traefik), or the path after /authz/ (Envoy)",
    );
  }
  const [first, ...others] = descriptions;
  for (const other of others) {
    if (
      first &&
      (other.uri !== first.uri || other.method.toUpperCase() !== first.method.toUpperCase())
    ) {
      problems.push(`${first.convention} and ${other.convention} describe different requests`);
    }
  }

  const spoofedHeaders: string[] = [];
  for (const name of Object.keys(request.headers)) {
    if (name.startsWith(identityPrefix)) spoofedHeaders.push(name);
  }
  const problem = problems.length > 0 ? problems.join("; ") : undefined;
  const described = problem === undefined ? first : undefined;
  return {
    view: {
      method: described ? described.method.toUpperCase() : "",
      path: described ? described.uri : "",
      // Node keeps only the first of several authorization headers in
      // `headers`; joining them all (as the Check transport does) makes
      // duplicates malformed instead of picking one.
      authorization: headers.authorization?.join(", "),
      spoofedHeaders,
      // Never from the request: a client can set any header it likes.
      requiredScopes: undefined,
      ...clientOf(request, trustedProxies),
      ...(typeof request.headers.traceparent === "string" && {
        traceContext: {
          traceparent: request.headers.traceparent,
          ...(typeof request.headers.tracestate === "string" && {
            tracestate: request.headers.tracestate,
          }),
        },
      }),
    },
    problem,
  };
}

/**
 * The client address of a forward-auth request: the connection's peer,
 * unless the peer is a trusted proxy, which names the client in
 * `x-forwarded-for` (the right-most address that is not itself a trusted
 * proxy: what any client put further left is its own claim) or else
 * `x-real-ip`. A forwarded value that is not an IP address names nobody.
 */
function clientOf(
  request: IncomingMessage,
  trusted: NetworkMatcher | undefined,
): { clientAddress?: string } {
  const peer = request.socket.remoteAddress;
  if (trusted === undefined || !trusted.allows(peer)) return peer ? { clientAddress: peer } : {};
  const chain = (request.headersDistinct["x-forwarded-for"] ?? [])
    .join(",")
    .split(",")
    .map((hop) => hop.trim())
    .filter((hop) => hop !== "");
  let client: string | undefined;
  for (let at = chain.length - 1; at >= 0; at--) {
    client = chain[at];
    if (!trusted.allows(client)) break;
  }
  if (chain.length === 0) {
    const realIp = request.headersDistinct["x-real-ip"];
    client = realIp?.length === 1 ? realIp[0]?.trim() : undefined;
    if (realIp === undefined) client = peer;
  }
  return client !== undefined && isIP(client) !== 0 ? { clientAddress: client } : {};
}
