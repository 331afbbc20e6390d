import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { createAuditedCalls } from "../admin/audited.js";
import type { ConsoleHandler } from "../admin/console.js";
import { authInterceptor } from "../admin/interceptors.js";
import { keyServiceRoutes } from "../admin/key-service.js";
import { startAdminServer } from "../admin/server.js";
import type { Config } from "../config/schema.js";
import type { Decider } from "../decider/decider.js";
import { file_keyward_admin_v1_admin, KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import { file_keyward_replication_v1_replication } from "../gen/keyward/replication/v1/replication_pb.js";
import { AuditLog } from "../keys/audit.js";
import { type Db, openDatabase } from "../keys/db.js";
import { KeyRepository } from "../keys/repository.js";
import { UsageStore } from "../keys/usage.js";
import { durationMs } from "../lib/duration.js";
import type { Logger } from "../lib/log.js";
import { reflectionRoutes } from "../reflection/routes.js";
import type { AckTracker } from "../replication/acks.js";
import { CommitNotifier } from "../replication/notifier.js";
import { compactChanges, createReplicationPrimary } from "../replication/primary.js";
import type { AdminPort } from "./admin-port.js";
import { adminConsole } from "./console.js";
import type { TlsFiles } from "./files.js";

/** How often a primary compacts its change log. */
const COMPACTION_INTERVAL_MS = 1000;
/** How often hourly usage past `keys.usage_retention` is deleted. */
const USAGE_PRUNE_INTERVAL_MS = 10 * 60_000;

/** Options for {@link createAdminApi}. */
export interface AdminApiOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly decider: Decider;
  /** The replication token (primary only). */
  readonly token: string | undefined;
  readonly tls: TlsFiles | undefined;
  /** What is wrong with the database file, if anything: admin writes are refused then. */
  readonly fileProblem: () => string | undefined;
  /** The issuers in force (they follow reloads), for the console's sign-in. */
  readonly issuers: () => Config["issuers"];
  readonly now?: (() => number) | undefined;
}

/** The admin port's services, built and ready to serve; {@link start} begins background work. */
export interface AdminApi {
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly console: ConsoleHandler | undefined;
  /** A primary's Watch streams, served on the HTTP/2 stream before Connect sees the request. */
  readonly streams?: ((req: Http2ServerRequest, res: Http2ServerResponse) => boolean) | undefined;
  readonly tls: { cert: Buffer; key: Buffer; ca?: Buffer | undefined } | undefined;
  /** Starts the primary's change feed and change-log compaction. */
  start(): void;
  close(): Promise<void>;
}

/**
 * The admin side of a single process or a primary: key management through a
 * connection of its own (so that its transactions, held across a call, are
 * never visible to Check before they commit), the audit trail, replication
 * streams on a primary, reflection and the key console. A replica gets
 * replica-admin.ts instead (and never loads this module).
 */
