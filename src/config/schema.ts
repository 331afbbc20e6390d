import { z } from "zod";
import { cidrProblem } from "../lib/cidr.js";
import { durationMs } from "../lib/duration.js";
import { issuersSchema } from "./issuers.js";
import { scopeList } from "./scopes.js";

/** Defaults of the embedded single-process setup (DESIGN "Configuration"). */
export const DEFAULTS = {
  role: "single",
  database: "./data/keyward.db",
  host: "127.0.0.1",
  checkPort: 9191,
  adminPort: 9192,
  httpPort: 9193,
  policy: "./deploy/policy.yaml",
  headerPrefix: "x-auth-",
  cacheMaxEntries: 100_000,
  logLevel: "info",
  workers: 1,
  keyTtl: "90d",
  maxRotationGrace: "7d",
  retainChanges: 100_000,
  metadataNamespace: "keyward",
  logFileMaxSize: "10M",
  logFileMaxFiles: 5,
  maxTenants: 100,
  topKeysWindow: "5m",
  topKeysCapacity: 1000,
  maxConcurrentSnapshots: 16,
  usageInterval: "10s",
  usageRetention: "30d",
} as const;

// Ports arrive as YAML numbers or as environment strings; accept digits only,
// so that "" or "true" is an error rather than silently port 0 or 1.
const digits = (value: unknown) =>
  typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
const port = z.preprocess(digits, z.number().int().min(0).max(65535));

