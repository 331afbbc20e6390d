import type { IncomingMessage, ServerResponse } from "node:http";
import { type Http2ServerRequest, type Http2ServerResponse, constants as http2 } from "node:http2";
import { denyBody, faultDeny, wwwAuthenticate } from "../auth/decision.js";
import type { Logger } from "../lib/log.js";

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

/** A node:http or node:http2 request handler, synchronous or not. */
export type Handler<Req extends AnyRequest, Res extends AnyResponse> = (
  request: Req,
  response: Res,
) => unknown;

/**
 * Wraps a request handler so that nothing it does can take the process down:
 * a synchronous throw or a rejected promise (e.g. `writeHead` refusing a
 * header value) is logged at error level with the method and path (never
 * the query string or a header), and that one request is answered with a
 * 503 `unavailable` deny (DESIGN "Decisions": JSON body with a decision id,
 * `www-authenticate`), or, when its headers are already on the wire, its
 * stream or connection is reset. Every other request is unaffected.
 *
 * This is the per-request boundary on purpose: a process-wide
 * `uncaughtException` handler would keep a process running in an unknown
 * state; here the failure is confined to the request that caused it.
 */
export function guard<Req extends AnyRequest, Res extends AnyResponse>(
  logger: Logger,
  handler: Handler<Req, Res>,
): (request: Req, response: Res) => void {
  return (request, response) => {
    const fail = (cause: unknown) => answerFailure(logger, request, response, cause);
    try {
      const result = handler(request, response);
      if (result instanceof Promise) result.catch(fail);
    } catch (cause) {
      fail(cause);
    }
  };
}

/**
 * Answers a request whose handling failed, as {@link guard} does: logged at
 * error level, then a 503 deny or a reset. Never throws. For callbacks a
 * guard cannot see (a handler that must return void to its framework).
 */
export function answerFailure(
  logger: Logger,
  request: AnyRequest,
  response: AnyResponse,
  cause: unknown,
): void {
  const decision = faultDeny("response failed", cause);
  try {
    logger.error(
      {
        err: cause,
        decision_id: decision.decisionId,
        method: request.method,
        path: (request.url ?? "").split("?")[0],
      },
      "response failed: request answered 503 or reset",
    );
  } catch {
    // A logger that throws must not stop the request from being answered.
  }
  try {
    if (!response.headersSent && !response.writableEnded) {
      const body = denyBody(decision);
      // node:http keeps headers set before the failure; none of them may leak
      // into the deny (they may be the very ones that could not be written).
      for (const name of response.getHeaderNames()) response.removeHeader(name);
      response.writeHead(503, {
        "content-type": "application/json",
        "www-authenticate": wwwAuthenticate(decision),
        "cache-control": "no-store",
        "content-length": Buffer.byteLength(body),
      });
      response.end(body);
      return;
    }
  } catch {
    // Could not even answer the deny: fall through to resetting.
  }
  reset(response);
}

/** Resets one HTTP/2 stream, or the HTTP/1.1 connection (nothing else can be trusted on it). */
function reset(response: AnyResponse): void {
  if ("stream" in response) {
    if (!response.stream.destroyed) response.stream.close(http2.NGHTTP2_INTERNAL_ERROR);
  } else if (!response.destroyed) {
    response.destroy();
  }
}
