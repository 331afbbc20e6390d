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
import { appendFileSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../dist/gen/keyward/admin/v1/admin_pb.js";
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";
import { checkOn, checkRequestBody } from "./grpc-check.mjs";
import { createIssuer } from "./jwt.mjs";
import { keysDatabase } from "./keys-db.mjs";
import { killAll, log, OUT, RUN_DIR, schedOf, sleep, startKeyward } from "./servers.mjs";
import { latencySummary } from "./stats.mjs";

const N = Number(process.argv[2] ?? 100);
const K = Number(process.argv[3] ?? 10_000);
const REVOCATIONS = 100;
const WATCH_PATH = "/keyward.replication.v1.ReplicationService/Watch";

/**
 * A simulated replica: reads the frames of its Watch stream without decoding
 * snapshot chunks (a snapshot frame ends with `last: true`, bytes 0x20 0x01,
 * when it is the last; rows never end that way), decoding only the key id of
 * each change to time its arrival.
 */
function simulatedReplica(url, token, arrivals) {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  const stream = session.request({
    ":method": "POST",
    ":path": WATCH_PATH,
    "content-type": "application/grpc+proto",
    te: "trailers",
    authorization: `Bearer ${token}`,
  });
  stream.on("error", () => undefined);
  stream.end(Buffer.from([0, 0, 0, 0, 0])); // WatchRequest{from_sequence: 0}
  const replica = { snapshotAt: undefined, bytes: 0, close: () => session.destroy() };
  let pending = Buffer.alloc(0);
  stream.on("data", (chunk) => {
    replica.bytes += chunk.length;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      const message = pending.subarray(5, 5 + length);
      pending = pending.subarray(5 + length);
      if (message[0] === 0x0a && message[length - 2] === 0x20 && message[length - 1] === 0x01) {
        replica.snapshotAt = performance.now();
      } else if (message[0] === 0x12) {
        // Change: field 2 (key_id) follows field 1 (sequence varint).
        let at = 1;
        while (message[at] & 0x80) at++; // length varint of the Change
        at++;
        if (message[at] === 0x08) {
          at++;
          while (message[at] & 0x80) at++;
          at++;
        }
        if (message[at] === 0x12) {
          const keyId = message.subarray(at + 2, at + 2 + message[at + 1]).toString("latin1");
          arrivals.get(keyId)?.push(performance.now());
        }
      }
    }
  });
  return replica;
}

async function main() {
  mkdirSync(RUN_DIR, { recursive: true });
  const built = keysDatabase(join(OUT, `fleet-${K}.db`), K);
  const primaryDb = join(RUN_DIR, "fleet-primary.db");
  const replicaDb = join(RUN_DIR, "fleet-replica.db");
  for (const file of [primaryDb, replicaDb])
    for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
  copyFileSync(built.file, primaryDb);
  const db = openDatabase(primaryDb);
  const admin = new KeyRepository(db).create({
    kind: "live",
    name: "bench",
    scopes: ["keys:admin"],
  });
  db.close();
  const tokenFile = join(RUN_DIR, "fleet-token");
  writeFileSync(tokenFile, randomBytes(24).toString("hex"), { mode: 0o600 });
  const token = (await import("node:fs")).readFileSync(tokenFile, "utf8");
  const issuer = createIssuer(join(RUN_DIR, "fleet-jwks.json"));

  const primary = await startKeyward(
    "fleet-primary",
    {
      database: primaryDb,
      issuer,
      config: { role: "primary", replication: { token_file: tokenFile } },
    },
    { cores: "0,1" },
  );
  const url = `http://127.0.0.1:${primary.ports.admin}`;
  const client = createClient(KeyService, createGrpcTransport({ baseUrl: url }));
  const headers = { authorization: `Bearer ${admin.secret}` };
  const baseRss = primary.memory().rssMb;

  // Snapshot storm: all N at once, CreateKey timed meanwhile.
  const arrivals = new Map();
  const cpu0 = schedOf(primary.pid);
  const stormStart = performance.now();
  const sims = Array.from({ length: N }, () => simulatedReplica(url, token, arrivals));
  const createLatencies = [];
  while (sims.some((s) => s.snapshotAt === undefined)) {
    const t = performance.now();
    await client.createKey({ kind: "live", scopes: ["sources:read"] }, { headers });
    createLatencies.push(performance.now() - t);
    await sleep(20);
  }
  const stormMs = N === 0 ? 0 : Math.max(...sims.map((s) => s.snapshotAt)) - stormStart;
  const cpu1 = schedOf(primary.pid);
  const storm = {
    seconds: stormMs / 1000,
    primaryCpuSeconds: (cpu1.run - cpu0.run) / 1e9,
    primaryPeakRssMb: primary.memory().hwmMb,
    createKeyMs: latencySummary(createLatencies),
    snapshotMbPerReplica: (sims[0]?.bytes ?? 0) / 1e6,
  };
  log(`storm: ${JSON.stringify(storm)}`);

  // One real replica answering Checks.
  const replica = await startKeyward(
    "fleet-replica",
    {
      database: replicaDb,
      issuer,
      config: { role: "replica", replication: { primary: url, token_file: tokenFile } },
    },
    // FLEET_REPLICA_NODE_ARGS: V8 flags to try on the replica (e.g. --max-semi-space-size=2).
    { nodeArgs: (process.env.FLEET_REPLICA_NODE_ARGS ?? "").split(" ").filter(Boolean) },
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
  const propagation = { simulated: latencySummary(sim), realCheck: latencySummary(real) };
  log(`propagation: ${JSON.stringify(propagation)}`);

  // Idle cost: primary CPU per second with N connected.
  const idle0 = schedOf(primary.pid);
  await sleep(5000);
  const idle1 = schedOf(primary.pid);
  const idleCpuPerSecond = (idle1.run - idle0.run) / Number(idle1.at - idle0.at);

  // Replica footprint: saturated Check (64 in flight) over the sample keys.
  const live = built.sample.slice(REVOCATIONS + 1).map((s) => checkRequestBody(s));
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
    footprint,
  };
  console.log(JSON.stringify(figures));
  appendFileSync(join(OUT, "fleet.jsonl"), `${JSON.stringify(figures)}\n`);
  for (const s of sims) s.close();
  session.close();
  await replica.stop();
  await primary.stop();
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => killAll());
