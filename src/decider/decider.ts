import type { Config } from "../config/schema.js";
import { type Db, openDatabase } from "../keys/db.js";
import { USAGE_FLUSH_INTERVAL_MS, UsageStore, UsageTally } from "../keys/usage.js";
import { KeyVerifier } from "../keys/verifier.js";
import type { Logger } from "../lib/log.js";
import { whenReady } from "../lib/maybe-async.js";
import { type MetricSources, Metrics, type Transport } from "../observability/metrics.js";
import { traced } from "../observability/tracing.js";
import { createIdentifier, type Identifier } from "../pipeline/identify.js";
import { createPipeline, type Pipeline } from "../pipeline/pipeline.js";
import { DecisionConfig, NO_JWT_STATS } from "./decision-config.js";

/** Options for {@link createDecider}. */
export interface DeciderOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Clock, epoch ms; default Date.now. */
  readonly now?: (() => number) | undefined;
  /**
   * Whether keyward can decide at all; a string says why not (a replica
   * before its first snapshot), and every request is then a 503 deny.
   */
  readonly unavailable?: (() => string | undefined) | undefined;
  /** Replication state for the metrics, read at scrape time (replicas only). */
  readonly replica?: MetricSources["replica"];
  /**
   * The usage tally, when the caller drains it (a replica's reporter, a
   * Check worker's messages to its main process). Absent: the decider keeps
   * its own and writes it into this node's database every few seconds.
   */
  readonly usage?: UsageTally | undefined;
  /** The usage reporter's counts for the metrics (replicas only). */
  readonly usageReports?: MetricSources["usageReports"];
}

/**
 * The decision side of keyward, as the main process and every Check worker
 * build it: the key verifier on a connection of its own, the live policy and
 * issuers, the pipeline over them, last-used tracking and the metrics.
 */
export interface Decider {
  /** The pipeline itself (Check's and forward-auth's share it). */
  readonly pipeline: Pipeline;
  /** The identity phase alone, for the admin API's callers. */
  readonly identify: Identifier;
  readonly metrics: Metrics;
  /** Per key and hour: allowed, denied by code, last use (keys only, not JWTs). */
  readonly usage: UsageTally;
  /** The policy and issuers in force, reloadable, and the scopes they know. */
  readonly decisions: DecisionConfig;
  /** The verifier's connection (readiness reads a page of the key table through it). */
  readonly db: Db;
  /** The pipeline as a transport serves it: traced and counted per transport. */
  served(transport: Transport): Pipeline;
  /** Starts the issuers (first JWKS fetch included). */
  start(): Promise<void>;
  /** Flushes last-used times, stops the issuers and closes the connection. */
  close(): void;
}

/**
 * Builds a {@link Decider}. A bad policy file throws (a ConfigError) before
 * the database is opened, so start-up stops with one line and nothing to undo.
 */
export function createDecider(options: DeciderOptions): Decider {
  const { config, logger, now } = options;
  const decisions = new DecisionConfig(config, logger, now);
  // Check's connection: reads never wait for writers (WAL); its only writes
  // are the batched last-used times, which may be dropped.
  const db = openDatabase(config.database, { busyTimeoutMs: 50 });
  const keys = new KeyVerifier(db, now, config.cache.max_entries);
  const usage = options.usage ?? new UsageTally(undefined, now);
  // A replica's file is written only by what its primary streams: its
  // caller reports the tally to the primary instead.
  const flush =
    options.usage === undefined && config.role !== "replica"
      ? flushUsage(usage, db, logger)
      : undefined;
  const pipeline = counted(
    createPipeline({
      store: keys,
      policy: () => decisions.policy,
      jwt: decisions.jwt,
      ...(options.unavailable && { unavailable: options.unavailable }),
    }),
    usage,
  );
  const metrics = new Metrics({
    keyCache: () => keys.cacheStats(),
    jwt: () => decisions.verifier?.stats() ?? NO_JWT_STATS,
    ...(options.replica && { replica: options.replica }),
    ...(options.usageReports && { usageReports: options.usageReports }),
    ...(now && { now }),
  });
  return {
    pipeline,
    // An admin call made with a key is a use of it, though not a request counted.
    identify: createIdentifier({
      store: keys,
      jwt: decisions.jwt,
      onKeyUsed: (id) => usage.touch(id),
    }),
    metrics,
    usage,
    decisions,
    db,
    served: (transport) => metrics.instrument(traced(pipeline, transport), transport),
    start: () => decisions.start(),
    close() {
      flush?.();
      decisions.close();
      db.close();
    },
  };
}

/** Counts each decision about a key (not a JWT) in the tally: allowed, or denied by code. */
function counted(pipeline: Pipeline, usage: UsageTally): Pipeline {
  return (view) =>
    whenReady(pipeline(view), (decision) => {
      if (decision.allow) {
        if (decision.identity.kind !== "jwt") usage.record(decision.identity.keyId);
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
function flushUsage(usage: UsageTally, db: Db, logger: Logger): () => void {
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
