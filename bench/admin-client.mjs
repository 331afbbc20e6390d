// CreateKey throughput through keyward's admin API (keyward.admin.v1.KeyService
// over gRPC, @connectrpc/connect-node client), `concurrency` calls in flight.
//   taskset -c 1 node bench/admin-client.mjs '{"port":..,"token":"sk_...","durationS":5}'
// Prints one JSON line: created, keys/s, latency percentiles (µs), errors.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../dist/gen/keyward/admin/v1/admin_pb.js";
import { latencySummary } from "./stats.mjs";

const { port, token, durationS = 5, concurrency = 8 } = JSON.parse(process.argv[2] ?? "{}");
const client = createClient(
  KeyService,
  createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
);
const headers = { authorization: `Bearer ${token}` };
const latencies = [];
let created = 0;
let errors = 0;
let firstError;
const started = performance.now();
const deadline = started + durationS * 1000;

async function worker(n) {
  for (let i = 0; performance.now() < deadline; i++) {
    const at = performance.now();
    try {
      const response = await client.createKey(
        { kind: "live", name: `bench ${n}.${i}`, tenant: "acme", scopes: ["sources:read"] },
        { headers },
      );
      if (!response.secret.startsWith("sk_live_")) throw new Error("CreateKey returned no secret");
      created++;
      latencies.push((performance.now() - at) * 1000);
    } catch (error) {
      errors++;
      firstError ??= String(error);
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, (_, n) => worker(n)));
const seconds = (performance.now() - started) / 1000;
process.stdout.write(
  `${JSON.stringify({ created, perSecond: created / seconds, errors, firstError, concurrency, latency: latencySummary(latencies) })}\n`,
);
