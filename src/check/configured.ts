import type { Config } from "../config/schema.js";
import { decisionLogger, type Logger } from "../lib/log.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { type CheckServer, startCheckServer } from "./server.js";

/**
 * The Check server as a configuration describes it, logging its denies:
 * what the main process starts with `workers: 1`, and each Check worker with
 * more. `pipeline` is the one the decider serves to gRPC (traced, counted).
 */
export function startConfiguredCheckServer(
  config: Config,
  pipeline: Pipeline,
  logger: Logger,
): Promise<CheckServer> {
  return startCheckServer({
    pipeline,
    logger: decisionLogger(logger, "check"),
    host: config.listen.host,
    port: config.listen.check,
    prefix: config.headers.prefix,
    stripAuthorization: config.headers.strip_authorization,
    responseCacheEntries: config.cache.max_entries,
    metadataNamespace: config.route_metadata.namespace,
  });
}
