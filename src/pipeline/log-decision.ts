import type { Decision, Deny } from "../auth/decision.js";
import type { RequestView } from "../auth/request-view.js";
import type { Logger } from "../lib/log.js";

/** The fields every decision line carries; never the token. */
function fieldsOf(deny: Deny, view: RequestView) {
  return {
    decision_id: deny.decisionId,
    reason: deny.reason,
    key_id: deny.keyId,
    kind: deny.kind,
    method: view.method,
    path: view.path.split("?")[0],
  };
}

/**
 * One line per denied request, whichever transport it came in on: decision
 * id, code, key and reason, method and path without the query string; never
 * the token. A fault (`unavailable`) is an error with its cause, a plain deny
 * is info.
 */
export function logDeny(log: Logger, deny: Deny, view: RequestView): void {
  const fields = { ...fieldsOf(deny, view), error: deny.code };
  if (deny.code === "unavailable") log.error({ ...fields, err: deny.cause }, "check failed closed");
  else log.info(fields, "check denied");
}

/**
 * The log line of a decision, if it has one: a deny (see {@link logDeny}),
 * or a shadow allow, which is logged at info like the deny it stands for,
 * with the would-be code as `shadow_deny` (not `error`: the request was let
 * through) and its fault cause, if any.
 */
export function logDecision(log: Logger, decision: Decision, view: RequestView): void {
  if (!decision.allow) {
    logDeny(log, decision, view);
    return;
  }
  const would = decision.shadowDeny;
  if (would === undefined) return;
  log.info(
    {
      ...fieldsOf(would, view),
      shadow_deny: would.code,
      ...(would.cause !== undefined && { err: would.cause }),
    },
    "check allowed in shadow mode; enforce mode would deny",
  );
}