export function createAdminApi(options: AdminApiOptions): AdminApi {
  const { config, logger, decider, token, now } = options;
  const log = logger.child({ name: "admin" });
  const db: Db = openDatabase(config.database, { busyTimeoutMs: 250 });
  const audit = new AuditLog(db, now);
  const commits = config.role === "primary" && token ? new CommitNotifier(db) : undefined;
  const usage = new UsageStore(db);
  const keys = keyServiceRoutes({
    store: new KeyRepository(db, now),
    db,
    audited: createAuditedCalls({
      db,
      audit,
      log,
      onCommit: () => commits?.notify(),
      onOutcome: (method, outcome) => decider.metrics.adminCall(method, outcome),
      writable: options.fileProblem,
    }),
    defaultTtlMs: durationMs(config.keys.default_ttl) as number,
    maxRotationGraceMs: durationMs(config.keys.max_rotation_grace) as number,
    knownScopes: () => decider.decisions.knownScopes,
    audit,
    usage,
    role: config.role,
    ...(now && { now }),
  });
  const replication =
    commits &&
    createReplicationPrimary({
      database: config.database,
      token: token as string,
      notifier: commits,
      usage,
      logger: logger.child({ name: "replication" }),
      maxConcurrentSnapshots: config.replication.max_concurrent_snapshots,
      syncReplicas: config.replication.sync_replicas,
    });
  const reflection = reflectionRoutes({
    files: [
      file_keyward_admin_v1_admin,
      ...(replication ? [file_keyward_replication_v1_replication] : []),
    ],
  });
  let compaction: NodeJS.Timeout | undefined;
  let pruning: NodeJS.Timeout | undefined;
  const retentionMs = durationMs(config.keys.usage_retention) as number;
  const prune = () => {
    try {
      usage.prune((now ?? Date.now)() - retentionMs);
    } catch (error) {
      logger.warn({ err: error }, "usage pruning failed");
    }
  };
  const tls = options.tls;
  return {
    routes: (router) => reflection(replication ? replication.routes(keys(router)) : keys(router)),
    streams: replication?.streams,
    interceptors: [
      authInterceptor(decider.identify, audit, log),
      ...(replication && config.replication.sync_replicas > 0
        ? [
            syncReplicasInterceptor(
              replication.acks,
              () => replication.feed.newest(),
              config.replication.sync_replicas,
            ),
          ]
        : []),
    ],
    console: adminConsole(config, options.issuers, logger),
    tls: tls?.cert && tls.key ? { cert: tls.cert, key: tls.key, ca: tls.ca } : undefined,
    start() {
      prune();
      pruning = setInterval(prune, USAGE_PRUNE_INTERVAL_MS);
      pruning.unref();
      if (!replication) return;
      replication.start();
      compaction = setInterval(() => {
        try {
          compactChanges(db, config.replication.retain_changes);
        } catch (error) {
          logger.warn({ err: error }, "change log compaction failed");
        }
      }, COMPACTION_INTERVAL_MS);
      compaction.unref();
    },
    async close() {
      if (compaction) clearInterval(compaction);
      if (pruning) clearInterval(pruning);
      commits?.close();
      await replication?.close();
      db.close();
    },
  };
}

/** How long an admin write waits for `sync_replicas` replicas before it is answered unavailable. */
const SYNC_TIMEOUT_MS = 10_000;

/**
 * `replication.sync_replicas`: a KeyService call that may write is answered
 * only once that many replicas confirmed they applied the newest change
 * (which includes the call's own). When they do not in time, the write
 * stays committed on the primary but the caller hears `unavailable`, naming
 * that: it must not take the write as safe from the primary's loss.
 */
function syncReplicasInterceptor(
  acks: AckTracker,
  newest: () => number,
  replicas: number,
): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    const writes =
      req.service.typeName === KeyService.typeName &&
      req.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
    if (writes && !(await acks.waitFor(newest(), replicas, SYNC_TIMEOUT_MS))) {
      throw new ConnectError(
        `committed on the primary but not yet applied by ${replicas} replica(s) (replication.sync_replicas)`,
        Code.Unavailable,
      );
    }
    return res;
  };
}

/**
 * The admin port of a single process or a primary: {@link createAdminApi}
 * now, its server (admin/server.ts) bound by `listen`.
 */
export function adminApiPort(options: AdminApiOptions): AdminPort {
  const api = createAdminApi(options);
  const { config, logger } = options;
  return {
    parts: [
      "admin API",
      ...(api.streams ? ["replication primary"] : []),
      ...(api.console ? ["console"] : []),
    ],
    listen: () =>
      startAdminServer({
        host: config.listen.host,
        port: config.listen.admin,
        logger: logger.child({ name: "admin" }),
        ...(api.tls && { tls: api.tls }),
        console: api.console,
        streams: api.streams,
        routes: api.routes,
        interceptors: api.interceptors,
      }),
    start: () => api.start(),
    close: () => api.close(),
  };
}
