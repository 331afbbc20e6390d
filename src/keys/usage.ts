import type { Db } from "./db.js";

/** How often a node that keeps its own file writes its usage (single, primary). */
export const USAGE_FLUSH_INTERVAL_MS = 5_000;
/** Keys × hours a tally holds between reports; what comes beyond is dropped and counted. */
export const MAX_TALLY_ENTRIES = 100_000;
const HOUR_MS = 3_600_000;

/** One key's use during one hour, as tallied by a node and reported to its primary. */
export interface UsageEntry {
  keyId: string;
  /** Start of the hour, epoch ms. */
  hour: number;
  lastUsedAt: number;
  allowed: number;
  denied: Record<string, number>;
}

/** The start of the hour holding `at`. */
export function hourOf(at: number): number {
  return at - (at % HOUR_MS);
}

/**
 * Counts what Check decided per key and hour (allowed, denied by code, last
 * use) in a bounded map: Check only touches one entry, and whoever drains
 * the tally (a flush to the file, a report to the primary, a message from a
 * Check worker to its main process) does the rest. Past `maxEntries` new
 * keys are not counted but their requests are, in `dropped`.
 */
export class UsageTally {
  #entries = new Map<string, UsageEntry>();
  /** Uses that found the tally full, since the process started. */
  dropped = 0;