export const configSchema = z
  .object({
    role: z.enum(["single", "primary", "replica"]).default(DEFAULTS.role),
    database: z.string().min(1).default(DEFAULTS.database),
    listen: z
      .object({
        host: z.string().min(1).default(DEFAULTS.host),
        check: port.default(DEFAULTS.checkPort),
        admin: port.default(DEFAULTS.adminPort),
        http: port.default(DEFAULTS.httpPort),
      })
      .strict()
      .prefault({}),
    /** Route rules file; null or "" for none (the default of deny then applies to every route). */
    policy: z.string().nullable().default(DEFAULTS.policy),
    headers: z
      .object({
        prefix: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]*$/, "lower-case letters, digits and dashes only")
          .default(DEFAULTS.headerPrefix),
        strip_authorization: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    forward_auth: z
      .object({
        /**
         * Peers whose `x-forwarded-for` / `x-real-ip` name the client on
         * `/authz` (the proxy in front of keyward); from anyone else the
         * connection's own peer is the client.
         */
        trusted_proxies: z
          .array(
            z.string().superRefine((cidr, context) => {
              const problem = cidrProblem(cidr);
              if (problem) context.addIssue({ code: "custom", message: problem });
            }),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    issuers: issuersSchema.default([]),
    /**
     * Where Check reads a route's `required_scopes` besides context
     * extensions: the filter-metadata namespace of the route's metadata and
     * of the metadata context.
     */
    route_metadata: z
      .object({
        namespace: z
          .string()
          .regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '.', '_' and '-' only")
          .default(DEFAULTS.metadataNamespace),
      })
      .strict()
      .prefault({}),
    replication: z
      .object({
        /** A replica's primary: its admin URL. */
        primary: z.url().optional(),
        /** File holding the shared replication token (a primary accepts it, a replica presents it). */
        token_file: z.string().min(1).optional(),
        /** The token itself; prefer KEYWARD_REPLICATION_TOKEN or token_file to keep it out of config files. */
        token: z.string().min(1).optional(),
        /** A replica that has not heard its primary for longer denies with 503; unset: keep serving. */
        max_staleness: z
          .string()
          .refine(
            (value) => durationMs(value) !== undefined,
            "expected a duration such as 30s or 5m",
          )
          .optional(),
        /**
         * TLS for the replication stream. A primary serves its admin port with
         * cert_file/key_file and, with ca_file, requires client certificates
         * (mTLS); a replica verifies the primary with ca_file and presents
         * cert_file/key_file when given. The replica's primary URL is then https://.
         */
        tls: z
          .object({
            cert_file: z.string().min(1).optional(),
            key_file: z.string().min(1).optional(),
            ca_file: z.string().min(1).optional(),
          })
          .strict()
          .refine((t) => !t.cert_file === !t.key_file, "cert_file and key_file go together")
          .optional(),
        /** Change-log entries a primary keeps; a replica further behind gets a snapshot. */
        retain_changes: z.number().int().positive().default(DEFAULTS.retainChanges),
        /**
         * Replicas a primary sends a snapshot at once; the others wait their
         * turn (kept alive by heartbeats), so a fleet restarting at once
         * cannot starve the admin API.
         */
        /** How often a replica reports its key usage to the primary. */
        usage_interval: z
          .string()
          .default(DEFAULTS.usageInterval)
          .refine((value) => (durationMs(value) ?? 0) > 0, "expected a duration such as 10s or 1m"),
        /**
         * An admin write is acknowledged only once this many replicas applied
         * it (a primary; 0: at once). A replica promoted after the primary's
         * loss then holds every acknowledged write.
         */
        sync_replicas: z.number().int().min(0).default(0),
        max_concurrent_snapshots: z
          .number()
          .int()
          .positive()
          .default(DEFAULTS.maxConcurrentSnapshots),
      })
      .strict()
      .prefault({}),
    keys: z
      .object({
        /** Lifetime of user and agent keys created without an expiry (e.g. 90d, 12h). */
        default_ttl: z
          .string()
          .default(DEFAULTS.keyTtl)
          .refine(
            (value) => durationMs(value) !== undefined,
            "expected a duration such as 90d or 12h",
          ),
        /** How long hourly usage buckets are kept (every node's use, merged on the primary). */
        usage_retention: z
          .string()
          .default(DEFAULTS.usageRetention)
          .refine((value) => (durationMs(value) ?? 0) > 0, "expected a duration such as 30d"),
        /** The longest grace RotateKey may give a previous secret (e.g. 7d, 1h). */
        max_rotation_grace: z
          .string()
          .default(DEFAULTS.maxRotationGrace)
          .refine(
            (value) => durationMs(value) !== undefined,
            "expected a duration such as 7d or 1h",
          ),
      })
      .strict()
      .prefault({}),
    /**
     * Scopes no policy rule names but keys may hold, because the upstream
     * checks them itself; the admin API refuses any other unknown scope.
     */
    scopes: scopeList.default([]),
    cache: z
      .object({ max_entries: z.number().int().positive().default(DEFAULTS.cacheMaxEntries) })
      .strict()
      .prefault({}),
    /**
     * Processes serving Check on the one Check port (node:cluster): 1 serves
     * it in the main process; more fork that many Check workers, which read
     * the same SQLite file, while the admin API, the HTTP port and
     * replication stay in the main process.
     */
    /** The key console on the admin port; unset: on for single and primary, off on a replica. */
    console: z.object({ enabled: z.boolean().optional() }).strict().prefault({}),
    workers: z.preprocess(digits, z.number().int().min(1).max(64)).default(DEFAULTS.workers),
    log_level: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
      .default(DEFAULTS.logLevel),
    metrics: z
      .object({
        /** Tenants with a series of their own in keyward_tenant_decisions_total; the rest are "other". */
        max_tenants: z.number().int().min(0).max(10_000).default(DEFAULTS.maxTenants),
      })
      .strict()
      .prefault({}),
    debug: z
      .object({
        /** `/debug/top-keys` on the HTTP port: the busiest keys over the last minutes. Off by default. */
        top_keys: z
          .object({
            enabled: z.boolean().default(false),
            /** Whole minutes, 1m to 60m. */
            window: z
              .string()
              .default(DEFAULTS.topKeysWindow)
              .refine((value) => {
                const ms = durationMs(value);
                return ms !== undefined && ms % 60_000 === 0 && ms >= 60_000 && ms <= 3_600_000;
              }, "expected whole minutes from 1m to 60m"),
            /** Keys tallied per minute (memory bound). */
            max_keys: z.number().int().min(10).max(100_000).default(DEFAULTS.topKeysCapacity),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        /** Share of allowed decisions logged (0..1), with the deny lines' fields. */
        allow_sample_rate: z.number().min(0).max(1).default(0),
        /**
         * Write decision lines (denies, shadow denies, sampled allows) to this
         * file instead of standard error, rotated by size; a Check worker
         * writes FILE with `.worker-N` before its extension.
         */
        file: z
          .object({
            path: z.string().min(1),
            max_size: z
              .string()
              .regex(/^[1-9]\d*[BKMG]$/, "expected a size such as 10M (B, K, M or G)")
              .default(DEFAULTS.logFileMaxSize),
            max_files: z.number().int().min(1).max(1000).default(DEFAULTS.logFileMaxFiles),
          })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** A validated configuration with every default filled in. */
export type Config = z.output<typeof configSchema>;

/** Whether the admin port serves the key console (DESIGN: on by default except on a replica). */
export function consoleEnabled(config: Pick<Config, "console" | "role">): boolean {
  return config.console.enabled ?? config.role !== "replica";
}
