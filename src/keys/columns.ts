import type { KeyKind, RateLimit } from "../auth/identity.js";
import type { CreateKeyInput } from "./input.js";
import { type KeyMetadata, storedMetadata } from "./metadata.js";
import type { KeyRecord, KeyStatus } from "./rows.js";

// How a key's inputs become columns of the `keys` table (db.ts), for the
// repository's writes and its list query.

/** What KeyRepository.update changes: each field given replaces the stored one. */
export interface KeyUpdate {
  readonly name?: string;
  readonly scopes?: readonly string[];
  readonly expiresAt?: number;
  /** {} removes the metadata. */
  readonly metadata?: KeyMetadata;
  /** [] lets the key be used from anywhere. */
  readonly allowedCidrs?: readonly string[];
  /** null removes the limit. */
  readonly rateLimit?: RateLimit | null;
}

export interface ListKeysFilter {
  readonly tenant?: string;
  readonly kind?: KeyKind;
  /** Any of these kinds (for callers confined to some kinds). */
  readonly kinds?: readonly KeyKind[];
  readonly status?: KeyStatus;
  readonly owner?: string;
  readonly run?: string;
}

/** Where a page of KeyRepository.list starts: just after this key. */
export interface PageCursor {
  readonly createdAt: number;
  readonly id: string;
}

/** The columns a create sets and an update may change, from a (validated) input. */
export function writableColumns(input: CreateKeyInput) {
  const limit = input.rateLimit;
  const cidrs = input.allowedCidrs ?? [];
  return {
    name: input.name ?? "",
    scopes: (input.scopes ?? []).join(" "),
    expires_at: input.expiresAt ?? null,
    metadata: storedMetadata(input.metadata),
    allowed_cidrs: cidrs.length === 0 ? null : cidrs.join(" "),
    rate_requests: limit?.requests ?? null,
    rate_per_seconds: limit?.perSeconds ?? null,
    rate_burst: limit === undefined ? null : limit.burst,
  };
}

/** The key as an update would leave it, as an input the create rules can check. */
export function updated(key: KeyRecord, changes: KeyUpdate): CreateKeyInput {
  return {
    kind: key.kind,
    name: changes.name ?? key.name,
    tenant: key.tenant,
    owner: key.owner,
    scopes: changes.scopes ?? key.scopes,
    expiresAt: changes.expiresAt ?? key.expiresAt,
    binding: key.binding,
    metadata: changes.metadata ?? key.metadata,
    allowedCidrs: changes.allowedCidrs ?? key.allowedCidrs,
    rateLimit: changes.rateLimit === undefined ? key.rateLimit : (changes.rateLimit ?? undefined),
  };
}

/** A status as a condition on the stored columns (`expired` and `suspended` are derived). */
const STATUS_WHERE: Record<KeyStatus, string> = {
  revoked: "status = 'revoked'",
  expired: "status = 'active' AND expires_at IS NOT NULL AND expires_at <= @now",
  active:
    "status = 'active' AND (expires_at IS NULL OR expires_at > @now) AND suspended_at IS NULL",
  suspended:
    "status = 'active' AND (expires_at IS NULL OR expires_at > @now) AND suspended_at IS NOT NULL",
};

/**
 * The list query: newest first, `limit` at most, starting after `after`
 * (the last key of the previous page); filters combine with AND.
 */
export function listQuery(
  filter: ListKeysFilter,
  limit: number,
  now: number,
  after?: PageCursor,
): { sql: string; params: Record<string, string | number> } {
  const where: string[] = [];
  const params: Record<string, string | number> = { limit, now };
  for (const field of ["tenant", "kind", "owner", "run"] as const) {
    const value = filter[field];
    if (value !== undefined) {
      where.push(`${field} = @${field}`);
      params[field] = value;
    }
  }
  if (filter.kinds !== undefined) {
    where.push(`kind IN (${filter.kinds.map((k) => `'${k}'`).join(",")})`);
  }
  if (filter.status !== undefined) where.push(STATUS_WHERE[filter.status]);
  if (after) {
    where.push("(created_at < @afterAt OR (created_at = @afterAt AND id < @afterId))");
    params.afterAt = after.createdAt;
    params.afterId = after.id;
  }
  const sql = `SELECT * FROM keys ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
               ORDER BY created_at DESC, id DESC LIMIT @limit`;
  return { sql, params };
}
