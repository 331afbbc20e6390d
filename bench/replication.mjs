// Replication propagation: a primary and a replica as real keyward processes
// (both on the server core), N keys revoked one at a time through the
// primary's admin API, each timed from RevokeKey returning to the replica's
// Check answering key_revoked (asked again every millisecond over one HTTP/2
// connection from this process).
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../dist/gen/keyward/admin/v1/admin_pb.js";
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";
import { checkOn, checkRequestBody } from "./grpc-check.mjs";
import { RUN_DIR, sleep } from "./servers.mjs";
import { latencySummary } from "./stats.mjs";

/** How long one revocation may take to reach the replica before it counts as lost. */
const GIVE_UP_MS = 5000;

/** A Check sender over one HTTP/2 connection: `decide(body)` resolves with the decision. */
function checkSession(port) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => undefined); // each request rejects on its own
  return { decide: (body) => checkOn(session, body), close: () => session.close() };
}

/**
 * Starts a primary (with `revocations` keys and an admin key minted into its
 * file first) and a replica through `startKeyward(name, options)`, waits for
 * the replica's snapshot, then revokes the keys one by one.
 */
export async function measurePropagation(startKeyward, { issuer, revocations }) {
  const primaryDb = join(RUN_DIR, "primary.db");
  const replicaDb = join(RUN_DIR, "replica.db");
  for (const file of [primaryDb, replicaDb]) {
    for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
  }
  const db = openDatabase(primaryDb);
  const store = new KeyRepository(db);
  const admin = store.create({
    kind: "live",
    name: "bench admin",
    tenant: "ops",
    scopes: ["keys:admin"],
  });
  const keys = Array.from({ length: revocations }, (_, i) =>
    store.create({
      kind: "live",
      name: `propagation ${i}`,
      tenant: "acme",
      scopes: ["sources:read"],
    }),
  );
  db.close();
  const tokenFile = join(RUN_DIR, "replication-token");
  writeFileSync(tokenFile, randomBytes(24).toString("hex"), { mode: 0o600 });

  const primary = await startKeyward("keyward-primary", {
    database: primaryDb,
    issuer,
    config: { role: "primary", replication: { token_file: tokenFile } },
  });
  const replica = await startKeyward("keyward-replica", {
    database: replicaDb,
    issuer,
    config: {
      role: "replica",
      replication: { primary: `http://127.0.0.1:${primary.ports.admin}`, token_file: tokenFile },
    },
  });
  const check = checkSession(replica.port);
  const client = createClient(
    KeyService,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${primary.ports.admin}` }),
  );
  const headers = { authorization: `Bearer ${admin.secret}` };
  try {
    const bodies = keys.map((k) => checkRequestBody(k.secret));
    // The replica answers 503 until its first snapshot; then every key is allowed.
    const syncedBy = Date.now() + 30_000;
    while ((await check.decide(bodies.at(-1))) !== "allow") {
      if (Date.now() > syncedBy) throw new Error("the replica did not sync within 30 s");
      await sleep(20);
    }
    const times = [];
    let lost = 0;
    for (const [i, key] of keys.entries()) {
      await client.revokeKey({ id: key.key.id }, { headers });
      const since = performance.now();
      for (;;) {
        const decision = await check.decide(bodies[i]);
        const took = performance.now() - since;
        if (decision === "key_revoked") {
          times.push(took * 1000);
          break;
        }
        if (decision !== "allow") throw new Error(`replica answered ${decision} for key ${i}`);
        if (took > GIVE_UP_MS) {
          lost++;
          break;
        }
        await sleep(1);
      }
    }
    return { revocations, lost, latency: latencySummary(times), maxUs: Math.max(...times) };
  } finally {
    check.close();
    await replica.stop();
    await primary.stop();
  }
}
