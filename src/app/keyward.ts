import { AggregatorRegistry } from "prom-client";
import { startConfiguredCheckServer } from "../check/configured.js";
import type { Config } from "../config/schema.js";
import { createDecider } from "../decider/decider.js";
import { startHttpServer } from "../http/server.js";
import { networkMatcher } from "../lib/cidr.js";
import {
  appliedHeapTuning,
  tuneHeapForRole,
  warnIfMemoryReducer,
  warnIfUnsized,
} from "../lib/heap-tuning.js";
import { createLogger, type Logger } from "../lib/log.js";
import { mergeTopKeys, type TopKeys, type TopKeysReport } from "../observability/top-keys.js";
import type { CheckWorkers } from "../workers/pool.js";
import type { AdminPort } from "./admin-port.js";
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
 * (files and tokens → replica sync → decider → admin port); a bad
 * configuration throws before anything listens. {@link Keyward.start} only
 * binds ports and starts background work; `close` undoes both in reverse.
 *
 * Each role imports only the parts it uses (dynamic `import()`): a replica
 * never evaluates the admin API, connect-node's server side or the admin
 * port's reflection, a single process or a primary never evaluates the
 * replica's sync, and the Check workers' pool loads only with `workers`.
 * The "keyward started" line names the parts loaded.
 *
 * Longer than most functions on purpose: it is the one place that shows how
 * the process is put together, read top to bottom; each step is one call.
 */
export async function createKeyward(
  initial: Config,
  overrides: KeywardOverrides = {},
): Promise<Keyward> {
  const logger = overrides.logger ?? createLogger({ level: initial.log_level });
  const now = overrides.now ?? Date.now;
  const tls = readTlsFiles(initial);
  const token = replicationTokenOf(initial);

  const replica =
    initial.role === "replica"
      ? (await import("./replica-side.js")).createReplicaSide({
          config: initial,
          token: token as string,
          tls,
          logger,
          now,
          clock: overrides.now,
        })
      : undefined;
  const decider = createDecider({
    config: initial,
    logger,
    now: overrides.now,
    unavailable: replica?.unavailable,
    ...(replica && {
      replica: () => replica.sync.status(),
      usage: replica.reporter.tally,
      usageReports: () => replica.reporter.stats(),
    }),
  });
  replica?.limitReads(decider.db);
  const fileProblem = databaseFileCheck(initial.database);
  // With `workers`, Check is served by worker processes on the shared port;
  // this process keeps the admin API, the HTTP port and replication.
  const workers =
    initial.workers > 1
      ? new (await import("../workers/pool.js")).CheckWorkers(initial, logger, (entries) =>
          decider.usage.merge(entries),
        )
      : undefined;
  const reloader = createReloader({ config: initial, logger, decider, workers, overrides });
  const issuers = () => reloader.config.issuers;
  const admin: AdminPort =
    initial.role === "replica"
      ? (await import("./replica-admin.js")).replicaAdminPort(initial, issuers, logger)
      : (await import("./admin-api.js")).adminApiPort({
          config: initial,
          logger,
          decider,
          token,
          tls,
          fileProblem,
          issuers,
          now: overrides.now,
        });
  const parts = [
    "check",
    "http",
    ...(replica ? ["replica sync", "usage reporter"] : []),
    ...admin.parts,
    ...(workers ? ["check workers"] : []),
  ];

  /** What start() bound or began, undone in reverse order by close(). */
  const running: (() => unknown)[] = [];

  return {
    get config() {
      return reloader.config;
    },
    logger,
    async start() {
      const config = initial;
      tuneHeapForRole(config.role);
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
            replica: replica?.sync,
            unavailable: replica?.unavailable,
            workers,
            now,
          }),
      });
      running.push(() => http.close());

      const adminServer = await admin.listen();
      running.push(() => adminServer.close());
      admin.start();
      if (replica) {
        running.push(() => replica.sync.close());
        replica.sync.start();
        running.push(() => replica.reporter.close());
        replica.reporter.start();
      }
      running.push(reloader.watch());

      const ports = { check: checkPort, admin: adminServer.port, http: http.port };
      logger.info(
        {
          role: config.role,
          database: config.database,
          ports,
          workers: config.workers,
          parts,
          heap: appliedHeapTuning(),
        },
        "keyward started",
      );
      warnIfUnsized(config.role, logger);
      warnIfMemoryReducer(logger);
      return ports;
    },
    reload: () => reloader.reload(),
    async close() {
      for (const undo of running.reverse()) await undo();
      running.length = 0;
      // Then what create() built, in reverse.
      await admin.close();
      await decider.close();
      replica?.db.close();
      logger.info("keyward stopped");
    },
  };
}

/** This process's busiest keys, merged with every Check worker's. */
function topKeysOf(own: TopKeys, workers: CheckWorkers | undefined) {
  return async (limit: number): Promise<TopKeysReport> =>
    mergeTopKeys([own.report(limit), ...((await workers?.topKeys(limit)) ?? [])], limit);
}
