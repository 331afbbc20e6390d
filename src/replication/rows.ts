import { create } from "@bufbuild/protobuf";
import type { KeyKind } from "../auth/identity.js";
import {
  type KeyRow as KeyRowMessage,
  KeyRowSchema,
} from "../gen/keyward/replication/v1/replication_pb.js";
import type { KeyRow } from "../keys/rows.js";

/** The columns a replica receives: every one but the node-local `last_used_at`. */
export type ReplicatedRow = Omit<KeyRow, "last_used_at">;

/** The replicated columns, in the order of {@link INSERT_ROW}. */
export const REPLICATED_COLUMNS =
  "id, lookup, hash, kind, name, tenant, owner, scopes, experiment, variation, run, status, created_at, expires_at, revoked_at, rotated_at, suspended_at, previous_hash, previous_expires_at, metadata, allowed_cidrs, rate_requests, rate_per_seconds, rate_burst";

export const INSERT_ROW = `INSERT OR REPLACE INTO keys (${REPLICATED_COLUMNS})
  VALUES (@id, @lookup, @hash, @kind, @name, @tenant, @owner, @scopes, @experiment, @variation, @run,
          @status, @created_at, @expires_at, @revoked_at, @rotated_at, @suspended_at,
          @previous_hash, @previous_expires_at, @metadata, @allowed_cidrs, @rate_requests,
          @rate_per_seconds, @rate_burst)`;

export function rowToProto(row: ReplicatedRow): KeyRowMessage {
  return create(KeyRowSchema, {
    id: row.id,
    lookup: row.lookup,
    hash: row.hash,
    kind: row.kind,
    name: row.name,
    tenant: row.tenant,
    owner: row.owner,
    scopes: row.scopes,
    experiment: row.experiment ?? "",
    variation: row.variation ?? "",
    run: row.run ?? "",
    hasBinding: row.run !== null,
    status: row.status,
    createdAt: BigInt(row.created_at),
    expiresAt: BigInt(row.expires_at ?? 0),
    revokedAt: BigInt(row.revoked_at ?? 0),
    rotatedAt: BigInt(row.rotated_at ?? 0),
    suspendedAt: BigInt(row.suspended_at ?? 0),
    previousHash: row.previous_hash ?? new Uint8Array(0),
    previousExpiresAt: BigInt(row.previous_expires_at ?? 0),
    metadata: row.metadata ?? "",
    allowedCidrs: row.allowed_cidrs ?? "",
    rateRequests: row.rate_requests ?? 0,
    ratePerSeconds: row.rate_per_seconds ?? 0,
    rateBurst: row.rate_burst ?? 0,
  });
}

/**
 * A received row as the replica stores it. Kind and status are taken as the
 * primary wrote them: its own repository validated them when they were made.
 */
export function protoToRow(row: KeyRowMessage): ReplicatedRow {
  const time = (value: bigint) => (value === 0n ? null : Number(value));
  return {
    id: row.id,
    lookup: row.lookup,
    hash: Buffer.from(row.hash),
    kind: row.kind as KeyKind,
    name: row.name,
    tenant: row.tenant,
    owner: row.owner,
    scopes: row.scopes,
    experiment: row.hasBinding ? row.experiment : null,
    variation: row.hasBinding ? row.variation : null,
    run: row.hasBinding ? row.run : null,
    status: row.status as KeyRow["status"],
    created_at: Number(row.createdAt),
    expires_at: time(row.expiresAt),
    revoked_at: time(row.revokedAt),
    rotated_at: time(row.rotatedAt),
    suspended_at: time(row.suspendedAt),
    previous_hash: row.previousHash.length > 0 ? Buffer.from(row.previousHash) : null,
    previous_expires_at: time(row.previousExpiresAt),
    metadata: row.metadata === "" ? null : row.metadata,
    allowed_cidrs: row.allowedCidrs === "" ? null : row.allowedCidrs,
    // A limit has at least one request per window: 0 means none.
    rate_requests: row.rateRequests === 0 ? null : row.rateRequests,
    rate_per_seconds: row.rateRequests === 0 ? null : row.ratePerSeconds,
    rate_burst: row.rateRequests === 0 ? null : row.rateBurst,
  };
}
