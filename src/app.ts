import { existsSync } from "node:fs";
import { auditInterceptor, authInterceptor, refuseOnReplica } from "./admin/interceptors.js";
import { type AdminServer, startAdminServer } from "./admin/server.js";
import { keyServiceRoutes, refusingKeyServiceRoutes } from "./admin/service.js";
import { type CheckServer, startCheckServer } from "./check/server.js";
import { ConfigError } from "./config/errors.js";
import { type Config, durationMs } from "./config/schema.js";
import { type HttpServer, startHttpServer } from "./http/server.js";
import { createJwtVerifier, type JwtVerifier } from "./jwt/verifier.js";
import { AuditLog } from "./keys/audit.js";
import { type Db, openDatabase } from "./keys/db.js";
import { KeyStore } from "./keys/store.js";
import { UsageTracker } from "./keys/usage.js";
import { createLogger, type Logger } from "./log.js";
import { createIdentifier } from "./pipeline/identify.js";
import { createPipeline } from "./pipeline/pipeline.js";
import { EMPTY_POLICY, loadPolicyFile, type Policy } from "./policy/policy.js";
import { CommitNotifier } from "./replication/notifier.js";
import { compactChanges, replicationRoutes } from "./replication/primary.js";
import { ReplicaSync } from "./replication/replica.js";
import { readReplicationToken } from "./replication/token.js";

