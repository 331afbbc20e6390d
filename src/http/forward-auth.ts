import type { IncomingMessage, ServerResponse } from "node:http";
import type { Decision } from "../auth/decision.js";
import { faultDeny } from "../auth/decision.js";
import { DEFAULT_IDENTITY_PREFIX } from "../auth/identity-headers.js";
import { EMPTY_VIEW, type RequestView } from "../auth/request-view.js";
import type { NetworkMatcher } from "../lib/cidr.js";
import type { Logger } from "../lib/log.js";
import { type MaybePromise, whenReady } from "../lib/maybe-async.js";
import { logDecision } from "../pipeline/log-decision.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import {
  createForwardAuthResponder,
  type ForwardAuthResponderOptions,
  type HttpAnswer,
} from "./forward-auth-response.js";
import { viewOfForwardAuthRequest } from "./forward-auth-view.js";

/** Options for {@link createForwardAuthHandler}. */
export interface ForwardAuthOptions extends ForwardAuthResponderOptions {
  /** The same pipeline the Check port uses. */
  readonly pipeline: Pipeline;
  readonly logger: Logger;
  /** Peers trusted to name the client in x-forwarded-for / x-real-ip (forward_auth.trusted_proxies). */
  readonly trustedProxies?: NetworkMatcher;
  /** Share of allowed decisions logged, 0..1 (config `log.allow_sample_rate`); default 0. */
  readonly allowSampleRate?: number;
}

/**
 * Serves forward-auth (`/authz`, `/authz/…`) for nginx `auth_request`,
 * Traefik ForwardAuth and Envoy `http_service`: request view → the shared
 * pipeline → one response builder. Any method is accepted, since Envoy sends
 * the original one. Like Check, it never throws and fails closed: a fault is
 * a logged 503 `unavailable`, and a request whose original route cannot be
 * told is never allowed.
 */
export function createForwardAuthHandler(options: ForwardAuthOptions) {
  const log = options.logger;
  const respond = createForwardAuthResponder(options);
  const prefix = options.prefix ?? DEFAULT_IDENTITY_PREFIX;
  const sampleRate = options.allowSampleRate ?? 0;

  // Returns the pending answer when the decision is asynchronous, so that a
  // failure while writing it reaches the caller's guard (guard.ts).
  return (request: IncomingMessage, response: ServerResponse): MaybePromise<void> => {
    let view: RequestView = EMPTY_VIEW;
    const answer = (decision: Decision): void => {
      logDecision(log, decision, view, sampleRate);
      send(response, respond(decision, view));
    };
    let problem: string | undefined;
    let decision: MaybePromise<Decision>;
    try {
      const described = viewOfForwardAuthRequest(request, prefix, options.trustedProxies);
      view = described.view;
      problem = described.problem;
      decision = options.pipeline(view);
    } catch (cause) {
      decision = faultDeny("forward-auth handler failed", cause);
    }
    return whenReady(
      decision,
      (made) => answer(unjudgeable(made, problem)),
      (cause) => answer(faultDeny("pipeline rejected", cause)),
    );
  };
}

/**
 * When the proxy did not say (or said ambiguously) which request to judge,
 * the view names no route, so the pipeline cannot allow it; this makes sure
 * of it whatever the policy, and puts the reason in the log line.
 */
function unjudgeable(decision: Decision, problem: string | undefined): Decision {
  if (problem === undefined) return decision;
  // A shadow allow too: a proxy that does not say which request to judge is
  // misconfigured, and shadow mode is for rolling out routes, not for that.
  if (decision.allow) {
    return {
      allow: false,
      decisionId: decision.decisionId,
      code: "insufficient_scope",
      reason: problem,
      ...(decision.identity && { keyId: decision.identity.keyId, kind: decision.identity.kind }),
    };
  }
  return decision.code === "insufficient_scope" ? { ...decision, reason: problem } : decision;
}

function send(response: ServerResponse, answer: HttpAnswer): void {
  if (response.headersSent || response.destroyed) return;
  response.writeHead(answer.status, {
    ...answer.headers,
    "content-length": Buffer.byteLength(answer.body),
  });
  response.end(answer.body);
}
