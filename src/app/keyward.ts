import { AggregatorRegistry } from "prom-client";
import { startAdminServer } from "../admin/server.js";
import { startConfiguredCheckServer } from "../check/configured.js";
import type { Config } from "../config/schema.js";
import { createDecider } from "../decider/decider.js";
import { startHttpServer } from "../http/server.js";
import { openDatabase } from "../keys/db.js";
import { UsageTally } from "../keys/usage.js";
import { networkMatcher } from "../lib/cidr.js";
import { durationMs } from "../lib/duration.js";
import { appliedHeapTuning } from "../lib/heap-tuning.js";
import { createLogger, type Logger } from "../lib/log.js";
import { mergeTopKeys, type TopKeys, type TopKeysReport } from "../observability/top-keys.js";
import { primaryTransport, ReplicaSync } from "../replication/replica.js";
import { UsageReporter } from "../replication/usage.js";
import { CheckWorkers } from "../workers/pool.js";
import { createAdminApi, refusingAdminApi } from "./admin-api.js";
import { databaseFileCheck, readTlsFiles, replicationTokenOf } from "./files.js";
import { readiness } from "./readiness.js";
import { createReloader, type ReloadSources } from "./reload.js";

/** What tests (and embedders) may replace in {@link createKeyward}. */
export interface KeywardOverrides extends ReloadSources {
  readonly logger?: Logger;
  /** Clock, epoch ms. */
  readonly now?: () => number;
}

/** The ports a started keyward listens on (useful when configured as 0). */
export interface KeywardPorts {
  readonly check: number;
  readonly admin: number;
  readonly http: number;
}

/** A composed keyward: start it, read its ports, reload it, close it. */
export interface Keyward {
  readonly config: Config;
  readonly logger: Logger;
  /** Binds the ports and starts background work; resolves with the ports. */
  start(): Promise<KeywardPorts>;
  /**
   * Reloads the policy file and the JWT issuers together: both take effect
   * at once, or neither does (a bad new file is logged and the old one stays
   * in force). Resolves true when the new configuration is in force.
   */
  reload(): Promise<boolean>;
  /** Drains in-flight Checks, stops listening and closes the database. */
  close(): Promise<void>;
}

/**
 * The composition root. Everything is built here, in the order data flows
 * (files and tokens → replica sync → decider → admin API); a bad
 * configuration throws before anything listens. {@link Keyward.start} only
 * binds ports and starts background work; `close` undoes both in reverse.
 *
 * Longer than most functions on purpose: it is the one place that shows how
 * the process is put together, read top to bottom; each step is one call.
 */
