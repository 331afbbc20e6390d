import type { Db } from "./db.js";

/** How often last-used times are written; "at most every few seconds per key". */
export const USAGE_FLUSH_INTERVAL_MS = 5_000;

/**
 * Batches `lastUsedAt` updates: Check only notes the time in a map (bounded
 * by the number of keys used between flushes), and one transaction writes
 * them every few seconds. A failed write is logged and dropped: last-used is
 * informational and must never slow or fail a Check.
 */
export class UsageTracker {
  #pending = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  readonly #touch;
  readonly #touchAll;

  constructor(
    db: Db,
    private readonly onError: (error: unknown) => void,
    intervalMs = USAGE_FLUSH_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {
    // A time only ever moves forward.
    this.#touch = db.prepare(
      "UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
    );
    this.#touchAll = db.transaction((uses: ReadonlyMap<string, number>) => {
      for (const [id, at] of uses) this.#touch.run(at, id, at);
    });
    this.#timer = setInterval(() => this.flush(), intervalMs);
    this.#timer.unref();
  }

  /** Notes that a key was used now. Cheap: one map write. */
  used(keyId: string): void {
    this.#pending.set(keyId, this.now());
  }

  flush(): void {
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    try {
      this.#touchAll(batch);
    } catch (error) {
      this.onError(error);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
