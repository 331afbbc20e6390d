// Fleet scenario (issue 19): one real primary process, N simulated replicas
// (each its own HTTP/2 connection running the real Watch protocol, recording
// when each change arrives) and one real replica process answering Checks,
// over a K-key table. Measures the snapshot storm (all N connect at once),
// admin CreateKey latency during it, revocation propagation to every
// simulated replica and to the real replica's Check, the primary's idle CPU
// with N connected, and the real replica's RSS after start and at peak
// under saturated Check.
//
//   npm run build && node bench/fleet.mjs [N=100] [K=10000]
//
// FLEET_REPLICA_NODE_ARGS="--max-semi-space-size=2" tries V8 flags on the
// real replica (its footprint figures); N=0 measures the replica alone.
// Prints one JSON line of figures (and appends it to bench/out/fleet.jsonl).
import { randomBytes } from "node:crypto";
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
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../dist/gen/keyward/admin/v1/admin_pb.js";
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";
import { simulatedReplica } from "./fleet-sim.mjs";
import { adminLoad, usagePhase } from "./fleet-usage.mjs";
import { checkOn, checkRequestBody } from "./grpc-check.mjs";
import { createIssuer } from "./jwt.mjs";
import { keysDatabase } from "./keys-db.mjs";
import { killAll, log, OUT, RUN_DIR, schedOf, sleep } from "./servers.mjs";
import { startKeyward } from "./starters.mjs";
import { latencySummary } from "./stats.mjs";

const N = Number(process.argv[2] ?? 100);
const K = Number(process.argv[3] ?? 10_000);
const REVOCATIONS = 100;
// FLEET_CORES: the cores the primary is pinned to (default both of this host's).
const PRIMARY_CORES = process.env.FLEET_CORES ?? "0,1";
// FLEET_REPLICA_CORES: the real replica's cores (default the bench's server core, 0).
const REPLICA_CORES = process.env.FLEET_REPLICA_CORES ?? "0";
// FLEET_MAX_CONCURRENT_SNAPSHOTS: the primary's replication.max_concurrent_snapshots (default its own).
const MAX_SNAPSHOTS = process.env.FLEET_MAX_CONCURRENT_SNAPSHOTS;
// FLEET_STORM_ONLY=1: stop after the storm (comparing storm settings).
const STORM_ONLY = process.env.FLEET_STORM_ONLY === "1";

