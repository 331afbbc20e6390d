// `npm run bench`: keyward's Check against a no-op gRPC baseline, over
// loopback, server on core 0 and load generator on core 1. Writes
// bench/RESULTS.md (and the raw figures to bench/out/results.json).
//
// BENCH_QUICK=1 runs a ~2-minute smoke version (short runs, one round, a
// 100 k-key database instead of 1 M). The run fails (exit 1) when a server
// answers a decision other than the expected one; a missed performance
// target is reported in RESULTS.md, never an error.
//
// The parts: plan.mjs (run lengths, targets, bodies, scenarios), measure.mjs
// (one measurement, medians, paired ratios), rounds.mjs (the main rounds and
// half rate), scale.mjs (JWT first seen, 10 k vs 1 M keys), sections.mjs
// (key creation, workers, profiles), report.mjs + report-more.mjs (RESULTS.md).
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createIssuer } from "./jwt.mjs";
import { keysDatabase } from "./keys-db.mjs";
import { DecisionError } from "./measure.mjs";
import {
  buildBodies,
  buildScenarios,
  LOAD,
  machine,
  PLAN,
  PROTO_BIN,
  PROTO_NODE_ARGS,
  QUICK,
  REVOCATIONS,
  WITH_PROTO,
} from "./plan.mjs";
import { measurePropagation } from "./replication.mjs";
import { report } from "./report.mjs";
import { ms } from "./report-format.mjs";
import { halfRate, mainRounds, PLAIN } from "./rounds.mjs";
import { jwtFirstSeen, scale } from "./scale.mjs";
import { keyCreation, profiles, workers } from "./sections.mjs";
import { killAll, log, OUT, ROOT, RUN_DIR } from "./servers.mjs";
import { startKeyward } from "./starters.mjs";

async function main() {
  const started = Date.now();
  rmSync(RUN_DIR, { recursive: true, force: true });
  mkdirSync(RUN_DIR, { recursive: true });
  // Other sessions rebuild dist/ while the bench runs; every keyward of this
  // run starts from one copy of it, taken now (right after `npm run build`),
  // except `npx keyward serve`, which runs the repository's own bin.
  const snapshot = join(RUN_DIR, "snapshot");
  cpSync(join(ROOT, "dist"), join(snapshot, "dist"), { recursive: true });
  cpSync(join(ROOT, "bin"), join(snapshot, "bin"), { recursive: true });
  const bin = join(snapshot, "bin/keyward.js");
  const keywardFrom = (name, options, extra = {}) => startKeyward(name, options, { bin, ...extra });
  // BENCH_PROTO_BIN / BENCH_PROTO_NODE_ARGS: a prototype keyward (a patched
  // copy of dist/ with its own bin/keyward.js, outside src/; or this build
  // with other node flags) measured in the same rounds.
  const protoFrom = (name, options, nodeArgs = []) =>
    startKeyward(name, options, {
      bin: PROTO_BIN ?? bin,
      nodeArgs: [...PROTO_NODE_ARGS, ...nodeArgs],
    });
  const facts = machine();
  log(`mode ${QUICK ? "quick" : "full"}; ${facts.cpu}; load ${facts.load}`);

  // Data: a JWT issuer, a 10 k-key database (the main one) and the big one.
  const issuer = createIssuer(join(RUN_DIR, "jwks.json"));
  const small = keysDatabase(join(OUT, "keys-10k.db"), 10_000);
  log(`scale database: ${PLAN.scaleKeys} keys (cached under bench/out/ once built)`);
  const big = keysDatabase(join(OUT, `keys-${PLAN.scaleKeys / 1000}k.db`), PLAN.scaleKeys);
  log(`  ${big.built ? "built" : "reused"} (${big.seconds.toFixed(1)} s to build)`);

  const bodies = buildBodies(small, big, issuer);
  const scenarios = buildScenarios(bodies);
  const results = {
    plan: { ...PLAN, quick: QUICK },
    load: LOAD,
    machine: facts,
    scenarios: {},
    halfRate: {},
  };
  results.proto = WITH_PROTO
    ? `${PROTO_BIN ?? "this build"}${PROTO_NODE_ARGS.length > 0 ? ` with \`${PROTO_NODE_ARGS.join(" ")}\`` : ""}`
    : undefined;
  results.command = [
    QUICK ? "BENCH_QUICK=1" : "",
    process.env.BENCH_PROFILE ? `BENCH_PROFILE=${process.env.BENCH_PROFILE}` : "",
    PROTO_BIN ? `BENCH_PROTO_BIN=${PROTO_BIN}` : "",
    PROTO_NODE_ARGS.length > 0 ? `BENCH_PROTO_NODE_ARGS='${PROTO_NODE_ARGS.join(" ")}'` : "",
    "npm run bench",
  ]
    .filter(Boolean)
    .join(" ");
  // BENCH_PROTO_BIN / BENCH_PROTO_NODE_ARGS: a prototype keyward (a patched

  const database = small.file;
  const setting = { scenarios, bodies, database, issuer, keywardFrom, protoFrom };
  const mainServers = await mainRounds(setting, results);
  // The last round's processes serve the half-rate runs and the end of the bench.
  for (const server of mainServers.filter((s) => Object.values(PLAIN).includes(s.name))) {
    await server.stop();
  }
  const [baseline, keyward, proto] = mainServers;
  results.adminPort = keyward.ports.admin;
  await halfRate(scenarios, [baseline, keyward, ...(WITH_PROTO ? [proto] : [])], results);
  await jwtFirstSeen({ baseline, issuer, database, keywardFrom }, results);
  await scale({ small, big, bodies, issuer, keywardFrom }, results);
  await keyCreation({ bin, issuer, keywardFrom, adminPort: keyward.ports.admin }, results);

  log(`replication propagation: ${REVOCATIONS} revocations, primary → replica`);
  results.propagation = await measurePropagation(keywardFrom, { issuer, revocations: REVOCATIONS });
  log(
    `  p50 ${ms(results.propagation.latency.p50)} ms, max ${ms(results.propagation.maxUs)} ms, lost ${results.propagation.lost}`,
  );
  await workers({ database, issuer, keywardFrom, scenario: scenarios[0] }, results);
  await profiles(setting, results);

  if (WITH_PROTO) await proto.stop();
  await keyward.stop();
  await baseline.stop();
  results.seconds = (Date.now() - started) / 1000;
  writeFileSync(join(OUT, "results.json"), JSON.stringify(results, null, 2));
  writeFileSync(join(ROOT, "bench/RESULTS.md"), report(results));
  log(`done in ${results.seconds.toFixed(0)} s: bench/RESULTS.md`);
}

// `node bench/run.mjs --report`: rewrite RESULTS.md from the last run's
// bench/out/results.json (e.g. after editing bench/NOTES.md), without running.
const run = process.argv.includes("--report")
  ? async () => {
      const results = JSON.parse(readFileSync(join(OUT, "results.json"), "utf8"));
      writeFileSync(join(ROOT, "bench/RESULTS.md"), report(results));
      log("bench/RESULTS.md rewritten from bench/out/results.json");
    }
  : main;

run().catch((error) => {
  killAll();
  if (error instanceof DecisionError) log(`DECISION CHECK FAILED: ${error.message}`);
  else log(`bench failed: ${error.stack ?? error}`);
  process.exit(1);
});
