import { readFileSync, type Stats, statSync, unwatchFile, watchFile } from "node:fs";
import { AggregatorRegistry } from "prom-client";
import { CONSOLE_DIST, createConsoleHandler } from "./admin/console.js";
import { auditInterceptor, authInterceptor, refuseOnReplica } from "./admin/interceptors.js";
import { type AdminServer, startAdminServer } from "./admin/server.js";
import { keyServiceRoutes, refusingKeyServiceRoutes } from "./admin/service.js";
import { startConfiguredCheckServer } from "./check/configured.js";
import type { CheckServer } from "./check/server.js";
import { ConfigError } from "./config/errors.js";
import { type Config, consoleEnabled, durationMs } from "./config/schema.js";
import { DecisionConfig, NO_JWT_STATS } from "./decision-config.js";
import { file_keyward_admin_v1_admin } from "./gen/keyward/admin/v1/admin_pb.js";
import { file_keyward_replication_v1_replication } from "./gen/keyward/replication/v1/replication_pb.js";
import { appliedHeapTuning } from "./heap-tuning.js";
import { type HttpServer, type Readiness, startHttpServer } from "./http/server.js";
import type { JwtVerifier } from "./jwt/verifier.js";
import { AuditLog } from "./keys/audit.js";
import { type Db, openDatabase } from "./keys/db.js";
import { KeyStore } from "./keys/store.js";
import { UsageTracker } from "./keys/usage.js";
import { createLogger, decisionLogger, type Logger } from "./log.js";
import { Metrics } from "./observability/metrics.js";
import { traced } from "./observability/tracing.js";
import { createIdentifier } from "./pipeline/identify.js";
import { createPipeline } from "./pipeline/pipeline.js";
import { reflectionRoutes } from "./reflection/routes.js";
import { CommitNotifier } from "./replication/notifier.js";
import { compactChanges, replicationRoutes } from "./replication/primary.js";
import { ReplicaSync } from "./replication/replica.js";
import { readReplicationToken } from "./replication/token.js";
import { CheckWorkers } from "./workers/pool.js";