async function main() {
  mkdirSync(RUN_DIR, { recursive: true });
  const built = keysDatabase(join(OUT, `fleet-${K}.db`), K);
  const primaryDb = join(RUN_DIR, "fleet-primary.db");
  const replicaDb = join(RUN_DIR, "fleet-replica.db");
  for (const file of [primaryDb, replicaDb])
    for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
  copyFileSync(built.file, primaryDb);
  const db = openDatabase(primaryDb);
  const adminKey = new KeyRepository(db).create({
    kind: "live",
    name: "bench",
    scopes: ["keys:admin"],
  });
  db.close();
  const tokenFile = join(RUN_DIR, "fleet-token");
  writeFileSync(tokenFile, randomBytes(24).toString("hex"), { mode: 0o600 });
  const token = readFileSync(tokenFile, "utf8");
  const issuer = createIssuer(join(RUN_DIR, "fleet-jwks.json"));

  const primary = await startKeyward(
    "fleet-primary",
    {
      database: primaryDb,
      issuer,
      config: {
        role: "primary",
        replication: {
          token_file: tokenFile,
          ...(MAX_SNAPSHOTS && { max_concurrent_snapshots: Number(MAX_SNAPSHOTS) }),
        },
      },
    },
    {
      cores: PRIMARY_CORES,
      nodeArgs: (process.env.FLEET_PRIMARY_NODE_ARGS ?? "").split(" ").filter(Boolean),
    },
  );
  const url = `http://127.0.0.1:${primary.ports.admin}`;
  const client = createClient(KeyService, createGrpcTransport({ baseUrl: url }));
  const headers = { authorization: `Bearer ${adminKey.secret}` };
  const baseRss = primary.memory().rssMb;

  // Snapshot storm: all N at once, CreateKey timed meanwhile (on its own thread).
  const arrivals = new Map();
  const admin = await adminLoad(url, adminKey.secret);
  const cpu0 = schedOf(primary.pid);
  const stormStart = performance.now();
  const sims = Array.from({ length: N }, () => simulatedReplica(url, token, arrivals));
  while (sims.some((s) => s.snapshotAt === undefined)) {
    if (sims.some((s) => s.misread)) throw new Error("a simulated replica misread its snapshot");
    await sleep(5);
  }
  const stormMs = N === 0 ? 0 : Math.max(...sims.map((s) => s.snapshotAt)) - stormStart;
  const cpu1 = schedOf(primary.pid);
  const { latencies: createLatencies, startedAt } = await admin.stop();
  const slowCreates = createLatencies
    .map((ms, i) => [Math.round(startedAt[i]), Math.round(ms)])
    .filter(([, ms]) => ms > 250);
  if (slowCreates.length)
    log(
      `CreateKey over 250 ms during the storm (started at ms, took ms): ${JSON.stringify(slowCreates)}`,
    );
  const storm = {
    seconds: stormMs / 1000,
    primaryCpuSeconds: (cpu1.run - cpu0.run) / 1e9,
    primaryPeakRssMb: primary.memory().hwmMb,
    createKeyMs: latencySummary(createLatencies),
    snapshotMbPerReplica: (sims[0]?.snapshotBytes ?? 0) / 1e6,
    snapshotsBuilt: logCount(primary.logFile, "snapshot built for sharing"),
  };
  log(`storm: ${JSON.stringify(storm)}`);
  if (STORM_ONLY) {
    const settings = { maxSnapshots: MAX_SNAPSHOTS, window: process.env.FLEET_SIM_WINDOW };
    const figures = { at: new Date().toISOString(), N, K, stormOnly: settings, storm };
    appendFileSync(join(OUT, "fleet.jsonl"), `${JSON.stringify({ ...figures, env: envOf() })}\n`);
    for (const s of sims) s.close();
    await primary.stop();
    return;
  }

  // One real replica answering Checks.
  const replica = await startKeyward(
    "fleet-replica",
    {
      database: replicaDb,
      issuer,
      config: { role: "replica", replication: { primary: url, token_file: tokenFile } },
    },
    // FLEET_REPLICA_NODE_ARGS: V8 flags to try on the replica (e.g. --max-semi-space-size=2).
    {
      cores: REPLICA_CORES,
      nodeArgs: (process.env.FLEET_REPLICA_NODE_ARGS ?? "").split(" ").filter(Boolean),
    },
  );
  const session = http2.connect(`http://127.0.0.1:${replica.port}`);
  session.on("error", () => undefined);
  const sample = built.sample.slice(0, REVOCATIONS + 1);
  while ((await checkOn(session, checkRequestBody(sample[0]))) !== "allow") await sleep(20);
  const replicaStartRss = replica.memory().rssMb;

  // Propagation: each revocation to every simulated replica and to the real replica's Check.
  const sim = [];
  const real = [];
  for (const secret of sample.slice(1)) {
    const id = secret.split("_")[2];
    arrivals.set(id, []);
    const t0 = performance.now();
    await client.revokeKey({ id }, { headers });
    const body = checkRequestBody(secret);
    for (;;) {
      const decision = await checkOn(session, body);
      if (decision === "key_revoked") break;
      if (performance.now() - t0 > 5000) break;
    }
    real.push(performance.now() - t0);
    const deadline = performance.now() + 5000;
    while (arrivals.get(id).length < N && performance.now() < deadline) await sleep(1);
    for (const at of arrivals.get(id)) sim.push(at - t0);
    const lost = N - arrivals.get(id).length;
    if (lost > 0) log(`revocation ${id}: ${lost} simulated replicas did not receive it in 5 s`);
  }
  const propagation = {
    simulated: latencySummary(sim),
    simulatedLost: REVOCATIONS * N - sim.length,
    realCheck: latencySummary(real),
  };
  const slow = real.map((ms, i) => [i, Math.round(ms)]).filter(([, ms]) => ms > 500);
  if (slow.length)
    log(`real replica: revocations over 500 ms (index, ms): ${JSON.stringify(slow)}`);
  log(`propagation: ${JSON.stringify(propagation)}`);

  // Idle cost: primary CPU per second with N connected.
  const idle0 = schedOf(primary.pid);
  await sleep(5000);
  const idle1 = schedOf(primary.pid);
  const idleCpuPerSecond = (idle1.run - idle0.run) / Number(idle1.at - idle0.at);

  // Usage: every simulated replica reports each interval; one use at the real replica timed to lastUsedAt.
  const usage = await usagePhase({
    sims,
    token,
    primary,
    url,
    adminSecret: adminKey.secret,
    admin: { client, headers },
    checkSession: session,
    freshSecret: built.sample[REVOCATIONS + 1],
    keyIds: built.sample.slice(REVOCATIONS + 2).map((s) => s.split("_")[2]),
  });
  log(`usage: ${JSON.stringify(usage)}`);

  // Replica footprint: saturated Check (64 in flight) over the sample keys.
  const live = built.sample.slice(REVOCATIONS + 2).map((s) => checkRequestBody(s));
  let sent = 0;
  const until = performance.now() + 10_000;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (performance.now() < until) {
        await checkOn(session, live[sent++ % live.length]);
      }
    }),
  );
  const footprint = {
    replicaRssAfterStartMb: replicaStartRss,
    replicaPeakRssMb: replica.memory().hwmMb,
    saturatedChecks: sent,
  };
  const figures = {
    at: new Date().toISOString(),
    N,
    K,
    primaryRssBeforeStormMb: baseRss,
    storm,
    propagation,
    idleCpuPerSecond,
    usage,
    footprint,
  };
  console.log(JSON.stringify(figures));
  appendFileSync(join(OUT, "fleet.jsonl"), `${JSON.stringify({ ...figures, env: envOf() })}\n`);
  for (const s of sims) s.close();
  session.close();
  await replica.stop();
  await primary.stop();
}

/** The FLEET_* settings of this run. */
function envOf() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("FLEET_")));
}

/** Lines of a server's log carrying `message`. */
function logCount(file, message) {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.includes(`"msg":"${message}"`)).length;
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => killAll());
