// What the key lifecycle (issue 21) costs the hot path: one allowed API-key
// decision in process, through the decider's pipeline (the decision cache
// on, as shipped), for a key without a limit, a key with a native rate limit
// it never reaches, and a key presented with its previous secret during a
// rotation grace; against a no-op baseline (a function returning a constant
// allow), so the figures say what the pipeline adds.
//
//   npm run build && taskset -c 0 node bench/lifecycle.mjs [--decisions 200000] [--rounds 7]
//
// Rounds alternate the variants so drift on a busy machine hits all alike;
// reported per variant: the median over rounds of the mean time per
// decision and, when run with `node --expose-gc --max-semi-space-size=64`,
// the bytes allocated per decision: heap growth over 20 000 decisions after
// a full collection, with a young generation large enough that none runs
// meanwhile (the pipeline itself allocates its decision and its id; what
// matters is the difference between the variants).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../dist/config/load.js";
import { createDecider } from "../dist/decider/decider.js";
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";
import { createLogger } from "../dist/lib/log.js";
import { median } from "./stats.mjs";

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
};
const DECISIONS = arg("decisions", 200_000);
const ROUNDS = arg("rounds", 7);

const dir = mkdtempSync(join(tmpdir(), "keyward-lifecycle-bench-"));
const database = join(dir, "keys.db");
const db = openDatabase(database);
const keys = new KeyRepository(db);
const plain = keys.create({ kind: "live", scopes: ["sources:read"] });
// A limit no round reaches: every decision takes a token and is allowed.
const limited = keys.create({
  kind: "live",
  scopes: ["sources:read"],
  rateLimit: { requests: 1_000_000_000, perSeconds: 1, burst: 0 },
});
const rotating = keys.create({ kind: "live", scopes: ["sources:read"] });
keys.rotate(rotating.key.id, 3_600_000);
db.close();

const config = loadConfig({ env: {}, overrides: { database, policy: "deploy/policy.yaml" } });
const decider = createDecider({ config, logger: createLogger({ level: "silent" }), env: {} });
await decider.start();
const viewOf = (secret) => ({
  method: "GET",
  path: "/api/v1/sources",
  authorization: `Bearer ${secret}`,
  spoofedHeaders: [],
  requiredScopes: undefined,
});
const ALLOW = { allow: true, decisionId: "x", identity: undefined };
const noop = () => ALLOW;

/** Mean µs per decision over DECISIONS calls; throws if one is not an allow. */
function measure(pipeline, view) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < DECISIONS; i++) {
    if (!pipeline(view).allow) throw new Error("expected an allow");
  }
  return Number(process.hrtime.bigint() - started) / 1000 / DECISIONS;
}

const variants = {
  "no-op baseline (constant allow)": [noop, viewOf(plain.secret)],
  "key without a limit": [decider.pipeline, viewOf(plain.secret)],
  "key with a rate limit (never reached)": [decider.pipeline, viewOf(limited.secret)],
  "previous secret during a grace": [decider.pipeline, viewOf(rotating.secret)],
};
const previous = decider.pipeline(viewOf(rotating.secret));
if (!previous.identity?.previousSecret)
  throw new Error("the rotated key's old secret did not verify as previous");
for (const [pipeline, view] of Object.values(variants)) measure(pipeline, view);
const results = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, [pipeline, view]] of Object.entries(variants)) {
    results[name].push(measure(pipeline, view));
  }
}
/** Bytes of heap growth per decision over 20 000 decisions, or undefined without --expose-gc. */
function allocated(pipeline, view) {
  if (typeof globalThis.gc !== "function") return undefined;
  const samples = [];
  for (let round = 0; round < 5; round++) {
    globalThis.gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 20_000; i++) pipeline(view);
    samples.push((process.memoryUsage().heapUsed - before) / 20_000);
  }
  return median(samples);
}

console.log(`${DECISIONS} decisions a round, median of ${ROUNDS} rounds:`);
console.log(`  ${"variant".padEnd(40)} µs/decision  bytes/decision`);
for (const [name, times] of Object.entries(results)) {
  const [pipeline, view] = variants[name];
  const bytes = allocated(pipeline, view);
  console.log(
    `  ${name.padEnd(40)} ${median(times).toFixed(3).padStart(11)}  ${bytes === undefined ? "(--expose-gc)" : bytes.toFixed(0).padStart(14)}`,
  );
}
await decider.close();
rmSync(dir, { recursive: true, force: true });
