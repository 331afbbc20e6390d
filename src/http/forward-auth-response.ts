import { type Decision, denyBody, denyHeaders, OUTCOMES } from "../auth/decision.js";
import { DEFAULT_IDENTITY_PREFIX, identityHeaders } from "../auth/identity-headers.js";
import type { RequestView } from "../auth/request-view.js";

/**
 * A deny also carries its JSON body in this header, because nginx
 * `auth_request` discards the auth response's body: `auth_request_set` can
 * only capture headers, and deploy/nginx/nginx.conf returns this one as the
 * body of its 401/403/503.
 */
export const DENY_BODY_HEADER = "x-keyward-deny-body";

/**
 * Envoy `http_service` removes the request headers named here (comma
 * separated) before the request goes upstream: the HTTP twin of
 * `OkHttpResponse.headers_to_remove`.
 */
export const ENVOY_HEADERS_TO_REMOVE = "x-envoy-auth-headers-to-remove";

/**
 * On a shadow allow, the code of the deny that enforce mode would have sent
 * (DESIGN "Route policy"), for the proxy's access log.
 */
export const SHADOW_DENY_HEADER = "x-keyward-shadow-deny";
/**
 * Set to `previous` on an allow whose key was presented with its previous
 * secret during a rotation grace (Check says it as `secret: "previous"` in
 * the dynamic metadata; forward-auth has none).
 */
export const SECRET_HEADER = "x-keyward-secret";

/** Options for {@link createForwardAuthResponder}. */
export interface ForwardAuthResponderOptions {
  /** Prefix of the identity headers; default "x-auth-". */
  readonly prefix?: string;
  /** Also ask the proxy to remove the `authorization` header before the request goes upstream. */
  readonly stripAuthorization?: boolean;
}

/** A complete HTTP answer: status, headers and body. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * The forward-auth response builder: the one place a Decision becomes an
 * HTTP answer. Allow → 200, empty body, all five identity headers (a fact
 * keyward has nothing to say about is an empty value, never left out) and,
 * when there is anything to remove, `x-envoy-auth-headers-to-remove` naming
 * the other client-sent headers with the identity prefix. Deny →
 * the decision's status, the JSON deny body and `www-authenticate`, exactly
 * as the Check port sends them; a shadow allow is an allow that also names
 * the would-be deny in `x-keyward-shadow-deny`. Neither may be cached by
 * anything in between.
 */
export function createForwardAuthResponder(options: ForwardAuthResponderOptions = {}) {
  const prefix = options.prefix ?? DEFAULT_IDENTITY_PREFIX;

  return (decision: Decision, view: RequestView): HttpAnswer => {
    if (!decision.allow) {
      const body = denyBody(decision);
      return {
        status: OUTCOMES[decision.code].httpStatus,
        headers: {
          "content-type": "application/json",
          ...Object.fromEntries(denyHeaders(decision)),
          "cache-control": "no-store",
          [DENY_BODY_HEADER]: body,
        },
        body,
      };
    }

    // All five, every time, empty when there is nothing to say: nginx,
    // Traefik and Caddy copy the headers they are told to copy, and Caddy
    // would forward a literal placeholder for one that is missing.
    const headers: Record<string, string> = { "cache-control": "no-store" };
    for (const [name, value] of identityHeaders(decision.identity, prefix)) headers[name] = value;
    const remove = view.spoofedHeaders.filter((name) => !(name in headers));
    if (options.stripAuthorization) remove.push("authorization");
    if (remove.length > 0) headers[ENVOY_HEADERS_TO_REMOVE] = remove.join(", ");
    if (decision.shadowDeny) headers[SHADOW_DENY_HEADER] = decision.shadowDeny.code;
    if (decision.identity?.previousSecret) headers[SECRET_HEADER] = "previous";
    return { status: 200, headers, body: "" };
  };
}
