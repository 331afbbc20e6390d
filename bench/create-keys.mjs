// Key-creation throughput straight through keyward's KeyRepository (the path the
// CLI's `keys create --db` and the admin API use), on a fresh database opened
// with keyward's own pragmas (WAL, synchronous=FULL: one fsync per key).
//   taskset -c 0 node bench/create-keys.mjs FILE SECONDS
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";

const [file, seconds = "3"] = process.argv.slice(2);
const db = openDatabase(file);
const store = new KeyRepository(db);
const deadline = performance.now() + Number(seconds) * 1000;
const started = performance.now();
let created = 0;
while (performance.now() < deadline) {
  store.create({
    kind: "live",
    name: `bench ${created}`,
    tenant: "acme",
    scopes: ["sources:read"],
  });
  created++;
}
const elapsed = (performance.now() - started) / 1000;
db.close();
process.stdout.write(`${JSON.stringify({ created, perSecond: created / elapsed })}\n`);
