// What a V8 heap cap costs keyward: garbage-collection time per Check and
// memory, read from keyward's own /metrics (nodejs_gc_duration_seconds and
// the heap and RSS gauges) after three saturated 3 s h2load runs.
//
//   node bench/heap-cap.mjs [jwt|key] [node flags...]
//   node bench/heap-cap.mjs jwt --max-old-space-size=96
//   node bench/heap-cap.mjs jwt --max-old-space-size=4096
//
// keyward starts as in `npm run bench` (core 0, the Dockerfile's NODE_OPTIONS
// and ENTRYPOINT node flags, 10 k-key database); flags given here come after
// both and win (`--heap-growing-percent=0` undoes the shipped growth setting). Run
// `npm run build` first (and `npm run bench` once, which builds the database).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkRequestBody, JWT_REQUEST } from "./grpc-check.mjs";
import { runH2load } from "./h2load.mjs";
import { createIssuer } from "./jwt.mjs";
import { keysDatabase } from "./keys-db.mjs";
import { killAll, OUT, RUN_DIR, track } from "./servers.mjs";
import { startKeyward } from "./starters.mjs";

const [credential = "jwt", ...nodeArgs] = process.argv.slice(2);
const issuer = createIssuer(join(RUN_DIR, "heap-cap-jwks.json"));
const keys = keysDatabase(join(OUT, "keys-10k.db"), 10_000);
const bodyFile = join(RUN_DIR, "heap-cap.bin");
writeFileSync(
  bodyFile,
  credential === "jwt"
    ? checkRequestBody(issuer.token(0), JWT_REQUEST)
    : checkRequestBody(keys.sample[0]),
);

const server = await startKeyward("heap-cap", { database: keys.file, issuer }, { nodeArgs });
const metrics = async () => {
  const text = await (await fetch(`http://127.0.0.1:${server.ports.http}/metrics`)).text();
  const sum = (pattern) =>
    text
      .split("\n")
      .filter((line) => pattern.test(line))
      .reduce((total, line) => total + Number(line.split(" ").at(-1)), 0);
  return {
    gcSeconds: sum(/^nodejs_gc_duration_seconds_sum/),
    heapMb: sum(/^nodejs_heap_size_total_bytes/) / 2 ** 20,
    rssMb: sum(/^process_resident_memory_bytes/) / 2 ** 20,
  };
};

try {
  const before = await metrics();
  let requests = 0;
  for (let run = 0; run < 3; run++) {
    const result = await runH2load(
      {
        port: server.port,
        bodyFile,
        connections: 4,
        streams: 16,
        durationS: 3,
        warmupS: 0,
        logFile: join(RUN_DIR, "heap-cap-h2load.log"),
      },
      track,
      () => {},
    );
    requests += result.requests;
  }
  const after = await metrics();
  const { hwmMb } = server.memory();
  console.log(
    `${credential} ${nodeArgs.join(" ") || "(NODE_OPTIONS only)"}: ` +
      `GC ${(((after.gcSeconds - before.gcSeconds) * 1e6) / requests).toFixed(1)} µs per Check ` +
      `over ${requests} Checks; heap ${after.heapMb.toFixed(0)} MB, RSS ${after.rssMb.toFixed(0)} MB (peak ${hwmMb.toFixed(0)} MB)`,
  );
} finally {
  await server.stop();
  killAll();
}
