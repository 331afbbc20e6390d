import { startConfiguredCheckServer } from "../check/configured.js";
import type { CheckServer } from "../check/server.js";
import type { Config } from "../config/schema.js";
import { createDecider } from "../decider/decider.js";
import { UsageTally } from "../keys/usage.js";
import type { Logger } from "../lib/log.js";
import { type FromWorker, isProtocolMessage, type ToWorker } from "./messages.js";

/** How often a Check worker hands its key usage to the main process. */
const WORKER_USAGE_INTERVAL_MS = 1000;

/**
 * One Check worker (`workers` > 1): the decision side of keyward and nothing
 * else. It opens the SQLite file itself (reads never wait for the main
 * process's writes, WAL) and sees the admin API's commits the way the
 * single-process Check does, through `PRAGMA data_version`, so a revoked key
 * is refused here on the next request. The main process hands it every
 * reloaded configuration and asks it for its metrics.
 *
 * Resolves once the worker listens; it exits on a `close` message, on
 * SIGTERM or SIGINT (after draining), or when the main process goes away.
 */
export async function runCheckWorker(config: Config, logger: Logger, slot?: number): Promise<void> {
  const send = (message: FromWorker) => process.send?.(message);
  // The worker's key usage goes to the main process, which writes or reports it.
  const decider = createDecider({
    config,
    logger,
    usage: new UsageTally(),
    ...(slot !== undefined && { worker: slot }),
  });
  const sendUsage = () => {
    const entries = decider.usage.drain();
    if (entries.length > 0) send({ kw: "usage", entries });
  };
  const usageTimer = setInterval(sendUsage, WORKER_USAGE_INTERVAL_MS);
  usageTimer.unref();
  let check: CheckServer | undefined;

  let closing = false;
  const shutdown = async (why: string) => {
    if (closing) return;
    closing = true;
    logger.info({ why }, "check worker draining");
    await check?.close();
    clearInterval(usageTimer);
    sendUsage();
    await decider.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // The IPC channel closes when the main process exits, however it exits.
  process.on("disconnect", () => void shutdown("the main process is gone"));

  await decider.start();

  process.on("message", (message: unknown) => {
    if (!isProtocolMessage(message)) return;
    const request = message as ToWorker;
    if (request.kw === "reload") {
      decider.decisions.reload(request.config).then(
        () => send({ kw: "reloaded", id: request.id }),
        (error: Error) => {
          logger.error({ error: error.message }, "reload refused by a check worker");
          send({ kw: "reloaded", id: request.id, error: error.message });
        },
      );
    } else if (request.kw === "metrics") {
      decider.metrics.registry
        .getMetricsAsJSON()
        .then((samples) => send({ kw: "metrics", id: request.id, metrics: samples }));
    } else if (request.kw === "topKeys") {
      send({ kw: "topKeys", id: request.id, report: decider.topKeys?.report(request.limit) });
    } else if (request.kw === "close") {
      void shutdown("the main process is stopping");
    }
  });

  check = await startConfiguredCheckServer(
    config,
    decider.served("grpc"),
    decider.decisionLog("check"),
  );
  send({ kw: "listening", port: check.port });
}