export function createKeyward(initial: Config, overrides: KeywardOverrides = {}): Keyward {
  const logger = overrides.logger ?? createLogger({ level: initial.log_level });
  const now = overrides.now ?? Date.now;
  const tls = readTlsFiles(initial);
  const token = replicationTokenOf(initial);

  // A replica's file is written only by what its primary streams, through a
  // connection of its own; Check reads it through the decider's.
  const syncDb =
    initial.role === "replica"
      ? openDatabase(initial.database, { busyTimeoutMs: 1000 })
      : undefined;
  const sync =
    syncDb &&
    new ReplicaSync({
      primary: initial.replication.primary as string,
      token: token as string,
      ...(tls && { tls }),
      db: syncDb,
      logger: logger.child({ name: "replication" }),
      ...(overrides.now && { now: overrides.now }),
    });
  const unavailable = sync && replicaUnavailable(sync, initial, now);
  // A replica's Check usage (its workers' included) goes to the primary.
  const reporter =
    sync &&
    new UsageReporter({
      transport: primaryTransport(initial.replication.primary as string, tls),
      token: token as string,
      tally: new UsageTally(undefined, now),
      intervalMs: durationMs(initial.replication.usage_interval) as number,
      logger: logger.child({ name: "usage" }),
    });

  const decider = createDecider({
    config: initial,
    logger,
    now: overrides.now,
    unavailable,
    ...(sync && { replica: () => sync.status() }),
    ...(reporter && { usage: reporter.tally, usageReports: () => reporter.stats() }),
  });
  const fileProblem = databaseFileCheck(initial.database);
  // With `workers`, Check is served by worker processes on the shared port;
  // this process keeps the admin API, the HTTP port and replication.
  const workers =
    initial.workers > 1
      ? new CheckWorkers(initial, logger, (entries) => decider.usage.merge(entries))
      : undefined;
  const reloader = createReloader({ config: initial, logger, decider, workers, overrides });
  const admin =
    initial.role === "replica"
      ? refusingAdminApi(initial, () => reloader.config.issuers, logger)
      : createAdminApi({
          config: initial,
          logger,
          decider,
          token,
          tls,
          fileProblem,
          issuers: () => reloader.config.issuers,
          now: overrides.now,
        });

  /** What start() bound or began, undone in reverse order by close(). */
  const running: (() => unknown)[] = [];

  return {
    get config() {
      return reloader.config;
    },
    logger,
    async start() {
      const config = initial;
      await decider.start();

      let checkPort: number;
      if (workers) {
        running.push(() => workers.close());
        checkPort = await workers.start();
      } else {
        const check = await startConfiguredCheckServer(
          config,
          decider.served("grpc"),
          decider.decisionLog("check"),
        );
        running.push(() => check.close());
        checkPort = check.port;
      }

      const metrics = decider.metrics;
      const http = await startHttpServer({
        host: config.listen.host,
        port: config.listen.http,
        logger: logger.child({ name: "http" }),
        forwardAuth: {
          pipeline: decider.served("http"),
          logger: decider.decisionLog("http"),
          allowSampleRate: config.log.allow_sample_rate,
          prefix: config.headers.prefix,
          stripAuthorization: config.headers.strip_authorization,
          trustedProxies: networkMatcher(config.forward_auth.trusted_proxies),
        },
        metrics: async () => ({
          contentType: metrics.registry.contentType,
          body: workers
            ? // Each worker's counters and this process's, summed per series.
              await AggregatorRegistry.aggregate([
                await metrics.registry.getMetricsAsJSON(),
                ...(await workers.metrics()),
              ]).metrics()
            : await metrics.registry.metrics(),
        }),
        ...(decider.topKeys && {
          topKeys: topKeysOf(decider.topKeys, workers),
        }),
        readiness: () =>
          readiness({
            db: decider.db,
            fileProblem,
            jwt: () => decider.decisions.verifier,
            replica: sync,
            unavailable,
            workers,
            now,
          }),
      });
      running.push(() => http.close());

      const adminServer = await startAdminServer({
        host: config.listen.host,
        port: config.listen.admin,
        logger: logger.child({ name: "admin" }),
        ...(admin.tls && { tls: admin.tls }),
        console: admin.console,
        streams: admin.streams,
        routes: admin.routes,
        interceptors: admin.interceptors,
      });
      running.push(() => adminServer.close());
      admin.start();
      if (sync) {
        running.push(() => sync.close());
        sync.start();
      }
      if (reporter) {
        running.push(() => reporter.close());
        reporter.start();
      }
      running.push(reloader.watch());

      const ports = { check: checkPort, admin: adminServer.port, http: http.port };
      logger.info(
        {
          role: config.role,
          database: config.database,
          ports,
          workers: config.workers,
          heap: appliedHeapTuning(),
        },
        "keyward started",
      );
      return ports;
    },
    reload: () => reloader.reload(),
    async close() {
      for (const undo of running.reverse()) await undo();
      running.length = 0;
      // Then what create() built, in reverse.
      await admin.close();
      await decider.close();
      syncDb?.close();
      logger.info("keyward stopped");
    },
  };
}

/**
 * Why a replica cannot decide right now: it has never received a snapshot,
 * or it has not heard its primary for longer than `max_staleness`.
 */
function replicaUnavailable(
  sync: ReplicaSync,
  config: Config,
  now: () => number,
): () => string | undefined {
  const staleness = config.replication.max_staleness
    ? durationMs(config.replication.max_staleness)
    : undefined;
  return () => {
    const status = sync.status();
    if (!status.synced) return "replica has no snapshot from its primary yet";
    if (
      staleness !== undefined &&
      (status.lastHeardAt === undefined || now() - status.lastHeardAt > staleness)
    ) {
      return "replica is staler than max_staleness";
    }
    return undefined;
  };
}

/** This process's busiest keys, merged with every Check worker's. */
function topKeysOf(own: TopKeys, workers: CheckWorkers | undefined) {
  return async (limit: number): Promise<TopKeysReport> =>
    mergeTopKeys([own.report(limit), ...((await workers?.topKeys(limit)) ?? [])], limit);
}
