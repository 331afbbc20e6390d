import { finished } from "node:stream/promises";
import type { Config } from "../config/schema.js";
import { type Db, openDatabase } from "../keys/db.js";
import { UsageTally } from "../keys/usage.js";
import { KeyVerifier } from "../keys/verifier.js";
import { durationMs } from "../lib/duration.js";
import { createLogger, decisionLogger, type Logger, rotatingFile } from "../lib/log.js";
import { type MetricSources, Metrics, type Transport } from "../observability/metrics.js";
import { type OtelEnv, startTracing, type TracingSdk } from "../observability/otel-sdk.js";
import { TopKeys } from "../observability/top-keys.js";
import { tracedIfEnabled } from "../observability/tracing.js";
import { createIdentifier, type Identifier } from "../pipeline/identify.js";
import { createPipeline, type Pipeline } from "../pipeline/pipeline.js";
import { DecisionConfig, NO_JWT_STATS } from "./decision-config.js";
import { counted, flushUsage } from "./usage.js";

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
  /** The Check worker this decider serves in, if any (its decision-log file is its own). */
  readonly worker?: number;
  /** Where the OpenTelemetry settings are read (`OTEL_*`); default process.env. */
  readonly env?: OtelEnv;
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
  /** The busiest keys of this process, when `debug.top_keys.enabled`. */
  readonly topKeys: TopKeys | undefined;
  /** Per key and hour: allowed, denied by code, last use (keys only, not JWTs). */
  readonly usage: UsageTally;
  /** The policy and issuers in force, reloadable, and the scopes they know. */
  readonly decisions: DecisionConfig;
  /** The verifier's connection (readiness reads a page of the key table through it). */
  readonly db: Db;
  /**
   * The pipeline as a transport serves it: counted per transport, and traced
   * when a tracing SDK is registered (call it after {@link start}).
   */
  served(transport: Transport): Pipeline;
  /**
   * The logger a transport writes its decision lines to (`name`: check,
   * http): the configured decision-log file, else the process's log.
   */
  decisionLog(name: string): Logger;
  /**
   * Starts the issuers (first JWKS fetch included) and, when the environment
   * asks for it, trace export (otel-sdk.ts).
   */
  start(): Promise<void>;
  /** Flushes last-used times and pending spans, stops the issuers and closes the connection. */
  close(): Promise<void>;
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
  const file =
    config.log.file && rotatingFile(decisionFileOptions(config.log.file, options.worker));
  const decisionRoot = file ? createLogger({ destination: file }) : logger;
  const topKeys = config.debug.top_keys.enabled
    ? new TopKeys({
        windowMinutes: (durationMs(config.debug.top_keys.window) as number) / 60_000,
        capacity: config.debug.top_keys.max_keys,
        ...(now && { now }),
      })
    : undefined;
  const metrics = new Metrics({
    maxTenants: config.metrics.max_tenants,
    ...(topKeys && { topKeys }),
    keyCache: () => keys.cacheStats(),
    jwt: () => decisions.verifier?.stats() ?? NO_JWT_STATS,
    ...(options.replica && { replica: options.replica }),
    ...(options.usageReports && { usageReports: options.usageReports }),
    ...(now && { now }),
  });
  let tracing: TracingSdk | undefined;
  return {
    pipeline,
    // An admin call made with a key is a use of it, though not a request counted.
    identify: createIdentifier({
      store: keys,
      jwt: decisions.jwt,
      onKeyUsed: (id) => usage.touch(id),
    }),
    metrics,
    topKeys,
    usage,
    decisions,
    db,
    served: (transport) => metrics.instrument(tracedIfEnabled(pipeline, transport), transport),
    decisionLog: (name) => decisionLogger(decisionRoot, name),
    async start() {
      tracing = await startTracing(options.env ?? process.env);
      await decisions.start();
    },
    async close() {
      flush?.();
      decisions.close();
      db.close();
      // Flushes what the stream still buffers and closes the file before
      // close() resolves, so a stopped process has lost no decision line.
      if (file) {
        file.end();
        await finished(file).catch((error: unknown) =>
          logger.warn({ err: error }, "decision log file did not close cleanly"),
        );
      }
      await tracing?.shutdown();
    },
  };
}

/** The decision-log file of this process: a Check worker's has `.worker-N` before the extension. */
function decisionFileOptions(
  file: NonNullable<Config["log"]["file"]>,
  worker: number | undefined,
): { path: string; maxSize: string; maxFiles: number } {
  const path =
    worker === undefined ? file.path : file.path.replace(/(\.[^./]*)?$/, `.worker-${worker}$1`);
  return { path, maxSize: file.max_size, maxFiles: file.max_files };
}
