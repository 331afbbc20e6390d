import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { Decision } from "../auth/decision.js";
import { whenReady } from "../lib/maybe-async.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { TalliedCounter, TalliedHistogram } from "./tally.js";
import { TenantDecisions } from "./tenant-decisions.js";
import type { TopKeys } from "./top-keys.js";

/** Where a decision was asked for. */
export type Transport = "grpc" | "http";

/** Read-only sources that metrics sample at scrape time (no cost per request). */
export interface MetricSources {
  readonly keyCache?: () => { hits: number; misses: number };
  readonly jwt?: () => {
    verifications: number;
    cacheHits: number;
    jwksFetches: number;
    jwksFailures: number;
    cacheInvalidations: number;
  };
  readonly replica?: () => {
    appliedSequence: number;
    primarySequence: number;
    lastHeardAt: number | undefined;
    reconnects: number;
    snapshots: number;
    connected: boolean;
  };
  /** A replica's usage reports to its primary. */
  readonly usageReports?: () => { sent: number; failed: number; dropped: number };
  readonly now?: () => number;
  /** Distinct tenants counted by name in keyward_tenant_decisions_total; default 100. */
  readonly maxTenants?: number;
  /** Where each decision's key is tallied for /debug/top-keys, when that is on. */
  readonly topKeys?: TopKeys;
}

