// How one measurement is taken (h2load or the Node load client against one
// server, its decisions verified first and its CPU time sampled over the
// measured period), and how runs become medians and paired ratios.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { checkOnce } from "./grpc-check.mjs";
import { CLIENT_CORE, runH2load, runH2loadMix } from "./h2load.mjs";
import { LOAD, PLAN } from "./plan.mjs";
import { cpuBetween, log, ROOT, RUN_DIR, sleep, track } from "./servers.mjs";
import { median } from "./stats.mjs";

export class DecisionError extends Error {}

// ----------------------------------------------------------------- decisions

/** Fails clearly when a server died under the bench (e.g. signalled from outside). */
export function assertAlive(server) {
  const { exitCode, signalCode } = server.child;
  if (exitCode !== null || signalCode !== null) {
    const tail = readFileSync(server.logFile, "utf8").trim().split("\n").slice(-2).join("\n");
    throw new Error(`${server.name} exited (${signalCode ?? exitCode}); last log lines:\n${tail}`);
  }
}

/** Sends the body once and asserts the decision keyward (or the baseline) gives. */
export async function expectDecision(server, body, expected) {
  assertAlive(server);
  const want = server.baseline ? "allow" : expected;
  const got = await checkOnce(server.port, body.bytes);
  if (got !== want) {
    throw new DecisionError(`${server.name}: body ${body.name} answered ${got}, expected ${want}`);
  }
}

// ------------------------------------------------------------------ runners

/**
 * One h2load measurement of a scenario against one server: decisions
 * verified first, the server's log emptied after.
 */
export async function measureH2load(server, scenario, rpsPerConnection, streamsPerConnection) {
  for (const part of scenario.parts) await expectDecision(server, part.body, part.body.expect);
  const options = scenario.parts.map((part, i) => ({
    port: server.port,
    bodyFile: part.body.file,
    connections: part.connections,
    streams: streamsPerConnection ?? part.streams,
    durationS: PLAN.durationS,
    warmupS: PLAN.warmupS,
    rps: rpsPerConnection,
    logFile: join(RUN_DIR, `h2load-${i}.log`),
  }));
  // The server's CPU time is sampled exactly over h2load's measured period.
  const samples = {};
  const onPhase = (phase) => {
    samples[phase] = server.sched();
  };
  const result =
    options.length === 1
      ? await runH2load(options[0], track, onPhase)
      : await runH2loadMix(options, track, onPhase);
  assertAlive(server);
  server.clearLog();
  result.latencies = undefined;
  if (samples.start && samples.end) {
    result.serverCpu = cpuBetween(samples.start, samples.end, result.requests);
    result.window = {
      fromUs: Number(samples.start.at / 1000n),
      toUs: Number(samples.end.at / 1000n),
    };
  }
  if (result.succeeded === 0) throw new Error(`${server.name}: no request succeeded`);
  return result;
}

/** One Node-client measurement (distinct bodies per request). */
export async function measureClient(server, pool) {
  await expectDecision(server, pool.first, pool.expect);
  const options = {
    port: server.port,
    bodies: pool.file,
    ...LOAD,
    durationS: PLAN.durationS,
    warmupS: PLAN.warmupS,
  };
  const samples = {};
  const output = await new Promise((done, fail) => {
    const child = track(
      spawn(
        "taskset",
        ["-c", CLIENT_CORE, process.execPath, "bench/load-client.mjs", JSON.stringify(options)],
        { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
      ),
    );
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (!samples.start && out.startsWith("measuring\n")) samples.start = server.sched();
      if (!samples.end && out.endsWith("}\n")) samples.end = server.sched();
    });
    child.on("close", (code) =>
      code === 0 ? done(out) : fail(new Error(`load client exited ${code}`)),
    );
  });
  assertAlive(server);
  server.clearLog();
  const result = JSON.parse(output.slice(output.indexOf("{")));
  if (samples.start && samples.end) {
    result.serverCpu = cpuBetween(samples.start, samples.end, result.requests);
  }
  const want = server.baseline ? "allow" : pool.expect;
  for (const [decision, count] of Object.entries(result.decisions)) {
    if (decision !== want) {
      throw new DecisionError(
        `${server.name}: ${count} sampled responses of ${pool.name} were ${decision}, expected ${want}`,
      );
    }
  }
  if (result.requests === 0) throw new Error(`${server.name}: no request succeeded`);
  return result;
}

