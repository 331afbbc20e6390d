import { tuneHeap } from "../lib/heap-tuning.js";
import { createLogger } from "../lib/log.js";
import { type FromWorker, isProtocolMessage, type ToWorker } from "./messages.js";
import { runCheckWorker } from "./worker.js";

// A Check worker's process, forked by the main one through node:cluster
// (pool.ts). It asks for its configuration once it can hear the answer: a
// message that arrives while this module is still loading has no listener
// and is lost. A worker is a Node process of its own: it tunes its heap as
// bin/keyward.js does for the main one.
tuneHeap();
const waiting = (message: unknown) => {
  if (!isProtocolMessage(message) || message.kw !== "start") return;
  process.off("message", waiting);
  process.off("disconnect", orphaned);
  const { slot, config } = message as Extract<ToWorker, { kw: "start" }>;
  const logger = createLogger({ level: config.log_level }).child({ worker: slot });
  runCheckWorker(config, logger, slot).catch((error: Error) => {
    logger.error({ err: error }, "check worker failed to start");
    const failed: FromWorker = { kw: "failed", message: error.message };
    process.send?.(failed, undefined, undefined, () => process.exit(1));
  });
};
const orphaned = () => process.exit(0);
process.on("message", waiting);
process.on("disconnect", orphaned);
const ready: FromWorker = { kw: "waiting" };
process.send?.(ready);