/**
 * keyward's Prometheus metrics, on a registry of its own. Counters that the
 * hot path would otherwise update per request (cache hits, JWKS fetches,
 * replication state) are read from their owners when Prometheus scrapes.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #decisions: TalliedCounter<"transport" | "outcome" | "code" | "kind">;
  readonly #duration: TalliedHistogram<"transport">;
  readonly #admin: Counter<"method" | "outcome">;
  readonly #shadowDenies: Counter<"code">;
  readonly #previousSecret: Counter<"transport">;
  readonly #tenants: TenantDecisions;
  readonly #topKeys: TopKeys | undefined;

  constructor(sources: MetricSources = {}) {
    const registers = [this.registry];
    // prom-client's default names, unprefixed: process_resident_memory_bytes,
    // process_cpu_seconds_total, nodejs_eventloop_lag_seconds... are what every
    // Node.js and process dashboard queries.
    collectDefaultMetrics({ register: this.registry });
    // The two metrics every Check updates are tallied as plain numbers and
    // handed to prom-client at scrape time (tally.ts).
    this.#decisions = new TalliedCounter(
      this.registry,
      "keyward_decisions_total",
      "Authorization decisions, by transport, outcome (allow or deny), deny code and credential kind.",
      ["transport", "outcome", "code", "kind"],
    );
    this.#duration = new TalliedHistogram(this.registry, {
      name: "keyward_check_duration_seconds",
      help: "Time keyward spent deciding one request, from request view to decision.",
      label: "transport",
      buckets: [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
      ],
    });
    this.#shadowDenies = new Counter({
      name: "keyward_shadow_denies_total",
      help: "Requests allowed in shadow mode that enforce mode would have denied, by the would-be deny code.",
      labelNames: ["code"],
      registers,
    });
    this.#tenants = new TenantDecisions(this.registry, sources.maxTenants ?? 100);
    this.#topKeys = sources.topKeys;
    this.#previousSecret = new Counter({
      name: "keyward_previous_secret_allows_total",
      help: "Requests allowed through a key's previous secret during a rotation grace: callers that have not switched yet.",
      labelNames: ["transport"],
      registers,
    });
    this.#admin = new Counter({
      name: "keyward_admin_requests_total",
      help: "Admin API calls, by RPC and outcome (ok or an error code).",
      labelNames: ["method", "outcome"],
      registers,
    });
    /** A value read from its owner at scrape time, exposed as a gauge. */
    const sampled = (name: string, help: string, read: () => number | undefined) => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const value = read();
          if (value !== undefined) this.set(value);
        },
      });
    };
    /**
     * A monotonic count kept by its owner (the hot path only bumps a plain
     * number), exposed as a Prometheus counter: each scrape adds what the
     * owner counted since the previous one. An owner that starts over (a
     * reload replaces the JWT verifier) is counted from its zero, so the
     * counter never goes down.
     */
    const counted = (name: string, help: string, read: () => number) => {
      let seen = 0;
      new Counter({
        name,
        help,
        registers,
        collect() {
          const value = read();
          const delta = value >= seen ? value - seen : value;
          seen = value;
          if (delta > 0) this.inc(delta);
        },
      });
    };
    const { keyCache, jwt, replica, usageReports } = sources;
    if (usageReports) {
      counted(
        "keyward_usage_reports_sent_total",
        "Usage reports the primary acknowledged.",
        () => usageReports().sent,
      );
      counted(
        "keyward_usage_reports_failed_total",
        "Usage report attempts that failed (each is sent again next interval).",
        () => usageReports().failed,
      );
      counted(
        "keyward_usage_dropped_total",
        "Key uses not counted because the usage tally was full (primary unreachable too long).",
        () => usageReports().dropped,
      );
    }
    const now = sources.now ?? Date.now;
    if (keyCache) {
      counted(
        "keyward_key_cache_hits_total",
        "API-key verifications answered from the decision cache or the refused-key cache.",
        () => keyCache().hits,
      );
      counted(
        "keyward_key_cache_misses_total",
        "API-key verifications that read the key table.",
        () => keyCache().misses,
      );
    }
    if (jwt) {
      counted(
        "keyward_jwt_cache_hits_total",
        "JWTs answered from the verified-token cache.",
        () => jwt().cacheHits,
      );
      counted(
        "keyward_jwt_verifications_total",
        "JWT signature verifications performed.",
        () => jwt().verifications,
      );
      counted(
        "keyward_jwks_fetches_total",
        "JWKS loads attempted (URL or file).",
        () => jwt().jwksFetches,
      );
      counted(
        "keyward_jwks_fetch_failures_total",
        "JWKS loads that failed.",
        () => jwt().jwksFailures,
      );
      counted(
        "keyward_jwt_cache_invalidations_total",
        "Verified-token cache entries dropped because their verifying key left the issuer's JWKS.",
        () => jwt().cacheInvalidations,
      );
    }
    if (replica) {
      sampled(
        "keyward_replication_lag_sequences",
        "Changes the primary has announced that this replica has not applied yet.",
        () => replica().primarySequence - replica().appliedSequence,
      );
      sampled(
        "keyward_replication_applied_sequence",
        "Last change-log sequence this replica applied.",
        () => replica().appliedSequence,
      );
      sampled(
        "keyward_replication_last_heard_seconds",
        "Seconds since this replica last heard from its primary.",
        () => {
          const heard = replica().lastHeardAt;
          return heard === undefined ? undefined : (now() - heard) / 1000;
        },
      );
      sampled(
        "keyward_replication_connected",
        "1 while the replication stream is connected.",
        () => (replica().connected ? 1 : 0),
      );
      counted(
        "keyward_replication_reconnects_total",
        "Reconnections to the primary.",
        () => replica().reconnects,
      );
      counted(
        "keyward_replication_snapshots_total",
        "Snapshots applied.",
        () => replica().snapshots,
      );
    }
  }

  /** Counts one decision: a few map lookups and adds (see tally.ts). */
  decided(transport: Transport, decision: Decision, seconds: number): void {
    const outcome = decision.allow ? "allow" : "deny";
    const code = decision.allow ? "none" : decision.code;
    const kind = (decision.allow ? decision.identity?.kind : decision.kind) || "none";
    const series =
      this.#decisions.find(transport, code, kind) ??
      this.#decisions.add(transport, code, kind, { transport, outcome, code, kind });
    series.count += 1;
    if (decision.allow && decision.shadowDeny)
      this.#shadowDenies.labels(decision.shadowDeny.code).inc();
    if (decision.allow && decision.identity?.previousSecret)
      this.#previousSecret.labels(transport).inc();
    this.#tenants.count(decision);
    this.#topKeys?.record(decision);
    this.#duration.record(transport, seconds);
  }

  adminCall(method: string, outcome: string): void {
    this.#admin.labels(method, outcome).inc();
  }

  /** Wraps a pipeline so every decision it makes is counted and timed. */
  instrument(pipeline: Pipeline, transport: Transport): Pipeline {
    return (view) => {
      const started = performance.now();
      return whenReady(pipeline(view), (decision) => {
        this.decided(transport, decision, (performance.now() - started) / 1000);
        return decision;
      });
    };
  }
}
