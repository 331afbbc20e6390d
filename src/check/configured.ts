import type { Config } from "../config/schema.js";
import type { Logger } from "../lib/log.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { type CheckServer, startCheckServer } from "./server.js";

/**
 * The Check server as a configuration describes it, logging its decisions:
 * what the main process starts with `workers: 1`, and each Check worker with
 * more. `pipeline` is the one the decider serves to gRPC (traced, counted),
 * `decisionLog` the decider's decision logger for it.
 */
export function startConfiguredCheckServer(
  config: Config,
  pipeline: Pipeline,
  decisionLog: Logger,
): Promise<CheckServer> {
  return startCheckServer({
    pipeline,
    logger: decisionLog,
    allowSampleRate: config.log.allow_sample_rate,
    host: config.listen.host,
    port: config.listen.check,
    prefix: config.headers.prefix,
    stripAuthorization: config.headers.strip_authorization,
    responseCacheEntries: config.cache.max_entries,
    metadataNamespace: config.route_metadata.namespace,
  });
}
