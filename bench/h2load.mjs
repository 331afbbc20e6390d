// Runs h2load against a Check server and reads its per-request log.
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { CHECK_PATH } from "./grpc-check.mjs";
import { latencySummary } from "./stats.mjs";

/** The core h2load (and the Node load client) run on; the servers run on core 0. */
export const CLIENT_CORE = "1";

/**
 * Builds the h2load argument list. `rps` (optional) limits each connection to
 * that many requests per second; without it h2load runs closed-loop at
 * saturation with `connections × streams` requests in flight.
 */
export function h2loadArgs({
  port,
  bodyFile,
  connections,
  streams,
  durationS,
  warmupS,
  rps,
  logFile,
}) {
  const args = [
    "-c",
    String(connections),
    "-m",
    String(streams),
    "-D",
    String(durationS),
    `--warm-up-time=${warmupS}`,
    "-d",
    bodyFile,
    "-H",
    "content-type: application/grpc",
    "-H",
    "te: trailers",
    `--log-file=${logFile}`,
  ];
  if (rps !== undefined) args.push(`--rps=${rps}`);
  args.push(`http://127.0.0.1:${port}${CHECK_PATH}`);
  return args;
}

/** The exact command line, for RESULTS.md. */
export function h2loadCommand(options) {
  return ["taskset", "-c", CLIENT_CORE, "h2load", ...h2loadArgs(options)]
    .map((part) => (/[\s:]/.test(part) && !part.includes("://") ? `'${part}'` : part))
    .join(" ");
}

/**
 * One h2load run, pinned to the client core. Resolves with req/s over the
 * measured period (after warm-up), request counts and per-request latencies
 * (µs, from --log-file), and h2load's own CPU over the measured period as a
 * share of one core (`clientCpu`). `track` registers the child for clean-up;
 * `onPhase("start" | "end")` is called when the measured period starts and ends.
 */
export function runH2load(options, track, onPhase) {
  const phases = { measuring: false, done: false };
  return new Promise((resolve, reject) => {
    const child = spawn("taskset", ["-c", CLIENT_CORE, "h2load", ...h2loadArgs(options)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    track?.(child);
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      // h2load announces the end of warm-up and of the measured period.
      if (!phases.measuring && out.includes("Warm-up phase is over")) {
        phases.measuring = true;
        phases.start = cpuTicks(child.pid);
        onPhase?.("start");
      }
      if (!phases.done && out.includes("Main benchmark duration is over")) {
        phases.done = true;
        phases.end = cpuTicks(child.pid);
        onPhase?.("end");
      }
    });
    child.stderr.on("data", (chunk) => {
      out += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new Error(`h2load exited ${code}: ${out.trim().split("\n").slice(-3).join(" | ")}`));
        return;
      }
      const finished = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(out);
      const counts =
        /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
          out,
        );
      if (!finished || !counts) {
        reject(new Error(`cannot parse h2load output:\n${out}`));
        return;
      }
      const latencies = readLatencies(options.logFile);
      rmSync(options.logFile, { force: true });
      resolve({
        rps: Number(finished[2]),
        requests: Number(counts[1]),
        succeeded: Number(counts[4]),
        failed: Number(counts[5]),
        errored: Number(counts[6]),
        latency: latencySummary(latencies),
        latencies,
        clientCpu:
          phases.start && phases.end
            ? (phases.end.ticks - phases.start.ticks) /
              TICKS_PER_SECOND /
              ((phases.end.at - phases.start.at) / 1000)
            : Number.NaN,
      });
    });
  });
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these. */
const TICKS_PER_SECOND = 100;

/**
 * The process's CPU time (user + system, ticks), which unlike the per-thread
 * schedstat keeps the time of threads that have exited, and the wall clock.
 */
function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may hold spaces: state is field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ticks: Number(fields[11]) + Number(fields[12]), at: performance.now() };
  } catch {
    return undefined;
  }
}

/** Column 3 of h2load's log: µs from request start to end of response; status -1 = failed. */
function readLatencies(file) {
  const text = readFileSync(file, "utf8");
  const values = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    const tab1 = line.indexOf("\t");
    const tab2 = line.indexOf("\t", tab1 + 1);
    if (tab2 === -1 || line.slice(tab1 + 1, tab2) === "-1") continue;
    values.push(Number(line.slice(tab2 + 1)));
  }
  return values;
}

/**
 * Several h2load processes at once (each with its own body), all on the
 * client core: a mixed workload. Sums req/s and merges the latencies.
 */
export async function runH2loadMix(parts, track, onPhase) {
  const results = await Promise.all(
    parts.map((part, i) => runH2load(part, track, i === 0 ? onPhase : undefined)),
  );
  return {
    rps: results.reduce((sum, r) => sum + r.rps, 0),
    requests: results.reduce((sum, r) => sum + r.requests, 0),
    succeeded: results.reduce((sum, r) => sum + r.succeeded, 0),
    failed: results.reduce((sum, r) => sum + r.failed, 0),
    errored: results.reduce((sum, r) => sum + r.errored, 0),
    latency: latencySummary(results.flatMap((r) => [...r.latencies])),
    latencies: [],
    parts: results.map((r) => r.rps),
  };
}