/** What tests (and embedders) may replace in {@link createKeyward}. */
export interface KeywardOverrides {
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

/** A composed keyward: start it, read its ports, close it. */
export interface Keyward {
  readonly config: Config;
  readonly logger: Logger;
  start(): Promise<KeywardPorts>;
  /** Drains in-flight Checks, stops listening and closes the database. */
  close(): Promise<void>;
}

/**
 * The composition root: builds every part from a validated config, in the
 * order data flows (store → policy → JWT → pipeline → transports).
 */
export function createKeyward(config: Config, overrides: KeywardOverrides = {}): Keyward {
  const logger = overrides.logger ?? createLogger({ level: config.log_level });
  const policyFile = config.policy || undefined;
  if (policyFile && !existsSync(policyFile)) {
    throw new ConfigError(
      `config: policy: file ${policyFile} does not exist (set policy: null for none)`,
    );
  }
  let policy: Policy;
  try {
    policy = policyFile ? loadPolicyFile(policyFile) : EMPTY_POLICY;
  } catch (error) {
    throw new ConfigError(`config: policy: ${(error as Error).message}`);
  }

  let db: Db | undefined;
  let adminDb: Db | undefined;
  let syncDb: Db | undefined;
  let usage: UsageTracker | undefined;
  let admin: AdminServer | undefined;
  let jwt: JwtVerifier | undefined;
  let check: CheckServer | undefined;
  let http: HttpServer | undefined;
  let sync: ReplicaSync | undefined;
  let notifier: CommitNotifier | undefined;
  let compaction: NodeJS.Timeout | undefined;

  const replicationToken = (): string => {
    try {
      return readReplicationToken(config.replication.token, config.replication.token_file);
    } catch (error) {
      throw new ConfigError(`config: ${(error as Error).message}`);
    }
  };

  return {
    config,
    logger,
    async start() {
      const token = config.role === "single" ? undefined : replicationToken();
      if (config.role === "replica") {
        // The replica's file is written only by what the primary streams;
        // Check reads it through a connection of its own.
        syncDb = openDatabase(config.database);
        sync = new ReplicaSync({
          primary: config.replication.primary as string,
          token: token as string,
          db: syncDb,
          logger: logger.child({ name: "replication" }),
          ...(overrides.now ? { now: overrides.now } : {}),
        });
      }
      db = openDatabase(config.database);
      const store = new KeyStore(db, overrides.now, config.cache.max_entries);
      let onKeyUsed: ((id: string) => void) | undefined;
      if (config.role !== "replica") {
        const usageTracker = new UsageTracker(store, (error) =>
          logger.warn({ err: error }, "could not record key usage"),
        );
        usage = usageTracker;
        onKeyUsed = (id) => usageTracker.used(id);
      }
      if (config.issuers.length > 0) {
        jwt = createJwtVerifier({
          issuers: config.issuers,
          logger,
          cacheMaxEntries: config.cache.max_entries,
          ...(overrides.now ? { now: overrides.now } : {}),
        });
        await jwt.start();
      }
      const staleness = config.replication.max_staleness
        ? durationMs(config.replication.max_staleness)
        : undefined;
      const replica = sync;
      const now = overrides.now ?? Date.now;
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
      const pipeline = createPipeline({ store, policy: () => policy, jwt, onKeyUsed, unavailable });
      check = await startCheckServer({
        pipeline,
        logger: logger.child({ name: "check" }),
        host: config.listen.host,
        port: config.listen.check,
        prefix: config.headers.prefix,
        stripAuthorization: config.headers.strip_authorization,
      });
      const openDb = db;
      const verifier = jwt;
      http = await startHttpServer({
        host: config.listen.host,
        port: config.listen.http,
        forwardAuth: {
          pipeline,
          logger: logger.child({ name: "http" }),
          prefix: config.headers.prefix,
          stripAuthorization: config.headers.strip_authorization,
        },
        readiness: () => {
          const checks: Record<string, string> = {};
          let ready = true;
          try {
            openDb.prepare("SELECT 1").get();
            checks.store = "ok";
          } catch (error) {
            ready = false;
            checks.store = `unreadable: ${(error as Error).message}`;
          }
          if (verifier) {
            for (const issuer of verifier.status()) {
              checks[`jwks ${issuer.issuer}`] = issuer.loaded
                ? "ok"
                : `not loaded: ${issuer.lastError ?? "pending"}`;
              if (!issuer.loaded) ready = false;
            }
          }
          if (replica) {
            const status = replica.status();
            const lag = status.primarySequence - status.appliedSequence;
            const heard =
              status.lastHeardAt === undefined
                ? "never"
                : `${((now() - status.lastHeardAt) / 1000).toFixed(1)}s ago`;
            const why = unavailable?.();
            if (!status.synced) ready = false;
            checks.replication = why
              ? `${status.synced ? "stale" : "no snapshot yet"} (primary heard ${heard})`
              : status.connected
                ? `ok (sequence ${status.appliedSequence}, ${lag} behind)`
                : `degraded: primary unreachable, serving sequence ${status.appliedSequence} (primary heard ${heard})`;
            if (why) ready = false;
          }
          return { ready, checks };
        },
      });

      if (config.role === "replica") {
        // A replica has no admin API: every call is refused, naming the primary.
        admin = await startAdminServer({
          host: config.listen.host,
          port: config.listen.admin,
          routes: refusingKeyServiceRoutes(),
          interceptors: [refuseOnReplica(config.replication.primary as string)],
        });
        sync?.start();
      } else {
        // The admin API writes through its own connection, so that its
        // transactions (held across a call) are never visible to Check before
        // they commit.
        adminDb = openDatabase(config.database);
        const adminStore = new KeyStore(adminDb, overrides.now);
        const audit = new AuditLog(adminDb, overrides.now);
        const identify = createIdentifier({ store, jwt, onKeyUsed });
        let routes = keyServiceRoutes({
          store: adminStore,
          db: adminDb,
          defaultTtlMs: durationMs(config.keys.default_ttl) as number,
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
        admin = await startAdminServer({
          host: config.listen.host,
          port: config.listen.admin,
          routes,
          interceptors: [
            authInterceptor(identify, audit),
            auditInterceptor(adminDb, audit, logger.child({ name: "admin" }), () =>
              commits?.notify(),
            ),
          ],
        });
      }
      const ports = { check: check.port, admin: admin.port, http: http.port };
      logger.info({ role: config.role, database: config.database, ports }, "keyward started");
      return ports;
    },
    async close() {
      await check?.close();
      await admin?.close();
      await http?.close();
      await sync?.close();
      if (compaction) clearInterval(compaction);
      notifier?.close();
      usage?.close();
      jwt?.close();
      adminDb?.close();
      syncDb?.close();
      db?.close();
      logger.info("keyward stopped");
    },
  };
}
