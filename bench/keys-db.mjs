// Builds (and caches under bench/out/) key databases of a given size. The
// file is first created by keyward's own openDatabase, so the schema (and its
// triggers, e.g. the replication change log) is exactly keyward's; rows then
// go in through one better-sqlite3 transaction, in id order so the
// primary-key and lookup indexes grow sequentially.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import Database from "better-sqlite3";
import { openDatabase } from "../dist/keys/db.js";
import { hashKey, keyLookup, parseKey } from "../dist/keys/format.js";

/** How many keys of each database have their secret kept for load runs. */
export const SAMPLE_SIZE = 4096;
const SCOPES = "sources:read items:read runs:read";

/** keyward's schema, as openDatabase creates it today (the cache key of a built file). */
function currentSchema() {
  const db = openDatabase(":memory:");
  try {
    return db
      .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
      .all()
      .map((row) => `${row.type} ${row.name} ${row.sql}`)
      .join("\n");
  } finally {
    db.close();
  }
}

/**
 * Returns `{ file, count, sample, built, seconds }` for a database holding
 * `count` active `live` keys; `sample` holds SAMPLE_SIZE of their secrets,
 * spread evenly over the id space. Reuses a cached file when its schema and
 * size still match.
 */
export function keysDatabase(file, count) {
  const meta = `${file}.json`;
  const schema = currentSchema();
  if (existsSync(file) && existsSync(meta)) {
    const cached = JSON.parse(readFileSync(meta, "utf8"));
    if (cached.count === count && cached.schema === schema) {
      return { file, count, sample: cached.sample, built: false, seconds: cached.seconds };
    }
  }
  const started = performance.now();
  for (const suffix of ["", "-wal", "-shm", ".json"]) rmSync(`${file}${suffix}`, { force: true });
  openDatabase(file).close();

  // Ids and secrets in keyward's format (16 and 48 lowercase hex), drawn in
  // bulk: one randomBytes call per million keys, not two per key.
  const ids = new Set();
  while (ids.size < count) {
    const hex = randomBytes(8 * (count - ids.size)).toString("hex");
    for (let at = 0; at < hex.length; at += 16) ids.add(hex.slice(at, at + 16));
  }
  const sorted = [...ids].sort();
  const secrets = randomBytes(24 * count).toString("hex");
  const every = Math.max(1, Math.floor(count / SAMPLE_SIZE));
  const sample = [];

  const db = new Database(file);
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -262144"); // 256 MiB while building only
  // Secondary indexes are dropped for the load and rebuilt from their own
  // SQL afterwards (sorting once is much faster than a million random
  // inserts); the schema ends up exactly as openDatabase made it.
  const indexes = db
    .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    .all();
  for (const index of indexes) db.exec(`DROP INDEX "${index.name}"`);
  const insert = db.prepare(
    `INSERT INTO keys (id, lookup, hash, kind, name, tenant, owner, scopes, status, created_at)
     VALUES (?, ?, ?, 'live', ?, ?, ?, ?, 'active', ?)`,
  );
  const createdAt = Date.now() - count;
  db.transaction(() => {
    for (let i = 0; i < sorted.length; i++) {
      const id = sorted[i];
      const secret = `${keyLookup("live", id)}_${secrets.slice(i * 48, i * 48 + 48)}`;
      insert.run(
        id,
        keyLookup("live", id),
        hashKey(secret),
        `bench key ${i}`,
        `tenant-${i % 1000}`,
        `owner-${i % 50_000}`,
        SCOPES,
        createdAt + i,
      );
      if (i % every === 0 && sample.length < SAMPLE_SIZE) {
        // The bulk-drawn key must be one keyward itself would accept.
        if (parseKey(secret)?.lookup !== keyLookup("live", id)) throw new Error(`bad key ${id}`);
        sample.push(secret);
      }
    }
  })();
  for (const index of indexes) db.exec(index.sql);
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  const seconds = (performance.now() - started) / 1000;
  writeFileSync(meta, JSON.stringify({ count, schema, seconds, sample }));
  return { file, count, sample, built: true, seconds };
}
