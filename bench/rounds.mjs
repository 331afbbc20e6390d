// The main rounds: every scenario against the baseline and keyward (and a
// prototype), and against keyward started as a user types it beside a plain
// baseline; then latency at half of keyward's saturated rate.
import {
  expectDecision,
  logRun,
  measureH2load,
  pairedRatios,
  settle,
  summarize,
} from "./measure.mjs";
import { PLAN, WITH_PROTO } from "./plan.mjs";
import { log } from "./servers.mjs";
import { startBaseline, startKeywardServe, startPlainBaseline } from "./starters.mjs";

/** The two servers of the user-typed start, compared with each other. */
export const PLAIN = { baseline: "baseline-plain", keyward: "keyward-serve" };

/**
 * Runs PLAN.pairs rounds, each with fresh processes of every server (one
 * process can cost ~15 % more per Check than the next process of the same
 * build, from its first run to its last: bench/NOTES.md, fifth round, so a
 * single process per server would compare two instances rather than two
 * programs): the baseline and keyward as deployed (the image's NODE_OPTIONS),
 * a prototype when asked for, then `npx keyward serve --config FILE` with
 * nothing set and the baseline started as plainly. Fills `results.scenarios`
 * and returns the last round's servers, still running.
 */
export async function mainRounds(
  { scenarios, bodies, database, issuer, keywardFrom, protoFrom },
  results,
) {
  const startMainServers = async () => {
    const servers = [await startBaseline(), await keywardFrom("keyward", { database, issuer })];
    if (WITH_PROTO) servers.push(await protoFrom("keyward-proto", { database, issuer }));
    servers.push(await startPlainBaseline(PLAIN.baseline));
    servers.push(await startKeywardServe(PLAIN.keyward, { database, issuer }));
    for (const server of servers.filter((s) => !s.baseline)) {
      for (const b of Object.values(bodies)) {
        if (b !== bodies.bigKeyAllow) await expectDecision(server, b, b.expect);
      }
    }
    // JIT warm-up of every server before anything is recorded.
    for (const server of servers) await measureH2load(server, scenarios[0]);
    return servers;
  };

  const runsByScenario = Object.fromEntries(scenarios.map((scenario) => [scenario.name, {}]));
  let mainServers = [];
  for (let round = 0; round < PLAN.pairs; round++) {
    for (const server of mainServers) await server.stop();
    mainServers = await startMainServers();
    log(
      `round ${round + 1} of ${PLAN.pairs}: fresh ${mainServers.map((server) => `${server.name} (pid ${server.pid})`).join(", ")}`,
    );
    // Odd rounds run the servers in reverse order, so that no server always
    // follows the same one (or always runs last, right after the others'
    // load has ended and their idle-time GC begins).
    const order = round % 2 === 0 ? mainServers : [...mainServers].reverse();
    for (const scenario of scenarios) {
      log(`scenario ${scenario.name}`);
      for (const server of order) {
        await settle(mainServers.filter((other) => other !== server));
        const result = await measureH2load(server, scenario);
        const runs = runsByScenario[scenario.name];
        runs[server.name] = [...(runs[server.name] ?? []), result];
        logRun(server, result);
      }
    }
  }

  for (const scenario of scenarios) {
    const runs = runsByScenario[scenario.name];
    const b = summarize(runs.baseline);
    const k = summarize(runs.keyward);
    results.scenarios[scenario.name] = {
      label: scenario.label,
      target: scenario.target,
      expect: scenario.parts.map((p) => `${p.body.name}→${p.body.expect}`).join(", "),
      baseline: b,
      keyward: k,
      ...pairedRatios(runs.keyward, runs.baseline),
      ratioOfMedians: k.rps / b.rps,
      runs: Object.fromEntries(
        Object.entries(runs).map(([name, list]) => [name, list.map((r) => Math.round(r.rps))]),
      ),
      // Per-round CPU-cost ratios, for the spread of a single run's figure.
      cpuRatios: runs.keyward.map(
        (run, i) => runs.baseline[i].serverCpu?.usPerRequest / run.serverCpu?.usPerRequest,
      ),
      plain: {
        baseline: summarize(runs[PLAIN.baseline]),
        keyward: summarize(runs[PLAIN.keyward]),
        ...pairedRatios(runs[PLAIN.keyward], runs[PLAIN.baseline]),
      },
    };
    if (runs["keyward-proto"]) {
      results.scenarios[scenario.name].proto = {
        ...summarize(runs["keyward-proto"]),
        ...pairedRatios(runs["keyward-proto"], runs.baseline),
      };
    }
  }
  return mainServers;
}

/**
 * Latency at half of keyward's saturated rate, same offered rate for the
 * baseline (and the prototype): once with one stream per connection, once
 * with the scenario's streams. In --rps mode h2load starts each connection's
 * due requests together, up to its stream limit, so with 16 streams the tail
 * is mostly the time to drain its own bursts (bench/NOTES.md, third round).
 */
export async function halfRate(scenarios, servers, results) {
  for (const scenario of scenarios) {
    const connections = scenario.parts.reduce((sum, p) => sum + p.connections, 0);
    const perConnection = Math.max(
      1,
      Math.round(results.scenarios[scenario.name].keyward.rps / 2 / connections),
    );
    log(`half rate ${scenario.name}: ${perConnection * connections} req/s offered`);
    const entry = { offered: perConnection * connections, perConnection };
    for (const server of servers) {
      for (const streams of [1, undefined]) {
        const result = await measureH2load(server, scenario, perConnection, streams);
        entry[streams === 1 ? `${server.name}:1` : server.name] = {
          rps: result.rps,
          ...result.latency,
          waitShare: result.serverCpu?.waitShare ?? Number.NaN,
        };
        log(
          `  ${server.name.padEnd(12)} ${streams === 1 ? "1 stream " : "streams  "} p50 ${(result.latency.p50 / 1000).toFixed(2)} ms p99 ${(result.latency.p99 / 1000).toFixed(2)} ms`,
        );
      }
    }
    results.halfRate[scenario.name] = entry;
  }
}
