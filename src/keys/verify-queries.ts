import type { KeyKind } from "../auth/identity.js";
import type { Db } from "./db.js";
import type { KeyRow } from "./rows.js";

/** The columns {@link KeyVerifier} reads once a secret matched, in SELECT order. */
export type VerifyRow = [
  id: string,
  kind: KeyKind,
  tenant: string,
  owner: string,
  scopes: string,
  experiment: string | null,
  variation: string | null,
  run: string | null,
  status: KeyRow["status"],
  expiresAt: number | null,
  suspendedAt: number | null,
  previousUntil: number | null,
  metadata: string | null,
  allowedCidrs: string | null,
  rateRequests: number | null,
  ratePerSeconds: number | null,
  rateBurst: number | null,
];

/**
 * The two statements of KeyVerifier's hot path, prepared once per
 * connection: the stored hashes of a lookup, and the row once a secret
 * matched.
 */
export function verifyQueries(db: Db) {
  const hashes = db
    .prepare<[number, Buffer, string, Buffer, number, Buffer, Buffer], Buffer>(
      // The current hash followed by the previous one (a rotation grace
      // still running) or the dummy: 64 bytes for every key, so a key with
      // a grace reads and compares exactly like one without.
      // An unknown lookup reads a decoy row's hash instead: a row picked
      // by the presented digest, so that both kinds of refusal read one
      // index entry and one table row from anywhere in the table. The
      // decoy can never match: equal SHA-256 digests would mean the
      // presented key is the decoy's, whose lookup is known.
      `SELECT COALESCE(
         (SELECT CAST(hash || COALESCE(CASE WHEN previous_expires_at > ? THEN previous_hash END, ?) AS BLOB)
            FROM keys WHERE lookup = ?),
         (SELECT CAST(hash || ? AS BLOB) FROM keys WHERE rowid > ? % (SELECT max(rowid) FROM keys) ORDER BY rowid LIMIT 1),
         CAST(? || ? AS BLOB))`,
    )
    .pluck();
  // Only what verify() reads, once the secret matched, as a raw row: with
  // this many columns an array is ~1.3 µs cheaper per read than
  // better-sqlite3's row object (2.2 vs 3.5 µs, one core), which more than
  // pays for the lifecycle's columns on a decision-cache miss.
  const row = db
    .prepare<[string], VerifyRow>(
      `SELECT id, kind, tenant, owner, scopes, experiment, variation, run, status, expires_at,
         suspended_at, previous_expires_at, metadata, allowed_cidrs, rate_requests,
         rate_per_seconds, rate_burst
       FROM keys WHERE lookup = ?`,
    )
    .raw(true);
  return { hashes, row };
}
