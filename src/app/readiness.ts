import type { Readiness } from "../http/server.js";
import type { JwtVerifier } from "../jwt/verifier.js";
import type { Db } from "../keys/db.js";
import type { ReplicaSync } from "../replication/replica.js";
import type { CheckWorkers } from "../workers/pool.js";

/** What `/readyz` looks at. */
export interface ReadinessSources {
  /** The Check connection: a page of the key table is read through it. */
  readonly db: Db;
  /** What is wrong with the database file, if anything (see databaseFileCheck). */
  readonly fileProblem: () => string | undefined;
  readonly jwt: () => JwtVerifier | undefined;
  readonly replica?: ReplicaSync | undefined;
  /** Why a replica cannot decide, if it cannot. */
  readonly unavailable?: (() => string | undefined) | undefined;
  readonly workers?: CheckWorkers | undefined;
  readonly now: () => number;
}

/**
 * `/readyz`: the store readable, every JWKS loaded, a replica synced and
 * within its staleness bound, every Check worker listening.
 */
export function readiness(sources: ReadinessSources): Readiness {
  const { db, replica, workers, now } = sources;
  const checks: Record<string, string> = {};
  let ready = true;
  let degraded = false;
  try {
    // Reads a page of the key table: "SELECT 1" alone would not notice a
    // corrupt file. The connection's cached pages are released first, or the
    // page could come from memory however the file changed underneath.
    db.pragma("shrink_memory");
    db.prepare("SELECT 1 FROM keys LIMIT 1").get();
    const problem = sources.fileProblem();
    checks.store = problem ?? "ok";
    if (problem) ready = false;
  } catch (error) {
    ready = false;
    checks.store = `unreadable: ${(error as Error).message}`;
  }
  for (const issuer of sources.jwt()?.status() ?? []) {
    checks[`jwks ${issuer.issuer}`] = issuer.loaded
      ? "ok"
      : `not loaded: ${issuer.lastError ?? "pending"}`;
    if (!issuer.loaded) ready = false;
  }
  if (replica) {
    const status = replica.status();
    const heard =
      status.lastHeardAt === undefined
        ? "never"
        : `${((now() - status.lastHeardAt) / 1000).toFixed(1)}s ago`;
    const why = sources.unavailable?.();
    if (why) {
      ready = false;
      checks.replication = `${why} (primary heard ${heard})`;
    } else if (!status.connected) {
      // Default (no max_staleness): keep serving what it has, and say so.
      degraded = true;
      checks.replication = `degraded: primary unreachable, serving sequence ${status.appliedSequence} (primary heard ${heard})`;
    } else {
      checks.replication = `ok (sequence ${status.appliedSequence}, ${status.primarySequence - status.appliedSequence} behind)`;
    }
  }
  if (workers) {
    const { listening, expected } = workers.status();
    if (listening !== expected) ready = false;
    checks.workers = `${listening} of ${expected} check workers listening`;
  }
  return { ready, degraded, checks };
}
