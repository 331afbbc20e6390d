// A replica sidecar's memory (issue 19 part 4): one real primary holding K
// keys, then one real replica process at a time (role replica, its own
// SQLite file, started as deployed: bin/keyward.js with the image's
// NODE_OPTIONS), for each variant in turn, alternating over rounds:
//   - RSS "after start": once its first snapshot is applied and it allows a key;
//   - its heap split then (prom-client's default metrics on /metrics);
//   - peak RSS (VmHWM) after saturated Check: bench/load-client.mjs, 4
//     connections x 16 streams = 64 in flight, round-robin over the
//     database's 4,096 sample keys, pinned to core 1 (the replica on core 0);
//   - the Checks answered in that period (throughput, same run).
//
//   npm run build && node bench/replica-footprint.mjs [K=100000] [ROUNDS=2] [SECONDS=15]
//
// FOOTPRINT_VARIANTS='[{"name":"before","bin":"/tmp/old/bin/keyward.js"},
//   {"name":"semi1","nodeArgs":["--max-semi-space-size=1"]}]' compares builds
// (a prototype or older copy of bin/ + dist/) and node flags; default: this
// build as shipped. Prints one JSON line per replica run and a summary, and
// appends them to bench/out/replica-footprint.jsonl.
import { execFileSync } from "node:child_process";
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { checkOn, checkRequestBody } from "./grpc-check.mjs";
import { CLIENT_CORE } from "./h2load.mjs";
import { createIssuer } from "./jwt.mjs";
import { keysDatabase } from "./keys-db.mjs";
import { killAll, log, OUT, ROOT, RUN_DIR, schedOf, sleep } from "./servers.mjs";
import { startKeyward } from "./starters.mjs";
import { median } from "./stats.mjs";

const K = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 2);
const SECONDS = Number(process.argv[4] ?? 15);
const VARIANTS = JSON.parse(process.env.FOOTPRINT_VARIANTS ?? '[{"name":"shipped"}]');
const MB = 1024 ** 2;

/**
 * Resident memory by kind, MB, from /proc: `anon` is the process's own
 * (V8's heap, malloc, stacks), `file` the mapped files (mostly node's
 * binary text, which processes running the same file on one host share).
 */
function residentOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024;
  return { rssMb: mb("VmRSS"), anonMb: mb("RssAnon"), fileMb: mb("RssFile") };
}

/** The default metrics of a heap's split, MB, from the replica's /metrics. */
async function heapOf(httpPort) {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const value = (name) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN);
  return {
    heapUsedMb: value("nodejs_heap_size_used_bytes") / MB,
    heapTotalMb: value("nodejs_heap_size_total_bytes") / MB,
    externalMb: value("nodejs_external_memory_bytes") / MB,
  };
}

/** One replica run: start, wait for its snapshot, measure, load, measure, stop. */
async function replicaRun(variant, primaryUrl, tokenFile, issuer, bodiesFile, firstKey) {
  const database = join(RUN_DIR, "footprint-replica.db");
  for (const suffix of ["", "-wal", "-shm"]) rmSync(database + suffix, { force: true });
  const replica = await startKeyward(
    "footprint-replica",
    {
      database,
      issuer,
      config: { role: "replica", replication: { primary: primaryUrl, token_file: tokenFile } },
    },
    { nodeArgs: variant.nodeArgs ?? [], ...(variant.bin && { bin: variant.bin }) },
  );
  const session = http2.connect(`http://127.0.0.1:${replica.port}`);
  session.on("error", () => undefined);
  while ((await checkOn(session, checkRequestBody(firstKey))) !== "allow") await sleep(20);
  session.close();
  const afterStart = { ...residentOf(replica.pid), ...(await heapOf(replica.ports.http)) };
  const cpu0 = schedOf(replica.pid);
  const output = execFileSync(
    "taskset",
    [
      "-c",
      CLIENT_CORE,
      process.execPath,
      join(ROOT, "bench/load-client.mjs"),
      JSON.stringify({
        port: replica.port,
        bodies: bodiesFile,
        connections: 4,
        streams: 16,
        durationS: SECONDS,
        warmupS: 1,
      }),
    ],
    { encoding: "utf8" },
  );
  const load = JSON.parse(output.trim().split("\n").at(-1));
  const cpu1 = schedOf(replica.pid);
  // CPU over the whole load (warm-up included) per Check answered in it, at the measured rate.
  const cpuUsPerCheck = (cpu1.run - cpu0.run) / 1000 / (load.rps * (SECONDS + 1));
  const atEnd = { ...residentOf(replica.pid), ...(await heapOf(replica.ports.http)) };
  const figures = {
    variant: variant.name,
    afterStart,
    peakRssMb: replica.memory().hwmMb,
    atEnd,
    rps: load.rps,
    cpuUsPerCheck,
    errors: load.errors,
    decisions: load.decisions,
  };
  await replica.stop();
  return figures;
}

async function main() {
  mkdirSync(RUN_DIR, { recursive: true });
  const built = keysDatabase(join(OUT, `fleet-${K}.db`), K);
  const tokenFile = join(RUN_DIR, "footprint-token");
  writeFileSync(tokenFile, "f".repeat(48), { mode: 0o600 });
  const issuer = createIssuer(join(RUN_DIR, "footprint-jwks.json"));
  const primaryDb = join(RUN_DIR, "footprint-primary.db");
  for (const suffix of ["", "-wal", "-shm"]) rmSync(primaryDb + suffix, { force: true });
  copyFileSync(built.file, primaryDb);
  const primary = await startKeyward(
    "footprint-primary",
    {
      database: primaryDb,
      issuer,
      config: { role: "primary", replication: { token_file: tokenFile } },
    },
    { cores: "0,1" },
  );
  const bodiesFile = join(RUN_DIR, "footprint-bodies.bin");
  writeFileSync(bodiesFile, Buffer.concat(built.sample.slice(1).map((s) => checkRequestBody(s))));
  const primaryUrl = `http://127.0.0.1:${primary.ports.admin}`;
  const runs = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of VARIANTS) {
      const run = await replicaRun(
        variant,
        primaryUrl,
        tokenFile,
        issuer,
        bodiesFile,
        built.sample[0],
      );
      log(JSON.stringify({ K, round, ...run }));
      appendFileSync(
        join(OUT, "replica-footprint.jsonl"),
        `${JSON.stringify({ at: new Date().toISOString(), K, round, ...run })}\n`,
      );
      runs.push(run);
    }
  }
  await primary.stop();
  const summary = VARIANTS.map(({ name }) => {
    const mine = runs.filter((r) => r.variant === name);
    const of = (pick) => Math.round(median(mine.map(pick)) * 10) / 10;
    return {
      variant: name,
      rssAfterStartMb: of((r) => r.afterStart.rssMb),
      anonAfterStartMb: of((r) => r.afterStart.anonMb),
      heapUsedAfterStartMb: of((r) => r.afterStart.heapUsedMb),
      peakRssMb: of((r) => r.peakRssMb),
      rps: of((r) => r.rps),
      cpuUsPerCheck: of((r) => r.cpuUsPerCheck),
    };
  });
  console.log(JSON.stringify({ K, rounds: ROUNDS, seconds: SECONDS, summary }));
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => killAll());
