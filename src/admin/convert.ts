import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { KeyKind } from "../auth/identity.js";
import { type Key, KeySchema, type KeyUsageHour } from "../gen/keyward/admin/v1/admin_pb.js";
import { type KeyJson, keyToJson, type UsageHourJson, usageToJson } from "../keys/json.js";
import type { KeyMetadata } from "../keys/metadata.js";
import type { KeyRecord } from "../keys/rows.js";

/** A stored key as the admin API's Key message. */
export function keyToProto(key: KeyRecord): Key {
  return create(KeySchema, {
    id: key.id,
    keyLookup: key.keyLookup,
    kind: key.kind,
    name: key.name,
    tenant: key.tenant,
    owner: key.owner,
    scopes: [...key.scopes],
    binding: key.binding,
    status: key.status,
    createdAt: timestampFromMs(key.createdAt),
    expiresAt: ms(key.expiresAt),
    lastUsedAt: ms(key.lastUsedAt),
    revokedAt: ms(key.revokedAt),
    suspendedAt: ms(key.suspendedAt),
    previousSecretExpiresAt: ms(key.previousSecretExpiresAt),
    metadata: key.metadata as JsonObject | undefined,
    allowedCidrs: [...key.allowedCidrs],
    rateLimit: key.rateLimit,
  });
}

/** A Key message as the record it was made from (the CLI's remote mode reads keys this way). */
export function keyFromProto(key: Key): KeyRecord {
  return {
    id: key.id,
    keyLookup: key.keyLookup,
    kind: key.kind as KeyKind,
    name: key.name,
    tenant: key.tenant,
    owner: key.owner,
    scopes: [...key.scopes],
    binding: key.binding
      ? {
          experiment: key.binding.experiment,
          variation: key.binding.variation,
          run: key.binding.run,
        }
      : undefined,
    status: key.status as KeyRecord["status"],
    createdAt: key.createdAt ? timestampMs(key.createdAt) : 0,
    expiresAt: key.expiresAt && timestampMs(key.expiresAt),
    revokedAt: key.revokedAt && timestampMs(key.revokedAt),
    suspendedAt: key.suspendedAt && timestampMs(key.suspendedAt),
    previousSecretExpiresAt:
      key.previousSecretExpiresAt && timestampMs(key.previousSecretExpiresAt),
    metadata: key.metadata as KeyMetadata | undefined,
    allowedCidrs: [...key.allowedCidrs],
    rateLimit: key.rateLimit && {
      requests: key.rateLimit.requests,
      perSeconds: key.rateLimit.perSeconds,
      burst: key.rateLimit.burst,
    },
    lastUsedAt: key.lastUsedAt && timestampMs(key.lastUsedAt),
  };
}

/**
 * A Key message as the JSON the CLI and the REST routes print (the same
 * shape as `--db` mode: every field present, null when unset).
 */
export function protoKeyToJson(key: Key): KeyJson {
  return keyToJson(keyFromProto(key));
}

function ms(value: number | undefined): Timestamp | undefined {
  return value === undefined ? undefined : timestampFromMs(value);
}

/** GetKeyUsage's hours as JSON, the shape the local store's series gives. */
export function protoUsageToJson(hours: readonly KeyUsageHour[]): UsageHourJson[] {
  return usageToJson(
    hours.map((h) => ({
      hour: h.hour ? timestampMs(h.hour) : 0,
      allowed: Number(h.allowed),
      denied: Object.fromEntries(Object.entries(h.denied).map(([code, n]) => [code, Number(n)])),
    })),
  );
}