/**
 * Alternates servers (B K B K ..., or B K P B K P ... with a prototype) for
 * PLAN.pairs rounds and keeps every run; medians and ratios come from them.
 */
export async function alternate(servers, measure) {
  const runs = Object.fromEntries(servers.map((server) => [server.name, []]));
  for (let round = 0; round < PLAN.pairs; round++) {
    for (const server of servers) {
      const result = await measure(server);
      runs[server.name].push(result);
      logRun(server, result);
    }
  }
  return runs;
}

export function logRun(server, result) {
  const cpu = result.serverCpu;
  log(
    `  ${server.name.padEnd(14)} ${result.rps.toFixed(0).padStart(6)} req/s  p99 ${(result.latency.p99 / 1000).toFixed(2).padStart(6)} ms  server ${cpu ? `${cpu.usPerRequest.toFixed(0)} µs CPU/req, ran ${(cpu.share * 100).toFixed(0)} %, waited ${(cpu.waitShare * 100).toFixed(0)} %` : "?"}`,
  );
}

/**
 * The median over rounds of `f(a[i], b[i])`: a ratio taken within each round,
 * whose two runs were seconds apart, so that a host slowdown that spans a
 * round moves both sides of it together.
 */
export function pairedMedian(a, b, f) {
  return median(a.map((run, i) => f(run, b[i])));
}

/** Throughput ratio and CPU-cost ratio of `runs` against `base`, per round, then the median. */
export function pairedRatios(runs, base) {
  return {
    ratio: pairedMedian(runs, base, (x, y) => x.rps / y.rps),
    cpuRatio: pairedMedian(
      runs,
      base,
      // NaN when a run has no CPU sample; median() skips it.
      (x, y) =>
        (y.serverCpu?.usPerRequest ?? Number.NaN) / (x.serverCpu?.usPerRequest ?? Number.NaN),
    ),
  };
}

export function summarize(runs) {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.latency.p50)),
    p99: median(runs.map((r) => r.latency.p99)),
    p999: median(runs.map((r) => r.latency.p999)),
    failed: runs.reduce((sum, r) => sum + (r.failed ?? 0) + (r.errored ?? 0) + (r.errors ?? 0), 0),
    clientCpu: median(runs.map((r) => r.clientCpu ?? Number.NaN)),
    cpuUs: median(runs.map((r) => r.serverCpu?.usPerRequest ?? Number.NaN)),
    cpuShare: median(runs.map((r) => r.serverCpu?.share ?? Number.NaN)),
    waitShare: median(runs.map((r) => r.serverCpu?.waitShare ?? Number.NaN)),
  };
}

/**
 * Waits until `others` (servers sharing the core with the next one to be
 * measured) have gone quiet: under 1 % of a core over a 200 ms window. A
 * server that has just finished a load run goes on working for a while (V8
 * collects and shrinks the heap once allocation stops), and the next server
 * measured on the same core paid for it: 10–20 µs more per Check for
 * whichever server followed the plain baseline (bench/NOTES.md, sixth
 * round). Gives up after 10 s, saying so.
 */
export async function settle(others) {
  const busy = () => others.reduce((sum, server) => sum + server.sched().run, 0);
  for (let tries = 0; tries < 50; tries++) {
    const before = busy();
    await sleep(200);
    if (busy() - before < 2_000_000) return;
  }
  log(`  (the other servers did not go quiet within 10 s; measuring anyway)`);
}