/** What tests (and embedders) may replace in {@link createKeyward}. */
export interface KeywardOverrides {
  readonly logger?: Logger;
  /** Clock, epoch ms. */
  readonly now?: () => number;
  /**
   * Re-reads the configuration for a reload (SIGHUP or a changed file). The
   * CLI passes the same file + environment it started from; absent, a reload
   * re-reads the policy file only.
   */
  readonly reloadConfig?: () => Config;
  /** Files whose change triggers a reload (the config file); the policy file is always watched. */
  readonly watchFiles?: readonly string[];
  /** Poll interval of the file watchers, ms; default 1000. */
  readonly watchIntervalMs?: number;
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
 * The composition root: builds every part from a validated config, in the
 * order data flows (store → policy → JWT → pipeline → transports).
 */
export function createKeyward(config: Config, overrides: KeywardOverrides = {}): Keyward {
  const logger = overrides.logger ?? createLogger({ level: config.log_level });
  const now = overrides.now ?? Date.now;
  // Fail fast on a bad policy file: before any port is opened.
  const decisions = new DecisionConfig(config, logger, overrides.now);
  let db: Db | undefined;
  let adminDb: Db | undefined;
  let syncDb: Db | undefined;
  let usage: UsageTracker | undefined;
  let admin: AdminServer | undefined;
  let check: CheckServer | undefined;
  let workers: CheckWorkers | undefined;
  let http: HttpServer | undefined;
  let sync: ReplicaSync | undefined;
  let notifier: CommitNotifier | undefined;
  let compaction: NodeJS.Timeout | undefined;
  const watched: { file: string; listener: (current: Stats, previous: Stats) => void }[] = [];
  let reloading: Promise<boolean> = Promise.resolve(true);

  // Read once at start; a missing file is a one-line configuration error.
  const tlsFiles = readTlsFiles(config);

  const replicationToken = (): string => {
    try {
      return readReplicationToken(config.replication.token, config.replication.token_file);
    } catch (error) {
      throw new ConfigError(`config: ${(error as Error).message}`);
    }
  };

  /** The key console's files when it is on; issuers are read per request, so reloads show. */
  function adminConsole() {
    if (!consoleEnabled(config)) return undefined;
    const handler = createConsoleHandler({ issuers: () => config.issuers });
    if (!handler.built) {
      logger.warn(
        { folder: CONSOLE_DIST },
        "console.enabled but the console was not built (npm run build); /console/ answers 503",
      );
    }
    return handler;
  }

  async function reloadOnce(): Promise<boolean> {
    const log = logger.child({ name: "reload" });
    let next: Config = config;
    try {
      if (overrides.reloadConfig) next = overrides.reloadConfig();
      if (await decisions.reload(next)) config = { ...config, issuers: next.issuers };
    } catch (error) {
      log.error(
        { error: (error as Error).message },
        "reload refused; the previous configuration stays in force",
      );
      return false;
    }
    try {
      await workers?.reload(next);
    } catch (error) {
      // This process has taken it; a worker that could not keeps what it had.
      log.error(
        { error: (error as Error).message },
        "reload refused by a check worker, which keeps its previous configuration",
      );
      return false;
    }
    log.info({ policy: next.policy, issuers: next.issuers.length }, "configuration reloaded");
    return true;
  }

  return {
    get config() {
      return config;
    },
    logger,
    async start() {
      const token = config.role === "single" ? undefined : replicationToken();
      if (config.role === "replica") {
        // The replica's file is written only by what the primary streams;
        // Check reads it through a connection of its own.
        syncDb = openDatabase(config.database, { busyTimeoutMs: 1000 });
        sync = new ReplicaSync({
          primary: config.replication.primary as string,
          token: token as string,
          ...(tlsFiles && { tls: tlsFiles }),
          db: syncDb,
          logger: logger.child({ name: "replication" }),
          ...(overrides.now ? { now: overrides.now } : {}),
        });
      }
      // Check's connection: reads never wait for writers (WAL); its only
      // writes are the batched last-used times, which may be dropped.
      db = openDatabase(config.database, { busyTimeoutMs: 50 });
      const store = new KeyStore(db, overrides.now, config.cache.max_entries);
      let onKeyUsed: ((id: string) => void) | undefined;
      if (config.role !== "replica") {
        const usageTracker = new UsageTracker(store, (error) =>
          logger.warn({ err: error }, "could not record key usage"),
        );
        usage = usageTracker;
        onKeyUsed = (id) => usageTracker.used(id);
      }
      await decisions.start();

      const replica = sync;
      const staleness = config.replication.max_staleness
        ? durationMs(config.replication.max_staleness)
        : undefined;
      // A replica that has never received a snapshot cannot decide (503),
      // nor one that has not heard its primary for longer than max_staleness.
      const unavailable = replica
        ? () => {
            const status = replica.status();
            if (!status.synced) return "replica has no snapshot from its primary yet";
            if (
              staleness !== undefined &&
              (status.lastHeardAt === undefined || now() - status.lastHeardAt > staleness)
            ) {
              return "replica is staler than max_staleness";
            }
            return undefined;
          }
        : undefined;
      const jwt = decisions.jwt;
      const pipeline = createPipeline({
        store,
        policy: () => decisions.policy,
        jwt,
        onKeyUsed,
        unavailable,
      });
      const metrics = new Metrics({
        keyCache: () => store.cacheStats(),
        jwt: () => decisions.verifier?.stats() ?? NO_JWT_STATS,
        ...(replica && { replica: () => replica.status() }),
        now,
      });

      let checkPort: number;
      if (config.workers > 1) {
        // Check is served by worker processes on the shared port; this
        // process keeps the admin API, the HTTP port and replication.
        workers = new CheckWorkers(config, logger);
        checkPort = await workers.start();
      } else {
        check = await startConfiguredCheckServer(config, pipeline, metrics, logger);
        checkPort = check.port;
      }
      const pool = workers;
      const openDb = db;
      // The database file must stay the one that was opened: if it is removed
      // or replaced underneath, writes would go to a file nobody will read.
      const openedInode = statSync(config.database).ino;
      const fileProblem = (): string | undefined => {
        try {
          return statSync(config.database).ino === openedInode
            ? undefined
            : "the database file was replaced";
        } catch (error) {
          // Only a file that is gone is a problem; a path we may no longer
          // stat (permissions) says nothing about the open descriptors.
          return (error as NodeJS.ErrnoException).code === "ENOENT"
            ? "the database file was removed"
            : undefined;
        }
      };
      http = await startHttpServer({
        host: config.listen.host,
        port: config.listen.http,
        forwardAuth: {
          pipeline: metrics.instrument(traced(pipeline, "http"), "http"),
          logger: decisionLogger(logger, "http"),
          prefix: config.headers.prefix,
          stripAuthorization: config.headers.strip_authorization,
        },
        metrics: async () => ({
          contentType: metrics.registry.contentType,
          body: pool
            ? // Each worker's counters and this process's, summed per series.
              await AggregatorRegistry.aggregate([
                await metrics.registry.getMetricsAsJSON(),
                ...(await pool.metrics()),
              ]).metrics()
            : await metrics.registry.metrics(),
        }),
        readiness: () => {
          const state = readiness(
            openDb,
            fileProblem,
            decisions.verifier,
            replica,
            unavailable,
            now,
          );
          if (!pool) return state;
          const { listening, expected } = pool.status();
          return {
            ...state,
            ready: state.ready && listening === expected,
            checks: {
              ...state.checks,
              workers: `${listening} of ${expected} check workers listening`,
            },
          };
        },
      });

      if (config.role === "replica") {
        // A replica has no admin API: every call is refused, naming the primary.
        admin = await startAdminServer({
          host: config.listen.host,
          port: config.listen.admin,
          console: adminConsole(),
          routes: refusingKeyServiceRoutes(),
          interceptors: [refuseOnReplica(config.replication.primary as string)],
        });
        sync?.start();
      } else {
        // The admin API writes through its own connection, so that its
        // transactions (held across a call) are never visible to Check before
        // they commit.
        adminDb = openDatabase(config.database, { busyTimeoutMs: 250 });
        const adminStore = new KeyStore(adminDb, overrides.now);
        const audit = new AuditLog(adminDb, overrides.now);
        const identify = createIdentifier({ store, jwt, onKeyUsed });
        let routes = keyServiceRoutes({
          store: adminStore,
          db: adminDb,
          defaultTtlMs: durationMs(config.keys.default_ttl) as number,
          knownScopes: () => decisions.knownScopes,
          audit,
          role: config.role,
          ...(overrides.now ? { now: overrides.now } : {}),
        });
        const commits = config.role === "primary" ? new CommitNotifier(adminDb) : undefined;
        notifier = commits;
        if (commits && token) {
          const keyRoutes = routes;
          const streams = replicationRoutes({
            database: config.database,
            token,
            notifier: commits,
            logger: logger.child({ name: "replication" }),
          });
          routes = (router) => streams(keyRoutes(router));
          const compactDb = adminDb;
          compaction = setInterval(() => {
            try {
              compactChanges(compactDb, config.replication.retain_changes);
            } catch (error) {
              logger.warn({ err: error }, "change log compaction failed");
            }
          }, 1000);
          compaction.unref();
        }
        const reflection = reflectionRoutes({
          files: [
            file_keyward_admin_v1_admin,
            ...(commits && token ? [file_keyward_replication_v1_replication] : []),
          ],
        });
        const served = routes;
        routes = (router) => reflection(served(router));
        admin = await startAdminServer({
          host: config.listen.host,
          port: config.listen.admin,
          ...(tlsFiles?.cert &&
            tlsFiles.key && { tls: { cert: tlsFiles.cert, key: tlsFiles.key, ca: tlsFiles.ca } }),
          console: adminConsole(),
          routes,
          interceptors: [
            authInterceptor(identify, audit, logger.child({ name: "admin" })),
            auditInterceptor(adminDb, audit, logger.child({ name: "admin" }), {
              onCommit: () => commits?.notify(),
              onOutcome: (method, outcome) => metrics.adminCall(method, outcome),
              writable: fileProblem,
            }),
          ],
        });
      }

      // Reload on a changed policy or config file (SIGHUP is wired by the CLI).
      const files = [...(overrides.watchFiles ?? []), ...(config.policy ? [config.policy] : [])];
      for (const file of new Set(files)) {
        const listener = (after: Stats, before: Stats) => {
          if (after.mtimeMs !== before.mtimeMs) void this.reload();
        };
        watchFile(
          file,
          { interval: overrides.watchIntervalMs ?? 1000, persistent: false },
          listener,
        );
        watched.push({ file, listener });
      }

      const ports = { check: checkPort, admin: admin.port, http: http.port };
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
    reload() {
      // Reloads run one at a time, in order.
      reloading = reloading.then(reloadOnce, reloadOnce);
      return reloading;
    },
    async close() {
      for (const { file, listener } of watched) unwatchFile(file, listener);
      await check?.close();
      await workers?.close();
      await admin?.close();
      await http?.close();
      await sync?.close();
      if (compaction) clearInterval(compaction);
      notifier?.close();
      usage?.close();
      decisions.close();
      adminDb?.close();
      syncDb?.close();
      db?.close();
      logger.info("keyward stopped");
    },
  };
}

/** `/readyz`: store readable, every JWKS loaded, a replica synced and within its staleness bound. */
function readiness(
  db: Db,
  fileProblem: () => string | undefined,
  jwt: JwtVerifier | undefined,
  replica: ReplicaSync | undefined,
  unavailable: (() => string | undefined) | undefined,
  now: () => number,
): Readiness {
  const checks: Record<string, string> = {};
  let ready = true;
  let degraded = false;
  try {
    // Reads a page of the key table: "SELECT 1" alone would not notice a
    // corrupt file. The connection's cached pages are released first, or the
    // page could come from memory however the file changed underneath.
    db.pragma("shrink_memory");
    db.prepare("SELECT 1 FROM keys LIMIT 1").get();
    const problem = fileProblem();
    checks.store = problem ?? "ok";
    if (problem) ready = false;
  } catch (error) {
    ready = false;
    checks.store = `unreadable: ${(error as Error).message}`;
  }
  for (const issuer of jwt?.status() ?? []) {
    checks[`jwks ${issuer.issuer}`] = issuer.loaded
      ? "ok"
      : `not loaded: ${issuer.lastError ?? "pending"}`;
    if (!issuer.loaded) ready = false;
  }
  if (replica) {
    const status = replica.status();
    const heard =
      status.lastHeardAt === undefined
        ? "never"
        : `${((now() - status.lastHeardAt) / 1000).toFixed(1)}s ago`;
    const why = unavailable?.();
    if (why) {
      ready = false;
      checks.replication = `${why} (primary heard ${heard})`;
    } else if (!status.connected) {
      // Default (no max_staleness): keep serving what it has, and say so.
      degraded = true;
      checks.replication = `degraded: primary unreachable, serving sequence ${status.appliedSequence} (primary heard ${heard})`;
    } else {
      checks.replication = `ok (sequence ${status.appliedSequence}, ${status.primarySequence - status.appliedSequence} behind)`;
    }
  }
  return { ready, degraded, checks };
}

/** The replication TLS files, read; undefined when none are configured. */
function readTlsFiles(config: Config): { cert?: Buffer; key?: Buffer; ca?: Buffer } | undefined {
  const tls = config.replication.tls;
  if (!tls) return undefined;
  const read = (field: "cert_file" | "key_file" | "ca_file"): Buffer | undefined => {
    const file = tls[field];
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(
        `config: replication.tls.${field}: cannot read ${file} (${(error as NodeJS.ErrnoException).code})`,
      );
    }
  };
  const files: { cert?: Buffer; key?: Buffer; ca?: Buffer } = {};
  const cert = read("cert_file");
  const key = read("key_file");
  const ca = read("ca_file");
  if (cert) files.cert = cert;
  if (key) files.key = key;
  if (ca) files.ca = ca;
  return files;
}
