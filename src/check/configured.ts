import type { Config } from "../config/schema.js";
import { decisionLogger, type Logger } from "../lib/log.js";
import type { Metrics } from "../observability/metrics.js";
import { traced } from "../observability/tracing.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { type CheckServer, startCheckServer } from "./server.js";

/**
 * The Check server as a configuration describes it, instrumented (metrics,
 * tracing) and logging its denies: what the main process starts with
 * `workers: 1`, and each Check worker with more.
 */
export function startConfiguredCheckServer(
  config: Config,
  pipeline: Pipeline,
  metrics: Metrics,
  logger: Logger,
): Promise<CheckServer> {
  return startCheckServer({
    pipeline: metrics.instrument(traced(pipeline, "grpc"), "grpc"),
    logger: decisionLogger(logger, "check"),
    host: config.listen.host,
    port: config.listen.check,
    prefix: config.headers.prefix,
    stripAuthorization: config.headers.strip_authorization,
    responseCacheEntries: config.cache.max_entries,
  });
}
