import { existsSync } from "node:fs";
import { auditInterceptor, authInterceptor } from "./admin/interceptors.js";
import { type AdminServer, startAdminServer } from "./admin/server.js";
import { keyServiceRoutes } from "./admin/service.js";
import { type CheckServer, startCheckServer } from "./check/server.js";
import { ConfigError } from "./config/errors.js";
import { type Config, durationMs } from "./config/schema.js";
import { type HttpServer, startHttpServer } from "./http/server.js";
import { createJwtVerifier, type JwtVerifier } from "./jwt/verifier.js";
import { type Db, openDatabase } from "./keys/db.js";
import { AuditLog } from "./keys/audit.js";
import { KeyStore } from "./keys/store.js";
import { UsageTracker } from "./keys/usage.js";
import { createLogger, type Logger } from "./log.js";
import { createIdentifier } from "./pipeline/identify.js";
import { createPipeline } from "./pipeline/pipeline.js";
import { EMPTY_POLICY, loadPolicyFile, type Policy } from "./policy/policy.js";

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
  if (config.role !== "single") {
    throw new ConfigError(
      `config: role: "${config.role}" is not available in this build yet; use "single"`,
    );
  }
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
  let usage: UsageTracker | undefined;
  let admin: AdminServer | undefined;
  let jwt: JwtVerifier | undefined;
  let check: CheckServer | undefined;
  let http: HttpServer | undefined;

  return {
    config,
    logger,
    async start() {
      db = openDatabase(config.database);
      const store = new KeyStore(db, overrides.now);
      const usageTracker = new UsageTracker(store, (error) =>
        logger.warn({ err: error }, "could not record key usage"),
      );
      usage = usageTracker;
      if (config.issuers.length > 0) {
        jwt = createJwtVerifier({
          issuers: config.issuers,
          logger,
          cacheMaxEntries: config.cache.max_entries,
          ...(overrides.now ? { now: overrides.now } : {}),
        });
        await jwt.start();
      }
      const onKeyUsed = (id: string) => usageTracker.used(id);
      const pipeline = createPipeline({ store, policy: () => policy, jwt, onKeyUsed });
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
          return { ready, checks };
        },
      });
      // The admin API writes through its own connection, so that its
      // transactions (held across a call) are never visible to Check before
      // they commit.
      adminDb = openDatabase(config.database);
      const adminStore = new KeyStore(adminDb, overrides.now);
      const audit = new AuditLog(adminDb, overrides.now);
      const identify = createIdentifier({ store, jwt, onKeyUsed });
      admin = await startAdminServer({
        host: config.listen.host,
        port: config.listen.admin,
        routes: keyServiceRoutes({
          store: adminStore,
          db: adminDb,
          defaultTtlMs: durationMs(config.keys.default_ttl) as number,
          ...(overrides.now ? { now: overrides.now } : {}),
        }),
        interceptors: [authInterceptor(identify, audit), auditInterceptor(adminDb, audit, logger.child({ name: "admin" }))],
      });
      const ports = { check: check.port, admin: admin.port, http: http.port };
      logger.info({ role: config.role, database: config.database, ports }, "keyward started");
      return ports;
    },
    async close() {
      await check?.close();
      await admin?.close();
      await http?.close();
      usage?.close();
      jwt?.close();
      adminDb?.close();
      db?.close();
      logger.info("keyward stopped");
    },
  };
}
