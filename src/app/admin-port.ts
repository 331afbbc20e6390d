import type { HttpListener } from "../lib/http-listener.js";

/**
 * The admin port as the composition root sees it, whatever the role: the
 * admin API (admin-api.ts) on a single process or a primary, the refusal
 * (replica-admin.ts) on a replica. Each is imported only by the role that
 * uses it.
 */
export interface AdminPort {
  /** What this role's admin side loaded, for the "keyward started" line. */
  readonly parts: readonly string[];
  /** Binds the admin port. */
  listen(): Promise<HttpListener>;
  /** Starts background work (a primary's change feed, usage pruning). */
  start(): void;
  /** Undoes what building it did (its database connection); the listener is closed separately. */
  close(): Promise<void>;
}