  constructor(
    private readonly maxEntries = MAX_TALLY_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Notes one decision about a key: allowed when `code` is undefined, else denied with it. */
  record(keyId: string, code?: string, at = this.now()): void {
    const hour = hourOf(at);
    const slot = `${keyId} ${hour}`;
    let entry = this.#entries.get(slot);
    if (entry === undefined) {
      if (this.#entries.size >= this.maxEntries) {
        this.dropped++;
        return;
      }
      entry = { keyId, hour, lastUsedAt: at, allowed: 0, denied: {} };
      this.#entries.set(slot, entry);
    }
    if (at > entry.lastUsedAt) entry.lastUsedAt = at;
    if (code === undefined) entry.allowed++;
    else entry.denied[code] = (entry.denied[code] ?? 0) + 1;
  }

  /** Notes a use that is not a counted request (an admin call made with the key). */
  touch(keyId: string, at = this.now()): void {
    const hour = hourOf(at);
    const slot = `${keyId} ${hour}`;
    const entry = this.#entries.get(slot);
    if (entry) entry.lastUsedAt = Math.max(entry.lastUsedAt, at);
    else if (this.#entries.size < this.maxEntries)
      this.#entries.set(slot, { keyId, hour, lastUsedAt: at, allowed: 0, denied: {} });
  }

  /** Adds entries tallied elsewhere (a Check worker's, a report that must be retried). */
  merge(entries: readonly UsageEntry[]): void {
    for (const from of entries) {
      const slot = `${from.keyId} ${from.hour}`;
      const entry = this.#entries.get(slot);
      if (entry === undefined) {
        if (this.#entries.size >= this.maxEntries) {
          this.dropped += from.allowed + Object.values(from.denied).reduce((a, b) => a + b, 0);
          continue;
        }
        this.#entries.set(slot, { ...from, denied: { ...from.denied } });
        continue;
      }
      entry.lastUsedAt = Math.max(entry.lastUsedAt, from.lastUsedAt);
      entry.allowed += from.allowed;
      for (const [code, n] of Object.entries(from.denied))
        entry.denied[code] = (entry.denied[code] ?? 0) + n;
    }
  }

  /** Takes everything tallied so far, leaving the tally empty. */
  drain(): UsageEntry[] {
    const entries = [...this.#entries.values()];
    this.#entries = new Map();
    return entries;
  }
}

/** One hour of a key's use as the admin API shows it. */
export interface UsageHour {
  readonly hour: number;
  readonly allowed: number;
  readonly denied: Record<string, number>;
}

/** One node's report: its batch number and what it saw. */
export interface UsageReport {
  readonly reporter: string;
  readonly batch: number;
  readonly entries: readonly UsageEntry[];
}

/**
 * The usage tables (migration 4) on a writable connection: merges tallies
 * and reports into `keys.last_used_at` and the hourly buckets, reads a key's
 * series, prunes what is past the retention.
 */
export class UsageStore {
  readonly #touch;
  readonly #add;
  readonly #lastBatch;
  readonly #setBatch;
  readonly #series;
  readonly #prune;
  readonly #pruneReporters;
  readonly #mergeAll;

  constructor(private readonly db: Db) {
    // A time only ever moves forward; a key deleted meanwhile is skipped.
    this.#touch = db.prepare(
      "UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
    );
    this.#add = db.prepare(
      `INSERT INTO key_usage (key_id, hour, code, count) SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM keys WHERE id = ?)
       ON CONFLICT (key_id, hour, code) DO UPDATE SET count = count + excluded.count`,
    );
    this.#lastBatch = db
      .prepare<[string], number>("SELECT batch FROM usage_reporters WHERE reporter = ?")
      .pluck();
    this.#setBatch = db.prepare(
      "INSERT INTO usage_reporters (reporter, batch, at) VALUES (?, ?, ?) ON CONFLICT (reporter) DO UPDATE SET batch = excluded.batch, at = excluded.at",
    );
    this.#series = db.prepare<[string, number], { hour: number; code: string; count: number }>(
      "SELECT hour, code, count FROM key_usage WHERE key_id = ? AND hour >= ? ORDER BY hour, code",
    );
    this.#prune = db.prepare("DELETE FROM key_usage WHERE hour < ?");
    this.#pruneReporters = db.prepare("DELETE FROM usage_reporters WHERE at < ?");
    this.#mergeAll = db.transaction((entries: readonly UsageEntry[]) => this.#write(entries));
  }

  #write(entries: readonly UsageEntry[]): void {
    for (const e of entries) {
      this.#touch.run(e.lastUsedAt, e.keyId, e.lastUsedAt);
      if (e.allowed > 0) this.#add.run(e.keyId, e.hour, "", e.allowed, e.keyId);
      for (const [code, n] of Object.entries(e.denied))
        if (n > 0) this.#add.run(e.keyId, e.hour, code, n, e.keyId);
    }
  }

  /** Merges a node's own tally. */
  merge(entries: readonly UsageEntry[]): void {
    if (entries.length > 0) this.#mergeAll.immediate(entries);
  }

  /**
   * Merges a reported batch once: false (and nothing written) when this
   * reporter's batch was merged already, e.g. a retry after a lost answer.
   */
  mergeReport(
    reporter: string,
    batch: number,
    entries: readonly UsageEntry[],
    now: number,
  ): boolean {
    return this.mergeReports([{ reporter, batch, entries }], now)[0] === true;
  }

  /**
   * Several reports in one transaction (one commit: one fsync on the
   * primary, however many replicas reported meanwhile); for each, whether it
   * was merged (false: that reporter's batch was merged before).
   */
  mergeReports(reports: readonly UsageReport[], now: number): boolean[] {
    return this.db
      .transaction(() =>
        reports.map(({ reporter, batch, entries }) => {
          const last = this.#lastBatch.get(reporter) as number | undefined;
          if (last !== undefined && batch <= last) return false;
          this.#write(entries);
          this.#setBatch.run(reporter, batch, now);
          return true;
        }),
      )
      .immediate();
  }

  /** A key's hours from `since` on, oldest first. */
  series(keyId: string, since: number): UsageHour[] {
    const hours = new Map<
      number,
      { hour: number; allowed: number; denied: Record<string, number> }
    >();
    for (const row of this.#series.all(keyId, hourOf(since))) {
      let hour = hours.get(row.hour);
      if (!hour) {
        hour = { hour: row.hour, allowed: 0, denied: {} };
        hours.set(row.hour, hour);
      }
      if (row.code === "") hour.allowed += row.count;
      else hour.denied[row.code] = row.count;
    }
    return [...hours.values()];
  }

  /** Deletes buckets (and reporter marks) older than `before`; returns the buckets deleted. */
  prune(before: number): number {
    this.#pruneReporters.run(before);
    return this.#prune.run(hourOf(before)).changes;
  }
}
