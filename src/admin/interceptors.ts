import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isDeny, OUTCOMES } from "../auth/decision.js";
import { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import type { AuditLog } from "../keys/audit.js";
import type { Logger } from "../lib/log.js";
import type { Identifier } from "../pipeline/identify.js";
import { principalKey, principalOf } from "./principal.js";

/**
 * Authenticates every admin call with the same identity phase as Check (API
 * key or JWT from `authorization: Bearer …`) and hands the principal to the
 * handlers. A refused credential is audited and answered `unauthenticated`
 * with the same code Check would give (e.g. key_revoked), or `unavailable`
 * when keyward cannot decide.
 */
export function authInterceptor(identify: Identifier, audit: AuditLog, log?: Logger): Interceptor {
  return (next) => async (req) => {
    // Other services on the admin port (replication) authenticate themselves.
    if (req.service.typeName !== KeyService.typeName) return next(req);
    const result = await identify(req.header.get("authorization") ?? undefined);
    if (isDeny(result)) {
      // The refusal stands whether or not its audit row can be written (the
      // database may be locked by another writer or full).
      try {
        audit.record({
          actor: "anonymous",
          action: req.method.name,
          keyId: null,
          tenant: null,
          outcome: result.code === "unavailable" ? "unavailable" : "unauthenticated",
          detail: result.code,
        });
      } catch (error) {
        log?.warn(
          { err: error, action: req.method.name },
          "audit write for a refused credential failed",
        );
      }
      const code = result.code === "unavailable" ? Code.Unavailable : Code.Unauthenticated;
      throw new ConnectError(`${result.code}: ${OUTCOMES[result.code].message}`, code);
    }
    req.contextValues.set(principalKey, principalOf(result));
    return next(req);
  };
}
