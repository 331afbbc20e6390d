import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isDeny, OUTCOMES } from "../auth/decision.js";
import { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import type { AuditLog } from "../keys/audit.js";
import type { Db } from "../keys/db.js";
import type { Logger } from "../lib/log.js";
import type { Identifier } from "../pipeline/identify.js";
import { codeName } from "./codes.js";
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

/**
 * Runs each admin call inside one SQLite transaction on the admin
 * connection and writes its audit row in that same transaction, so a change
 * and its audit record commit together or not at all. Calls are serialised
 * (SQLite has one writer anyway), which keeps transactions from interleaving
 * across awaits. A failed call is rolled back and audited with its error code.
 */
export function auditInterceptor(
  db: Db,
  audit: AuditLog,
  log: Logger,
  hooks: {
    /** After a call's transaction committed (wakes replication streams). */
    onCommit?: () => void;
    /** Every call's outcome: "ok" or a snake_case error code (metrics). */
    onOutcome?: (method: string, outcome: string) => void;
    /** Why the store must not be written now (e.g. its file was removed), or undefined. */
    writable?: () => string | undefined;
  } = {},
): Interceptor {
  let queue: Promise<unknown> = Promise.resolve();
  return (next) => (req) => {
    if (req.service.typeName !== KeyService.typeName) return next(req);
    const run = async () => {
      const principal = req.contextValues.get(principalKey);
      const actor = principal?.actor ?? "anonymous";
      const action = req.method.name;
      const requestedId = (req.message as { id?: unknown }).id;
      try {
        const unwritable = hooks.writable?.();
        if (unwritable)
          throw new ConnectError(
            `the key database cannot be written: ${unwritable}`,
            Code.Unavailable,
          );
        db.exec("BEGIN IMMEDIATE");
        const res = await next(req);
        if (res.stream) throw new Error("streaming admin calls are not audited here");
        const message = res.message as {
          key?: { id: string; tenant: string };
          keys?: { id: string; tenant: string }[];
        };
        const touched = message.keys ?? (message.key ? [message.key] : []);
        if (touched.length === 0) {
          audit.record({ actor, action, keyId: null, tenant: null, outcome: "ok", detail: "" });
        }
        for (const key of touched) {
          audit.record({
            actor,
            action,
            keyId: key.id,
            tenant: key.tenant,
            outcome: "ok",
            detail: "",
          });
        }
        db.exec("COMMIT");
        hooks.onCommit?.();
        hooks.onOutcome?.(action, "ok");
        return res;
      } catch (error) {
        if (db.inTransaction) db.exec("ROLLBACK");
        const fault = storeFault(error);
        if (fault)
          log.warn({ err: error, action, actor }, "admin call refused: key database unavailable");
        const connectError = fault ?? ConnectError.from(error);
        hooks.onOutcome?.(action, codeName(connectError.code));
        if (connectError.code === Code.Internal || connectError.code === Code.Unknown) {
          log.error({ err: error, action, actor }, "admin call failed");
        }
        // A locked database would only make the audit write wait again.
        const locked = fault?.code === Code.Unavailable && /busy/.test(fault.rawMessage);
        if (!locked) {
          try {
            audit.record({
              actor,
              action,
              // Only a well-formed key id is recorded: a caller could paste a whole key as the id.
              keyId:
                typeof requestedId === "string" && /^[0-9a-f]{16}$/.test(requestedId)
                  ? requestedId
                  : null,
              tenant: null,
              outcome: Code[connectError.code] ?? "unknown",
              detail: connectError.rawMessage.slice(0, 200),
            });
          } catch (auditError) {
            log.error({ err: auditError, action, actor }, "audit write failed");
          }
        }
        // An unexpected fault keeps its cause in the log, not in the answer.
        if (connectError.code === Code.Internal || connectError.code === Code.Unknown) {
          throw new ConnectError("internal error", Code.Internal);
        }
        throw connectError;
      }
    };
    const result = queue.then(run, run);
    queue = result.catch(() => undefined);
    return result;
  };
}

/** On a replica: every admin call is refused with a pointer to the primary. */
export function refuseOnReplica(primary: string): Interceptor {
  return () => async () => {
    throw new ConnectError(
      `this keyward is a replica; send admin calls to the primary at ${primary}`,
      Code.FailedPrecondition,
    );
  };
}

/**
 * A store that cannot take the write right now (locked by another writer,
 * disk full, read-only, I/O error) is a retryable 503 with the reason, not
 * an internal error.
 */
function storeFault(error: unknown): ConnectError | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return undefined;
  const reasons: Record<string, string> = {
    SQLITE_BUSY: "the key database is busy (another writer holds it); retry",
    SQLITE_LOCKED: "the key database is busy (another writer holds it); retry",
    SQLITE_FULL: "the key database's disk is full",
    SQLITE_READONLY: "the key database is read-only",
  };
  // Extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_READONLY_DBMOVED) share their primary's reason.
  const reason = reasons[code.split("_").slice(0, 2).join("_")];
  if (reason) return new ConnectError(reason, Code.Unavailable);
  if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_CANTOPEN")) {
    return new ConnectError("the key database cannot be written (I/O error)", Code.Unavailable);
  }
  return undefined;
}
