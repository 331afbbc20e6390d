import type { Db } from "../keys/db.js";
import { USAGE_FLUSH_INTERVAL_MS, UsageStore, type UsageTally } from "../keys/usage.js";
import type { Logger } from "../lib/log.js";
import { whenReady } from "../lib/maybe-async.js";
import type { Pipeline } from "../pipeline/pipeline.js";

/** Counts each decision about a key (not a JWT) in the tally: allowed, or denied by code. */
export function counted(pipeline: Pipeline, usage: UsageTally): Pipeline {
  return (view) =>
    whenReady(pipeline(view), (decision) => {
      if (decision.allow) {
        // A shadow allow for a credential that proved nobody has no identity.
        const identity = decision.identity;
        if (identity !== undefined && identity.kind !== "jwt") usage.record(identity.keyId);
      } else if (decision.kind !== undefined && decision.kind !== "jwt" && decision.keyId) {
        // An unknown id is named by its lookup (sk_…): no key to count against.
        if (!decision.keyId.startsWith("sk_")) usage.record(decision.keyId, decision.code);
      }
      return decision;
    });
}

/**
 * Writes the tally into this node's own file every few seconds; returns the
 * stop, which writes what is left. A failed write is logged and retried at
 * the next flush; it never slows or fails a Check.
 */
export function flushUsage(usage: UsageTally, db: Db, logger: Logger): () => void {
  const store = new UsageStore(db);
  const flush = () => {
    const entries = usage.drain();
    try {
      store.merge(entries);
    } catch (error) {
      // Kept for the next flush (the tally stays bounded): a locked file is a moment's matter.
      usage.merge(entries);
      logger.warn({ err: error, keys: entries.length }, "could not record key usage; retrying");
    }
  };
  const timer = setInterval(flush, USAGE_FLUSH_INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    flush();
  };
}
