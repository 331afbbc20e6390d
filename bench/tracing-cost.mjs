// What tracing costs the hot path (issue 23): one allowed API-key decision,
// in process, through the pipeline alone, through what the decider serves
// without OTEL_* (tracedIfEnabled: no SDK loaded, so no wrapper), through the
// tracing wrapper on the API's no-op tracer, and with the SDK registered by
// otel-sdk.ts (OTEL_EXPORTER_OTLP_ENDPOINT set, always-on sampling, spans
// batched to a loopback receiver that discards them).
//
//   npm run build && taskset -c 0 node bench/tracing-cost.mjs [--decisions 200000] [--rounds 7]
//
// Rounds alternate the variants so drift on a busy machine hits all alike;
// reported per variant: the median over rounds of the mean time per decision.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../dist/config/load.js";
import { createDecider } from "../dist/decider/decider.js";
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";
import { createLogger } from "../dist/lib/log.js";
import { startTracing } from "../dist/observability/otel-sdk.js";
import { traced, tracedIfEnabled } from "../dist/observability/tracing.js";
import { median } from "./stats.mjs";

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
};
const DECISIONS = arg("decisions", 200_000);
const ROUNDS = arg("rounds", 7);

const dir = mkdtempSync(join(tmpdir(), "keyward-tracing-cost-"));
const database = join(dir, "keys.db");
const db = openDatabase(database);
const { secret } = new KeyRepository(db).create({ kind: "live", scopes: ["sources:read"] });
db.close();
const config = loadConfig({ env: {}, overrides: { database, policy: "deploy/policy.yaml" } });
const decider = createDecider({ config, logger: createLogger({ level: "silent" }), env: {} });
await decider.start();
const view = {
  method: "GET",
  path: "/api/v1/sources",
  authorization: `Bearer ${secret}`,
  spoofedHeaders: [],
  requiredScopes: undefined,
  traceContext: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
};

/** Mean µs per decision over DECISIONS calls; throws if one is not an allow. */
function measure(pipeline) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < DECISIONS; i++) {
    if (!pipeline(view).allow) throw new Error("expected an allow");
  }
  return Number(process.hrtime.bigint() - started) / 1000 / DECISIONS;
}

const variants = {
  "pipeline alone": decider.pipeline,
  "no OTEL_* set (as shipped: tracedIfEnabled)": tracedIfEnabled(decider.pipeline, "grpc"),
  "traced with no SDK (the API's no-op spans)": traced(decider.pipeline, "grpc"),
};
// One unrecorded round each first, so that the first variant does not pay for the JIT.
for (const pipeline of Object.values(variants)) measure(pipeline);
const results = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, pipeline] of Object.entries(variants)) results[name].push(measure(pipeline));
}

// Then with the SDK registered, exporting to a receiver that drops everything.
const sink = createServer((req, res) => req.resume().on("end", () => res.end("{}")));
await new Promise((resolve) => sink.listen(0, "127.0.0.1", resolve));
const sdk = await startTracing({
  OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.address().port}`,
});
const withSdk = [];
measure(traced(decider.pipeline, "grpc"));
const exported = tracedIfEnabled(decider.pipeline, "grpc");
for (let round = 0; round < ROUNDS; round++) withSdk.push(measure(exported));
results["OTEL_EXPORTER_OTLP_ENDPOINT set (SDK, always-on, OTLP export)"] = withSdk;
await sdk.shutdown();
sink.close();
await decider.close();
rmSync(dir, { recursive: true, force: true });

console.log(`| variant | µs per allowed decision (median of ${ROUNDS} rounds × ${DECISIONS}) |`);
console.log("|---|---|");
for (const [name, values] of Object.entries(results)) {
  console.log(`| ${name} | ${median(values).toFixed(3)} |`);
}
console.log(
  `\nWithout OTEL_*, the served pipeline is the pipeline itself: ${
    variants["no OTEL_* set (as shipped: tracedIfEnabled)"] === decider.pipeline
  }.`,
);
