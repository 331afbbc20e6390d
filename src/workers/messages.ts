import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { Config } from "../config/schema.js";
import type { UsageEntry } from "../keys/usage.js";
import type { TopKeysReport } from "../observability/top-keys.js";

/** Prometheus samples as `Registry.getMetricsAsJSON()` returns them. */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * What the main process sends a Check worker over the cluster IPC channel.
 * The configuration travels here, not in the environment, so that a
 * replication token in it never shows in a worker's `/proc/<pid>/environ`.
 */
export type ToWorker =
  | { readonly kw: "start"; readonly slot: number; readonly config: Config }
  | { readonly kw: "reload"; readonly id: number; readonly config: Config }
  | { readonly kw: "metrics"; readonly id: number }
  | { readonly kw: "topKeys"; readonly id: number; readonly limit: number }
  | { readonly kw: "close" };

/** What a Check worker answers. */
export type FromWorker =
  | { readonly kw: "waiting" }
  | { readonly kw: "listening"; readonly port: number }
  | { readonly kw: "failed"; readonly message: string }
  | { readonly kw: "reloaded"; readonly id: number; readonly error?: string }
  | { readonly kw: "metrics"; readonly id: number; readonly metrics: MetricsJson }
  | { readonly kw: "topKeys"; readonly id: number; readonly report: TopKeysReport | undefined }
  | { readonly kw: "usage"; readonly entries: UsageEntry[] };

/** True for a message of this protocol (the channel also carries Node's own). */
export function isProtocolMessage(message: unknown): message is { kw: string } {
  return typeof message === "object" && message !== null && "kw" in message;
}
