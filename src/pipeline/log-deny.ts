import type { Deny } from "../auth/decision.js";
import type { RequestView } from "../auth/request-view.js";
import type { Logger } from "../lib/log.js";

/**
 * One line per denied request, whichever transport it came in on: decision
 * id, code, key and reason, method and path without the query string; never
 * the token. A fault (`unavailable`) is an error with its cause, a plain deny
 * is info.
 */
export function logDeny(log: Logger, deny: Deny, view: RequestView): void {
  const fields = {
    decision_id: deny.decisionId,
    error: deny.code,
    reason: deny.reason,
    key_id: deny.keyId,
    kind: deny.kind,
    method: view.method,
    path: view.path.split("?")[0],
  };
  if (deny.code === "unavailable") log.error({ ...fields, err: deny.cause }, "check failed closed");
  else log.info(fields, "check denied");
}
