import type { Decision } from "../auth/decision.js";

/** One key's traffic over the window. */
export interface KeyTraffic {
  readonly key_id: string;
  readonly kind: string;
  readonly tenant: string;
  readonly requests: number;
  readonly denied: number;
}

/** What `/debug/top-keys` answers. */
export interface TopKeysReport {
  readonly window_seconds: number;
  /** The busiest keys first. */
  readonly keys: readonly KeyTraffic[];
  /**
   * At most how many requests of a key may be missing from its count: keys
   * dropped from a full minute lose what they had (0 when no minute filled).
   */
  readonly error_bound: number;
}

interface Tally {
  kind: string;
  tenant: string;
  requests: number;
  denied: number;
}

/** One minute's tallies, at most `capacity` keys. */
interface Minute {
  index: number;
  tallies: Map<string, Tally>;
  /** The largest count dropped when the minute was pruned. */
  dropped: number;
}

/** Options for {@link TopKeys}. */
export interface TopKeysOptions {
  /** Minutes the report covers; default 5. */
  readonly windowMinutes?: number;
  /** Keys tracked per minute; default 1000 (memory is bounded by minutes × capacity). */
  readonly capacity?: number;
  /** Clock, epoch ms; default Date.now. */
  readonly now?: () => number;
}

const MINUTE_MS = 60_000;

/**
 * The keys with the most decisions over the last minutes, in bounded
 * memory: one tally map per minute of the window, each of at most
 * `capacity` keys. When a minute's map is full, its smaller half is dropped
 * (what those keys had counts toward `error_bound`), so a key that sends a
 * lot is never dropped for a crowd of keys that each send a little, and a
 * flood of distinct (even unknown) key ids costs a sort every
 * `capacity / 2` new keys, not memory. Only key ids, kinds and tenants are
 * kept: never a secret.
 */
export class TopKeys {
  readonly #minutes: Minute[];
  readonly #capacity: number;
  readonly #now: () => number;

  constructor(options: TopKeysOptions = {}) {
    const minutes = options.windowMinutes ?? 5;
    this.#capacity = Math.max(2, options.capacity ?? 1000);
    this.#now = options.now ?? Date.now;
    this.#minutes = Array.from({ length: minutes }, () => ({
      index: -1,
      tallies: new Map(),
      dropped: 0,
    }));
  }

  /** Counts one decision against the key it names, if any. */
  record(decision: Decision): void {
    const identity = decision.identity;
    const keyId = identity?.keyId || (decision.allow ? undefined : decision.keyId);
    if (!keyId) return;
    const minute = this.#minute(Math.floor(this.#now() / MINUTE_MS));
    let tally = minute.tallies.get(keyId);
    if (tally === undefined) {
      if (minute.tallies.size >= this.#capacity) this.#prune(minute);
      tally = {
        kind: identity?.kind ?? (decision.allow ? "" : (decision.kind ?? "")),
        tenant: identity?.tenant ?? "",
        requests: 0,
        denied: 0,
      };
      minute.tallies.set(keyId, tally);
    }
    tally.requests++;
    if (!decision.allow) tally.denied++;
  }

  /** The `limit` busiest keys over the window, merged across its minutes. */
  report(limit = 20): TopKeysReport {
    const current = Math.floor(this.#now() / MINUTE_MS);
    const merged = new Map<string, Tally>();
    let errorBound = 0;
    for (const minute of this.#minutes) {
      if (minute.index <= current - this.#minutes.length || minute.index > current) continue;
      errorBound += minute.dropped;
      for (const [keyId, tally] of minute.tallies) {
        const sum = merged.get(keyId);
        if (sum === undefined) merged.set(keyId, { ...tally });
        else {
          sum.requests += tally.requests;
          sum.denied += tally.denied;
        }
      }
    }
    const keys = [...merged]
      .sort(([, a], [, b]) => b.requests - a.requests)
      .slice(0, limit)
      .map(([key_id, tally]) => ({ key_id, ...tally }));
    return { window_seconds: this.#minutes.length * 60, keys, error_bound: errorBound };
  }

  /** The slot of minute `index`, emptied if it last held an older minute. */
  #minute(index: number): Minute {
    const minute = this.#minutes[index % this.#minutes.length] as Minute;
    if (minute.index !== index) {
      minute.index = index;
      minute.tallies = new Map();
      minute.dropped = 0;
    }
    return minute;
  }

  /** Keeps the busier half of a full minute. */
  #prune(minute: Minute): void {
    const sorted = [...minute.tallies].sort(([, a], [, b]) => b.requests - a.requests);
    const keep = Math.floor(this.#capacity / 2);
    for (const [, tally] of sorted.slice(keep)) {
      minute.dropped = Math.max(minute.dropped, tally.requests);
    }
    minute.tallies = new Map(sorted.slice(0, keep));
  }
}

/**
 * Several processes' reports as one (the main process and its Check
 * workers): counts of the same key add up, error bounds too.
 */
export function mergeTopKeys(reports: readonly TopKeysReport[], limit = 20): TopKeysReport {
  const merged = new Map<string, KeyTraffic>();
  for (const report of reports) {
    for (const key of report.keys) {
      const sum = merged.get(key.key_id);
      merged.set(
        key.key_id,
        sum === undefined
          ? key
          : { ...sum, requests: sum.requests + key.requests, denied: sum.denied + key.denied },
      );
    }
  }
  return {
    window_seconds: reports[0]?.window_seconds ?? 0,
    keys: [...merged.values()].sort((a, b) => b.requests - a.requests).slice(0, limit),
    error_bound: reports.reduce((total, report) => total + report.error_bound, 0),
  };
}
