// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per
// function and per area (transport, codec, logging, store, keyward, ...).
//   node bench/profile.mjs FILE.cpuprofile [TOP]
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const AREAS = [
  [/node_modules\/@grpc\/grpc-js\//, "grpc-js"],
  [/node_modules\/@bufbuild\/protobuf\//, "protobuf-es"],
  [
    /node_modules\/(pino|sonic-boom|fast-redact|thread-stream|quick-format-unescaped)/,
    "logging (pino)",
  ],
  [/node_modules\/better-sqlite3\//, "better-sqlite3"],
  [/node_modules\/jose\//, "jose (JWT)"],
  [/node_modules\/lru-cache\//, "lru-cache (key, JWT caches)"],
  [/node_modules\/(prom-client|tdigest|bintrees)\//, "metrics (prom-client)"],
  [/node_modules\//, "other dependencies"],
  [/\/dist\//, "keyward (dist/)"],
  [/^node:internal\/http2|^node:http2/, "node:http2"],
  [/^node:internal\/encoding/, "TextEncoder/TextDecoder (protobuf-es strings)"],
  [/^node:internal\/crypto/, "node:crypto"],
  [/^node:internal\/(modules|vm)|^node:internal\/main/, "module loading (start-up)"],
  [/^node:internal\/(streams|stream_base_commons)|^node:net|^node:stream/, "streams and sockets"],
  [
    /^node:internal\/process\/task_queues|^node:internal\/timers|^node:events/,
    "events, ticks and timers",
  ],
  [/^node:buffer|^node:internal\/buffer/, "node:buffer"],
  [/^node:/, "node core (other)"],
];

function areaOf(frame) {
  const { functionName, url } = frame;
  if (functionName === "(garbage collector)") return "GC";
  if (functionName === "(idle)") return "idle";
  if (functionName === "(program)") return "program (native, unattributed)";
  if (url === "") {
    if (/^(encodeUtf8String|decodeUTF8|encodeInto)$/.test(functionName)) {
      return "TextEncoder/TextDecoder (protobuf-es strings)";
    }
    if (functionName === "runMicrotasks") return "events, ticks and timers";
    return "native builtins";
  }
  for (const [pattern, area] of AREAS) if (pattern.test(url)) return area;
  return "other";
}

function shortUrl(url) {
  const at = url.lastIndexOf("node_modules/");
  if (at !== -1) return url.slice(at + "node_modules/".length);
  const dist = url.lastIndexOf("/dist/");
  if (dist !== -1) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, "");
}

/**
 * Self time of the main thread by function and by area, in ms and as a share
 * of the busy (non-idle) time. `top` limits the function list; `fromUs` and
 * `toUs` (CLOCK_MONOTONIC µs, the clock of `process.hrtime` and of the
 * profile's own timestamps) keep only the samples of that window, e.g. a load
 * run's measured period without start-up and warm-up.
 */
export function summarizeProfile(file, { top = 15, fromUs = -Infinity, toUs = Infinity } = {}) {
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at < fromUs || at > toUs) continue;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const functions = new Map();
  const areas = new Map();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id).callFrame;
    const area = areaOf(frame);
    if (area === "idle") continue;
    busy += us;
    areas.set(area, (areas.get(area) ?? 0) + us);
    const name = `${frame.functionName || "(anonymous)"} ${shortUrl(frame.url)}${frame.url ? `:${frame.lineNumber + 1}` : ""}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  const rank = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / busy }));
  return { busyMs: busy / 1000, areas: rank(areas), functions: rank(functions).slice(0, top) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const summary = summarizeProfile(process.argv[2], { top: Number(process.argv[3] ?? 25) });
  console.log(`busy ${summary.busyMs.toFixed(0)} ms`);
  for (const a of summary.areas)
    console.log(`${(a.share * 100).toFixed(1).padStart(5)}%  ${a.name}`);
  console.log("");
  for (const f of summary.functions)
    console.log(`${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}`);
}
