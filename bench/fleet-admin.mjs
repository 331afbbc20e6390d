// A worker thread of bench/fleet.mjs: CreateKey through the admin API, one
// call at a time with 20 ms between calls, until told to stop; then posts
// the latencies (ms) and when each call started (ms since the worker began). On its own thread, so the 1,000 connections the
// bench's main thread reads do not delay its calls' callbacks.
import { parentPort, workerData } from "node:worker_threads";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../dist/gen/keyward/admin/v1/admin_pb.js";

const { url, secret } = workerData;
const client = createClient(KeyService, createGrpcTransport({ baseUrl: url }));
const headers = { authorization: `Bearer ${secret}` };
let stop = false;
parentPort.once("message", () => {
  stop = true;
});
// One call first, untimed: the connection is up before the phase begins (an
// admin client already connected; a new connection made at a storm's start
// waits behind the replicas' connections, which bench/NOTES.md reports apart).
await client.createKey({ kind: "live", scopes: ["sources:read"] }, { headers });
parentPort.postMessage("ready");
const latencies = [];
const startedAt = [];
const begin = performance.now();
while (!stop) {
  const t = performance.now();
  await client.createKey({ kind: "live", scopes: ["sources:read"] }, { headers });
  latencies.push(performance.now() - t);
  startedAt.push(t - begin);
  await new Promise((done) => setTimeout(done, 20));
}
parentPort.postMessage({ latencies, startedAt });
