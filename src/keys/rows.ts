import type { KeyKind, RateLimit, RunBinding } from "../auth/identity.js";
import type { KeyMetadata } from "./metadata.js";

/**
 * A `keys` row as SQLite returns it (migrations in db.ts). The one row type:
 * the verifier, the repository and replication all read and write it.
 */
export interface KeyRow {
  id: string;
  lookup: string;
  hash: Buffer;
  kind: KeyKind;
  name: string;
  tenant: string;
  owner: string;
  /** Space-separated scope tokens. */
  scopes: string;
  experiment: string | null;
  variation: string | null;
  run: string | null;
  status: "active" | "revoked";
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  rotated_at: number | null;
  /** Set while the key is suspended (reversible; status stays "active"). */
  suspended_at: number | null;
  /** SHA-256 of the previous key during a rotation grace, else null. */
  previous_hash: Buffer | null;
  /** When the previous secret stops verifying (epoch ms), else null. */
  previous_expires_at: number | null;
  /** The key's metadata as JSON text (keys/metadata.ts), or null. */
  metadata: string | null;
  /** Space-separated CIDRs the key may be used from; null: anywhere. */
  allowed_cidrs: string | null;
  /** The native rate limit (all three set, or all null). */
  rate_requests: number | null;
  rate_per_seconds: number | null;
  rate_burst: number | null;
  /** Local to each node: replication leaves it out. */
  last_used_at: number | null;
}

/** A key's status as the admin surfaces show it and list filters name it. */
export type KeyStatus = "active" | "suspended" | "revoked" | "expired";

/** Every {@link KeyStatus}, for validating a filter. */
export const KEY_STATUSES: readonly KeyStatus[] = ["active", "suspended", "revoked", "expired"];

/** A key as the admin surfaces show it. Holds no secret and no hash. */
export interface KeyRecord {
  readonly id: string;
  readonly keyLookup: string;
  readonly kind: KeyKind;
  readonly name: string;
  readonly tenant: string;
  readonly owner: string;
  readonly scopes: readonly string[];
  readonly binding: RunBinding | undefined;
  /**
   * Derived at read time, most final first: `revoked`, then `expired` (from
   * `expiresAt`), then `suspended` (from `suspendedAt`), else `active`.
   */
  readonly status: KeyStatus;
  readonly createdAt: number;
  readonly expiresAt: number | undefined;
  readonly revokedAt: number | undefined;
  readonly suspendedAt: number | undefined;
  /** While a rotation grace runs: when the previous secret stops working. */
  readonly previousSecretExpiresAt: number | undefined;
  readonly metadata: KeyMetadata | undefined;
  /** Networks the key may be used from; empty: anywhere. */
  readonly allowedCidrs: readonly string[];
  readonly rateLimit: RateLimit | undefined;
  readonly lastUsedAt: number | undefined;
}

/** The row as the admin surfaces show it, its status read at `now`. */
export function toRecord(row: KeyRow, now: number): KeyRecord {
  const expired = row.expires_at !== null && row.expires_at <= now;
  return {
    id: row.id,
    keyLookup: row.lookup,
    kind: row.kind,
    name: row.name,
    tenant: row.tenant,
    owner: row.owner,
    scopes: splitScopes(row.scopes),
    binding: bindingOf(row),
    status:
      row.status === "revoked"
        ? "revoked"
        : expired
          ? "expired"
          : row.suspended_at !== null
            ? "suspended"
            : "active",
    createdAt: row.created_at,
    expiresAt: row.expires_at ?? undefined,
    revokedAt: row.revoked_at ?? undefined,
    suspendedAt: row.suspended_at ?? undefined,
    previousSecretExpiresAt:
      row.previous_expires_at !== null && row.previous_expires_at > now && row.status !== "revoked"
        ? row.previous_expires_at
        : undefined,
    metadata: row.metadata === null ? undefined : (JSON.parse(row.metadata) as KeyMetadata),
    allowedCidrs: row.allowed_cidrs === null ? [] : row.allowed_cidrs.split(" "),
    rateLimit: rateLimitOf(row),
    lastUsedAt: row.last_used_at ?? undefined,
  };
}

/** The row's rate limit, or undefined when it has none. */
export function rateLimitOf(
  row: Pick<KeyRow, "rate_requests" | "rate_per_seconds" | "rate_burst">,
): RateLimit | undefined {
  if (row.rate_requests === null || row.rate_per_seconds === null) return undefined;
  return {
    requests: row.rate_requests,
    perSeconds: row.rate_per_seconds,
    burst: row.rate_burst ?? 0,
  };
}

export function splitScopes(scopes: string): string[] {
  return scopes === "" ? [] : scopes.split(" ");
}

export function bindingOf(
  row: Pick<KeyRow, "experiment" | "variation" | "run">,
): RunBinding | undefined {
  if (row.experiment === null || row.variation === null || row.run === null) return undefined;
  return { experiment: row.experiment, variation: row.variation, run: row.run };
}
