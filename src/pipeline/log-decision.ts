import type { Allow, Decision, Deny } from "../auth/decision.js";
import type { RequestView } from "../auth/request-view.js";
import type { Logger } from "../lib/log.js";

/** The fields every decision line carries, from the decision's deny or identity; never the token. */
function fieldsOf(decision: Deny | Allow, view: RequestView) {
  const deny = decision.allow ? undefined : decision;
  return {
    decision_id: decision.decisionId,
    reason: deny?.reason,
    key_id: deny ? deny.keyId : decision.identity?.keyId,
    kind: deny ? deny.kind : decision.identity?.kind,
    method: view.method,
    path: pathOnly(view.path),
  };
}

/**
 * One line per denied request, whichever transport it came in on: decision
 * id, code, key and reason, method and path without the query string; never
 * the token. A fault (`unavailable`) is an error with its cause, a plain deny
 * is info.
 */
export function logDeny(log: Logger, deny: Deny, view: RequestView): void {
  if (deny.code === "unavailable") {
    log.error(
      { ...fieldsOf(deny, view), error: deny.code, err: deny.cause },
      "check failed closed",
    );
  } else if (log.isLevelEnabled("info")) {
    log.info(
      {
        decision_id: deny.decisionId,
        reason: deny.reason,
        key_id: deny.keyId,
        kind: deny.kind,
        method: view.method,
        path: pathOnly(view.path),
        error: deny.code,
      },
      "check denied",
    );
  }
}

/** A request target without its query string. */
function pathOnly(target: string): string {
  const query = target.indexOf("?");
  return query === -1 ? target : target.slice(0, query);
}

/**
 * The log line of a decision, if it has one:
 * - a deny (see {@link logDeny});
 * - a shadow allow, logged at info like the deny it stands for, with the
 *   would-be code as `shadow_deny` (not `error`: the request was let
 *   through) and its fault cause, if any;
 * - a plain allow, with probability `allowSampleRate` (config
 *   `log.allow_sample_rate`, 0 by default, when no random number is drawn):
 *   the deny line's fields with `outcome: "allow"`, the tenant and scopes.
 */
export function logDecision(
  log: Logger,
  decision: Decision,
  view: RequestView,
  allowSampleRate = 0,
): void {
  if (!decision.allow) {
    logDeny(log, decision, view);
    return;
  }
  const would = decision.shadowDeny;
  if (would !== undefined) {
    log.info(
      {
        ...fieldsOf(would, view),
        shadow_deny: would.code,
        ...(would.cause !== undefined && { err: would.cause }),
      },
      "check allowed in shadow mode; enforce mode would deny",
    );
    return;
  }
  if (allowSampleRate > 0 && Math.random() < allowSampleRate) {
    log.info(
      {
        ...fieldsOf(decision, view),
        outcome: "allow",
        tenant: decision.identity?.tenant,
        scopes: decision.identity?.scopes.join(" "),
      },
      "check allowed",
    );
  }
}
