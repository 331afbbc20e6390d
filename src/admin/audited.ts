import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { AuditLog } from "../keys/audit.js";
import type { Db } from "../keys/db.js";
import type { Logger } from "../lib/log.js";
import { codeName } from "./codes.js";
import { type Principal, principalKey, requirePrincipal } from "./principal.js";

/** What a KeyService answer may carry: the keys it touched are audited one row each. */
interface Touches {
  readonly key?: { readonly id: string; readonly tenant: string } | undefined;
  readonly keys?: readonly { readonly id: string; readonly tenant: string }[];
}

/** Options for {@link createAuditedCalls}. */
export interface AuditedCallsOptions {
  /** The admin connection: every call's writes and its audit rows go through it. */
  readonly db: Db;
  readonly audit: AuditLog;
  readonly log: Logger;
  /** After a call's transaction committed (wakes replication streams). */
  readonly onCommit?: () => void;
  /** Every call's outcome: "ok" or a snake_case error code (metrics). */
  readonly onOutcome?: (method: string, outcome: string) => void;
  /** Why the store must not be written now (e.g. its file was removed), or undefined. */
  readonly writable?: () => string | undefined;
}

/**
 * Runs one admin call's work in one immediate SQLite transaction with its
 * audit rows, so that a change and its audit record commit together or not
 * at all. `requestedId` is what the caller named (recorded on a refusal when
 * it is a well-formed key id). Handlers are synchronous, so calls never
 * interleave inside a transaction.
 */
export type Audited = <T extends object>(
  context: HandlerContext,
  requestedId: unknown,
  work: (caller: Principal) => T,
) => T;

/**
 * The audited transaction every KeyService handler runs in. A failed call is
 * rolled back and audited with its error code; a store that cannot take the
 * write is a retryable `unavailable`; an unexpected fault keeps its cause in
 * the log and answers `internal`.
 */
export function createAuditedCalls(options: AuditedCallsOptions): Audited {
  const { db, audit, log } = options;
  const immediate = db.transaction((run: () => unknown) => run());
  return (context, requestedId, work) => {
    const principal = context.values.get(principalKey);
    const actor = principal?.actor ?? "anonymous";
    const action = context.method.name;
    try {
      const unwritable = options.writable?.();
      if (unwritable) {
        throw new ConnectError(
          `the key database cannot be written: ${unwritable}`,
          Code.Unavailable,
        );
      }
      const result = immediate.immediate(() => {
        const answer = work(requirePrincipal(principal));
        const { key, keys } = answer as Touches;
        audit.recordChange(actor, action, keys ?? (key ? [key] : []));
        return answer;
      }) as ReturnType<typeof work>;
      options.onCommit?.();
      options.onOutcome?.(action, "ok");
      return result;
    } catch (error) {
      const fault = storeFault(error);
      if (fault)
        log.warn({ err: error, action, actor }, "admin call refused: key database unavailable");
      const refusal = fault ?? ConnectError.from(error);
      const unexpected = refusal.code === Code.Internal || refusal.code === Code.Unknown;
      options.onOutcome?.(action, codeName(refusal.code));
      if (unexpected) log.error({ err: error, action, actor }, "admin call failed");
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
            outcome: Code[refusal.code] ?? "unknown",
            detail: refusal.rawMessage.slice(0, 200),
          });
        } catch (auditError) {
          log.error({ err: auditError, action, actor }, "audit write failed");
        }
      }
      // An unexpected fault keeps its cause in the log, not in the answer.
      if (unexpected) throw new ConnectError("internal error", Code.Internal);
      throw refusal;
    }
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
