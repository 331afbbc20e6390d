import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Key, KeySchema } from "../gen/keyward/admin/v1/admin_pb.js";
import type { KeyJson } from "../keys/json.js";
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
  });
}

/**
 * A Key message as the JSON the CLI and the REST routes print (the same
 * shape as `--db` mode: every field present, null when unset).
 */
export function protoKeyToJson(key: Key): KeyJson {
  return {
    id: key.id,
    keyLookup: key.keyLookup,
    kind: key.kind,
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
      : null,
    status: key.status,
    createdAt: iso(key.createdAt) ?? new Date(0).toISOString(),
    expiresAt: iso(key.expiresAt),
    revokedAt: iso(key.revokedAt),
    lastUsedAt: iso(key.lastUsedAt),
  };
}

function ms(value: number | undefined): Timestamp | undefined {
  return value === undefined ? undefined : timestampFromMs(value);
}

function iso(value: Timestamp | undefined): string | null {
  return value ? timestampDate(value).toISOString() : null;
}
