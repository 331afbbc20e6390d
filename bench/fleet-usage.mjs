// The usage phase of bench/fleet.mjs, and the admin load both phases time:
// every simulated replica reports key usage on the real ReportUsage RPC
// (over its own Watch connection) once per interval, at a random offset as
// a fleet started at different times would; meanwhile CreateKey is timed,
// and one use at the real replica is timed until the primary's lastUsedAt shows it.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { create, toBinary } from "@bufbuild/protobuf";
import { ReportUsageRequestSchema } from "../dist/gen/keyward/replication/v1/replication_pb.js";
import { checkOn, checkRequestBody } from "./grpc-check.mjs";
import { schedOf, sleep } from "./servers.mjs";
import { latencySummary } from "./stats.mjs";

const REPORT_PATH = "/keyward.replication.v1.ReplicationService/ReportUsage";
/** Keys each simulated replica reports per interval (a sidecar sees its workload's few callers). */
const KEYS_PER_REPORT = 20;

/**
 * CreateKey one call at a time on a worker thread (fleet-admin.mjs), once its
 * connection is up; `stop()` resolves with the latencies (ms) and when each call started.
 */
export async function adminLoad(url, secret) {
  const worker = new Worker(new URL("./fleet-admin.mjs", import.meta.url), {
    workerData: { url, secret },
  });
  await new Promise((resolve) => worker.once("message", resolve)); // "ready"
  return {
    async stop() {
      const result = await new Promise((resolve) => {
        worker.once("message", resolve);
        worker.postMessage("stop");
      });
      await worker.terminate();
      return result;
    },
  };
}

/** One ReportUsage call on `session`; resolves with the gRPC status code. */
function reportUsage(session, token, request) {
  const body = toBinary(ReportUsageRequestSchema, create(ReportUsageRequestSchema, request));
  const framed = Buffer.alloc(5 + body.length);
  framed.writeUInt32BE(body.length, 1);
  framed.set(body, 5);
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": REPORT_PATH,
      "content-type": "application/grpc+proto",
      te: "trailers",
      authorization: `Bearer ${token}`,
    });
    let status = -1;
    const take = (headers) => {
      if (headers["grpc-status"] !== undefined) status = Number(headers["grpc-status"]);
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("error", () => undefined);
    stream.on("close", () => resolve(status));
    stream.resume();
    stream.end(framed);
  });
}

/** Bytes a process has caused to be written to storage (/proc/PID/io write_bytes). */
function storageWrites(pid) {
  return Number(
    /write_bytes: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? Number.NaN,
  );
}

/**
 * Runs `intervals` report intervals of `intervalMs` with every simulated
 * replica reporting; returns the primary's load and the lastUsedAt delay.
 */
export async function usagePhase(options) {
  const { sims, token, primary, admin, checkSession, freshSecret, keyIds } = options;
  const { intervalMs = 10_000, intervals = 2, url, adminSecret } = options;
  const load = await adminLoad(url, adminSecret);
  const outcome = { ok: 0, failed: 0, entries: 0 };
  const reporters = sims.map(() => ({ id: randomUUID(), batch: 0 }));
  const cpu0 = schedOf(primary.pid);
  const written0 = storageWrites(primary.pid);
  const start = performance.now();
  const end = start + intervals * intervalMs;
  const loops = sims.map(async (sim, i) => {
    const reporter = reporters[i];
    let next = start + Math.random() * intervalMs;
    while (next < end) {
      await sleep(next - performance.now());
      const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
      const usage = Array.from({ length: KEYS_PER_REPORT }, (_, k) => ({
        keyId: keyIds[(i * KEYS_PER_REPORT + k) % keyIds.length],
        hour: BigInt(hour),
        lastUsedAt: BigInt(Date.now()),
        allowed: 10n,
      }));
      reporter.batch++;
      const status = await reportUsage(sim.session, token, {
        reporter: reporter.id,
        batch: BigInt(reporter.batch),
        usage,
      });
      if (status === 0) {
        outcome.ok++;
        outcome.entries += usage.length;
      } else outcome.failed++;
      next += intervalMs;
    }
  });
  // One use at the real replica (its own report interval, default 10 s), timed to lastUsedAt.
  const id = freshSecret.split("_")[2];
  const used = checkOn(checkSession, checkRequestBody(freshSecret)).then(() => performance.now());
  const usedAt = await used;
  let lastUsedDelayMs = Number.NaN;
  while (performance.now() < usedAt + 3 * 10_000) {
    const { key } = await admin.client.getKey({ id }, { headers: admin.headers });
    if (key?.lastUsedAt) {
      lastUsedDelayMs = performance.now() - usedAt;
      break;
    }
    await sleep(50);
  }
  await Promise.all(loops);
  const seconds = (performance.now() - start) / 1000;
  const cpu1 = schedOf(primary.pid);
  const written1 = storageWrites(primary.pid);
  const { latencies } = await load.stop();
  return {
    reportersN: sims.length,
    keysPerReport: KEYS_PER_REPORT,
    intervalMs,
    reportsPerSecond: outcome.ok / seconds,
    rowsPerSecond: outcome.entries / seconds,
    failedReports: outcome.failed,
    primaryCpuPerSecond: (cpu1.run - cpu0.run) / 1e9 / seconds,
    // The CreateKey load's own writes included.
    primaryStorageKbPerSecond: (written1 - written0) / 1024 / seconds,
    createKeyMs: latencySummary(latencies),
    lastUsedDelayMs,
  };
}
