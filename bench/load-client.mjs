// A closed-loop gRPC load generator on raw node:http2, for workloads h2load
// cannot express: every request may carry a different body (h2load sends one
// body file). Bodies are read from a file of concatenated gRPC frames and
// sent round-robin. Run pinned to the client core:
//   taskset -c 1 node bench/load-client.mjs '{"port":..,"bodies":"file",...}'
// Prints one JSON line: req/s over the measured period, latency percentiles
// (µs), errors, the decisions of sampled responses and the client's own CPU use.
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { CHECK_PATH, decisionOf } from "./grpc-check.mjs";
import { latencySummary } from "./stats.mjs";

const options = JSON.parse(process.argv[2] ?? "{}");
const {
  port,
  bodies: bodiesFile,
  connections = 4,
  streams = 16,
  durationS = 5,
  warmupS = 1,
  sampleEvery = 64,
} = options;

/** Splits a file of concatenated gRPC frames (5-byte prefix + message) into frames. */
function splitFrames(buffer) {
  const frames = [];
  for (let at = 0; at < buffer.length; ) {
    const length = buffer.readUInt32BE(at + 1);
    frames.push(buffer.subarray(at, at + 5 + length));
    at += 5 + length;
  }
  return frames;
}

const frames = splitFrames(readFileSync(bodiesFile));
const headers = {
  ":method": "POST",
  ":path": CHECK_PATH,
  "content-type": "application/grpc",
  te: "trailers",
};

let next = 0;
let sequence = 0;
let measuring = false;
let stopping = false;
let measureStart = 0;
let measureEnd = 0;
let completed = 0;
let errors = 0;
let cpuStart;
const latencies = [];
const decisions = {};

function fire(session) {
  if (stopping || session.closed || session.destroyed) return;
  const body = frames[next];
  next = next + 1 === frames.length ? 0 : next + 1;
  const sample = ++sequence % sampleEvery === 0;
  const started = performance.now();
  const stream = session.request(headers);
  const chunks = sample ? [] : undefined;
  let grpcStatus;
  stream.on("data", (chunk) => {
    chunks?.push(chunk);
  });
  stream.on("trailers", (trailers) => {
    grpcStatus = trailers["grpc-status"];
  });
  stream.on("error", () => {});
  stream.on("close", () => {
    const ended = performance.now();
    const ok = grpcStatus === "0" && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR;
    if (measuring && ended <= measureEnd) {
      if (ok) {
        completed++;
        latencies.push((ended - started) * 1000);
      } else errors++;
    }
    if (ok && chunks) {
      const decision = decisionOf(Buffer.concat(chunks));
      decisions[decision] = (decisions[decision] ?? 0) + 1;
    }
    fire(session);
  });
  stream.end(body);
}

const sessions = [];
for (let i = 0; i < connections; i++) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  sessions.push(session);
}
await Promise.all(
  sessions.map((session) => new Promise((resolve) => session.once("connect", resolve))),
);
for (const session of sessions) for (let s = 0; s < streams; s++) fire(session);

setTimeout(() => {
  measuring = true;
  measureStart = performance.now();
  measureEnd = measureStart + durationS * 1000;
  cpuStart = process.cpuUsage();
  process.stdout.write("measuring\n");
  setTimeout(() => {
    stopping = true;
    const cpu = process.cpuUsage(cpuStart);
    const seconds = (performance.now() - measureStart) / 1000;
    const result = {
      rps: completed / seconds,
      requests: completed,
      errors,
      latency: latencySummary(latencies),
      decisions,
      clientCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    for (const session of sessions) session.destroy();
    setTimeout(() => process.exit(0), 50).unref();
  }, durationS * 1000);
}, warmupS * 1000);
