import type { KeyMetadata } from "./metadata.js";
import type { KeyRecord } from "./rows.js";
import type { UsageHour } from "./usage.js";

/** A key as JSON (CLI `--json`, REST): camelCase names, ISO 8601 times, null when unset. */
export interface KeyJson {
  id: string;
  keyLookup: string;
  kind: string;
  name: string;
  tenant: string;
  owner: string;
  scopes: string[];
  binding: { experiment: string; variation: string; run: string } | null;
  status: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  suspendedAt: string | null;
  previousSecretExpiresAt: string | null;
  metadata: KeyMetadata | null;
  allowedCidrs: string[];
  rateLimit: { requests: number; perSeconds: number; burst: number } | null;
  lastUsedAt: string | null;
}

export function keyToJson(key: KeyRecord): KeyJson {
  return {
    id: key.id,
    keyLookup: key.keyLookup,
    kind: key.kind,
    name: key.name,
    tenant: key.tenant,
    owner: key.owner,
    scopes: [...key.scopes],
    binding: key.binding ? { ...key.binding } : null,
    status: key.status,
    createdAt: iso(key.createdAt) as string,
    expiresAt: iso(key.expiresAt),
    revokedAt: iso(key.revokedAt),
    suspendedAt: iso(key.suspendedAt),
    previousSecretExpiresAt: iso(key.previousSecretExpiresAt),
    metadata: key.metadata ?? null,
    allowedCidrs: [...key.allowedCidrs],
    rateLimit: key.rateLimit ? { ...key.rateLimit } : null,
    lastUsedAt: iso(key.lastUsedAt),
  };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/** One hour of a key's use as JSON (REST, CLI `keys usage --json`). */
export interface UsageHourJson {
  hour: string;
  allowed: number;
  denied: Record<string, number>;
}

export function usageToJson(hours: readonly UsageHour[]): UsageHourJson[] {
  return hours.map((h) => ({
    hour: new Date(h.hour).toISOString(),
    allowed: h.allowed,
    denied: { ...h.denied },
  }));
}
