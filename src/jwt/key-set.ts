import { type Stats, unwatchFile, watchFile } from "node:fs";
import type { IssuerConfig } from "../config/issuers.js";
import type { Logger } from "../lib/log.js";
import { describeLoadError, readKeySet, type TrustedKey } from "./jwks-document.js";

export type { TrustedKey } from "./jwks-document.js";

/** What caused a load, for the log. */
export type LoadTrigger =
  | "start"
  | "unknown kid"
  | "on demand"
  | "refresh"
  | "retry"
  | "file changed";

/** What every issuer's key set shares: timing, the log, the counters and the verifier's cache. */
export interface KeySetContext {
  readonly log: Logger;
  readonly now: () => number;
  readonly fetchTimeoutMs: number;
  /** Min ms between loads triggered by requests; also the retry period of a set that never loaded. */
  readonly refetchCooldownMs: number;
  readonly refreshIntervalMs: number;
  readonly fileWatchIntervalMs: number;
  /** Aborted on close: loads in flight stop and report nothing. */
  readonly closing: AbortSignal;
  readonly counters: { jwksFetches: number; jwksFailures: number };
  /**
   * Called after a load that withdrew keys: drops what they verified and
   * returns how many entries went.
   */
  readonly forgetWithdrawn: (issuer: string, kept: ReadonlySet<string>) => number;
}

/**
 * One issuer's JWK Set: loaded at start, on a request naming an unknown kid
 * (rate-limited: requests are attacker-driven), in the background when old,
 * and when its file changes. A failed load keeps the keys it had.
 */
export class IssuerKeySet {
  /** The loaded public keys; undefined until the first successful load. */
  keys: readonly TrustedKey[] | undefined;
  kids: ReadonlySet<string> = new Set();
  fingerprints: ReadonlySet<string> = new Set();
  lastError: string | undefined;
  lastLoadedAt: number | undefined;
  #lastAttemptAt: number | undefined;
  /** Last load a request caused; the cooldown is measured from here. */
  #lastDemandAt: number | undefined;
  #loading: Promise<void> | undefined;
  #watcher: ((current: Stats, previous: Stats) => void) | undefined;

  constructor(
    readonly config: IssuerConfig,
    private readonly context: KeySetContext,
  ) {}

  /** One load at a time; callers arriving meanwhile share it. */
  load(trigger: LoadTrigger): Promise<void> {
    if (this.#loading !== undefined) {
      // A file edited mid-load may not be in what that load read.
      return trigger === "file changed"
        ? this.#loading.then(() => this.load(trigger))
        : this.#loading;
    }
    const loading = this.#loadOnce(trigger).finally(() => {
      if (this.#loading === loading) this.#loading = undefined;
    });
    this.#loading = loading;
    return loading;
  }

  /** A load caused by a request: at most one per cooldown. */
  demandLoad(): Promise<void> {
    if (this.#loading !== undefined) return this.#loading;
    const at = this.context.now();
    if (
      this.#lastDemandAt !== undefined &&
      at - this.#lastDemandAt < this.context.refetchCooldownMs
    ) {
      return Promise.resolve();
    }
    this.#lastDemandAt = at;
    return this.load(this.keys === undefined ? "on demand" : "unknown kid");
  }

  /** Reloads a `jwks_uri` set that is due (old, or never loaded and past the cooldown). */
  refreshIfStale(at: number): void {
    if (this.config.jwks_uri === undefined) return; // files are watched
    const due =
      this.lastLoadedAt === undefined
        ? at - (this.#lastAttemptAt ?? 0) >= this.context.refetchCooldownMs
        : at - this.lastLoadedAt >= this.context.refreshIntervalMs;
    if (due) void this.load(this.lastLoadedAt === undefined ? "retry" : "refresh");
  }

  /** Watches a `jwks_file` for changes (never keeping the process alive). */
  watch(): void {
    const path = this.config.jwks_file;
    if (path === undefined) return;
    this.#watcher = (current, previous) => {
      if (
        current.mtimeMs !== previous.mtimeMs ||
        current.size !== previous.size ||
        current.ino !== previous.ino
      ) {
        void this.load("file changed");
      }
    };
    watchFile(
      path,
      { interval: this.context.fileWatchIntervalMs, persistent: false },
      this.#watcher,
    );
  }

  unwatch(): void {
    if (this.#watcher !== undefined && this.config.jwks_file !== undefined) {
      unwatchFile(this.config.jwks_file, this.#watcher);
      this.#watcher = undefined;
    }
  }

  async #loadOnce(trigger: LoadTrigger): Promise<void> {
    const { counters, log, now } = this.context;
    const issuer = this.config.issuer;
    counters.jwksFetches++;
    this.#lastAttemptAt = now();
    try {
      const keys = await readKeySet(this.config, this.context.fetchTimeoutMs, this.context.closing);
      const fingerprints = new Set(keys.map((key) => key.fingerprint));
      const withdrawn = [...this.fingerprints].some((fp) => !fingerprints.has(fp));
      this.keys = keys;
      this.kids = new Set(keys.flatMap((key) => (key.kid === undefined ? [] : [key.kid])));
      this.fingerprints = fingerprints;
      this.lastError = undefined;
      this.lastLoadedAt = now();
      // A withdrawn key must stop working now, not when the tokens it
      // verified expire. Only what that key verified goes: the rest of the
      // cache, other keys' and other issuers' tokens, stays warm.
      const dropped = withdrawn ? this.context.forgetWithdrawn(issuer, fingerprints) : 0;
      log.info({ issuer, trigger, keys: keys.length, dropped }, "JWKS loaded");
    } catch (error) {
      if (this.context.closing.aborted) return;
      counters.jwksFailures++;
      this.lastError = describeLoadError(error, this.context.fetchTimeoutMs);
      // Cached keys keep working; the failure shows in status() for /readyz.
      log.warn(
        { issuer, trigger, error: this.lastError, cachedKeys: this.keys !== undefined },
        "JWKS load failed",
      );
    }
  }
}
