// JWT first seen (an RS256 verification per Check) and scale (10 k against
// the big key database: throughput, CPU cost, start-up and memory).

import { JWT_REQUEST } from "./grpc-check.mjs";
import {
  alternate,
  logRun,
  measureClient,
  measureH2load,
  pairedRatios,
  summarize,
} from "./measure.mjs";
import { PLAN, pool, single } from "./plan.mjs";
import { log } from "./servers.mjs";
import { median } from "./stats.mjs";

/**
 * JWT first seen: every request a distinct token, so every Check verifies
 * an RS256 signature. h2load sends one body, so the Node client sends a
 * pool of distinct tokens round-robin to a keyward whose verified-token
 * cache holds a single entry (cache.max_entries: 1).
 */
export async function jwtFirstSeen({ baseline, issuer, database, keywardFrom }, results) {
  log(`scenario jwt_first_seen (${PLAN.jwtPool} distinct tokens)`);
  const tokens = [];
  for (let i = 0; i < PLAN.jwtPool; i++) tokens.push(issuer.token(i));
  const jwtPool = pool("jwt_first_seen", tokens, "allow", JWT_REQUEST);
  const keywardNoCache = await keywardFrom("keyward-jwt-cache-1", {
    database,
    issuer,
    cacheMaxEntries: 1,
  });
  await measureClient(keywardNoCache, jwtPool); // warm-up
  const runs = await alternate([baseline, keywardNoCache], (server) =>
    measureClient(server, jwtPool),
  );
  results.jwtFirstSeen = {
    baseline: summarize(runs.baseline),
    keyward: summarize(runs[keywardNoCache.name]),
    ...pairedRatios(runs[keywardNoCache.name], runs.baseline),
    pool: PLAN.jwtPool,
  };
  await keywardNoCache.stop();
}

/**
 * Scale: key allow on 10 k vs big (h2load on one key, and the Node client
 * on 4096 distinct keys spread over the whole id space), start-up time and
 * memory with the big database. Every round starts a fresh pair (for the
 * reason the main rounds do), warms both alike, then runs each load once
 * on each, alternating.
 */
export async function scale({ small, big, bodies, issuer, keywardFrom }, results) {
  const scaleKey = single("key_allow", "key allow", bodies.keyAllow, undefined);
  const scaleKeyBig = single("key_allow", "key allow", bodies.bigKeyAllow, undefined);
  const smallPool = pool("keys_small", small.sample, "allow");
  const bigPool = pool("keys_big", big.sample, "allow");
  const scaleRuns = { single: { small: [], big: [] }, many: { small: [], big: [] } };
  const startups = { small: [], big: [] };
  const memory = { small: [], big: [] };
  let memoryAtStart;
  for (let round = 0; round < PLAN.pairs; round++) {
    const bigKeyward = await keywardFrom("keyward-big", { database: big.file, issuer });
    memoryAtStart ??= bigKeyward.memory();
    const smallKeyward = await keywardFrom("keyward-small", { database: small.file, issuer });
    startups.big.push(bigKeyward.startupMs);
    startups.small.push(smallKeyward.startupMs);
    log(
      `scale round ${round + 1} of ${PLAN.pairs}: ${PLAN.scaleKeys} keys started in ${bigKeyward.startupMs} ms, 10 k in ${smallKeyward.startupMs} ms`,
    );
    const pair = [
      { server: smallKeyward, side: "small", scenario: scaleKey, keys: smallPool },
      { server: bigKeyward, side: "big", scenario: scaleKeyBig, keys: bigPool },
    ];
    // Warm-up, both loads: the first pass over the 4096 keys reads each from
    // SQLite (slower in the bigger table) before the verdict cache holds it,
    // and the comparison is of the steady state, as Envoy's traffic would see.
    for (const { server, scenario, keys } of pair) {
      await measureH2load(server, scenario);
      await measureClient(server, keys);
    }
    for (const { server, side, scenario } of pair) {
      const result = await measureH2load(server, scenario);
      scaleRuns.single[side].push(result);
      logRun(server, result);
    }
    for (const { server, side, keys } of pair) {
      const result = await measureClient(server, keys);
      scaleRuns.many[side].push(result);
      logRun(server, result);
    }
    memory.small.push(smallKeyward.memory());
    memory.big.push(bigKeyward.memory());
    await smallKeyward.stop();
    await bigKeyward.stop();
  }
  const highest = (list) => list.reduce((a, b) => (b.hwmMb > a.hwmMb ? b : a));
  // Big against 10 k within each round: req/s and CPU cost per request.
  const pairedChange = ({ small, big }) => {
    const { ratio, cpuRatio } = pairedRatios(big, small);
    return { rps: ratio - 1, cpu: cpuRatio - 1 };
  };
  results.scale = {
    keys: PLAN.scaleKeys,
    build: { built: big.built, seconds: big.seconds },
    startupMs: startups.big,
    startupMedianMs: median(startups.big),
    smallStartupMedianMs: median(startups.small),
    memoryAtStart,
    // The highest peak of the round's processes.
    memoryAfterLoad: highest(memory.big),
    smallMemoryAfterLoad: highest(memory.small),
    single: {
      small: summarize(scaleRuns.single.small),
      big: summarize(scaleRuns.single.big),
      change: pairedChange(scaleRuns.single),
    },
    many: {
      small: summarize(scaleRuns.many.small),
      big: summarize(scaleRuns.many.big),
      change: pairedChange(scaleRuns.many),
    },
  };
}
