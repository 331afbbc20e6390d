import { Code, ConnectError } from "@connectrpc/connect";
import type { AuditLog } from "../../keys/audit.js";
import type { Db } from "../../keys/db.js";
import { KeyInputError } from "../../keys/input.js";
import type { KeyRepository } from "../../keys/repository.js";
import type { KeyRecord } from "../../keys/rows.js";
import type { UsageStore } from "../../keys/usage.js";
import type { Audited } from "../audited.js";
import { assertAdministrator, canSee, type Principal } from "../principal.js";

/** Options for {@link keyServiceRoutes} (key-service.ts). */
export interface KeyServiceOptions {
  /** The admin connection's repository; every write runs in an audited transaction. */
  readonly store: KeyRepository;
  /** The admin connection itself (idempotency records). */
  readonly db: Db;
  /** Runs each call's work in one transaction with its audit rows (audited.ts). */
  readonly audited: Audited;
  /** Lifetime given to user and agent keys created without expiresAt. */
  readonly defaultTtlMs: number;
  /** The longest grace RotateKey may give (keys.max_rotation_grace); default 7 days. */
  readonly maxRotationGraceMs?: number;
  /**
   * Scopes keyward knows besides keys:admin and keys:provision: those the
   * policy in force names and the config's `scopes:`. Read on every call, so
   * a reload is followed. A key naming any other scope is refused.
   */
  readonly knownScopes: () => ReadonlySet<string>;
  /** The audit trail ListAuditEvents reads. */
  readonly audit: AuditLog;
  /** Hourly key usage GetKeyUsage reads. */
  readonly usage: UsageStore;
  /** This server's role, as GetServerInfo reports it. Default "single". */
  readonly role?: string;
  readonly now?: () => number;
}

/** What the handler groups share: the options, the clock and the visibility rule. */
export interface Handlers {
  readonly options: KeyServiceOptions;
  readonly now: () => number;
  /** A key the caller may see, or not_found: never "exists but not yours". */
  visibleKey(principal: Principal, id: string): KeyRecord;
}

const KEY_ID = /^[0-9a-f]{16}$/;

export function handlers(options: KeyServiceOptions): Handlers {
  return {
    options,
    now: options.now ?? Date.now,
    visibleKey(principal, id) {
      assertAdministrator(principal, "manage keys");
      // Only a well-formed id is echoed: a pasted secret must not come back in an error.
      const key = KEY_ID.test(id) ? options.store.get(id) : undefined;
      if (!key || !canSee(principal, key)) {
        throw new ConnectError(
          KEY_ID.test(id) ? `key ${id} not found` : "key not found",
          Code.NotFound,
        );
      }
      return key;
    },
  };
}

/** The repository's input errors are the caller's mistakes: invalid_argument, with its message. */
export function guardInput<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof KeyInputError) throw new ConnectError(error.message, Code.InvalidArgument);
    throw error;
  }
}

export function notFound(id: string): never {
  throw new ConnectError(`key ${id} not found`, Code.NotFound);
}
