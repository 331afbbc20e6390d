import { type ListValue, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { RateLimit } from "../../auth/identity.js";
import type { UpdateKeyRequest } from "../../gen/keyward/admin/v1/admin_pb.js";
import type { KeyMetadata } from "../../keys/metadata.js";
import type { KeyUpdate } from "../../keys/repository.js";
import { keyToProto } from "../convert.js";
import { assertCouldMint } from "../principal.js";
import { guardInput, type Handlers, notFound } from "./context.js";
import { assertKnownScopes, limitOf } from "./mint.js";

/**
 * UpdateKey: changes a key's name, scopes, expiry or metadata. The caller
 * must be able to mint the key both as it is and as it will be, so an
 * update can neither reach a key outside the caller's grant nor widen one
 * beyond it (a researcher cannot add a scope its token lacks).
 */
export function updateHandlers(h: Handlers) {
  const { store, audited } = h.options;
  return {
    updateKey(request: UpdateKeyRequest, context: HandlerContext) {
      return audited(context, request.id, (caller) => {
        const key = h.visibleKey(caller, request.id);
        assertCouldMint(caller, { kind: key.kind, tenant: key.tenant, scopes: key.scopes });
        if (key.status === "revoked") {
          throw new ConnectError(
            `key ${key.id} is revoked and cannot be updated`,
            Code.FailedPrecondition,
          );
        }
        const changes = updateOf(request);
        if (changes.expiresAt !== undefined && changes.expiresAt <= h.now()) {
          throw new ConnectError(
            `expiresAt: ${new Date(changes.expiresAt).toISOString()} is already past`,
            Code.InvalidArgument,
          );
        }
        if (changes.rateLimit !== undefined && !caller.superuser && !caller.tenantAdmin) {
          // A limit is a restriction: whoever manages the key may add or
          // tighten one, only an administrator may lift or raise it.
          if (looser(changes.rateLimit, key.rateLimit)) {
            throw new ConnectError(
              "rateLimit: only keys:admin or the tenant's administrator may lift or raise a key's rate limit",
              Code.PermissionDenied,
            );
          }
        }
        if (changes.scopes !== undefined) {
          assertKnownScopes(h, changes.scopes);
          assertCouldMint(caller, { kind: key.kind, tenant: key.tenant, scopes: changes.scopes });
        }
        return {
          key: keyToProto(guardInput(() => store.update(key.id, changes)) ?? notFound(key.id)),
        };
      });
    },
  };
}

/** The fields the request sets; lists must hold strings only. */
function updateOf(request: UpdateKeyRequest): KeyUpdate {
  const scopes = strings("scopes", request.scopes);
  const allowedCidrs = strings("allowedCidrs", request.allowedCidrs);
  return {
    ...(request.name !== undefined && { name: request.name }),
    ...(scopes !== undefined && { scopes }),
    ...(allowedCidrs !== undefined && { allowedCidrs }),
    ...(request.expiresAt !== undefined && { expiresAt: timestampMs(request.expiresAt) }),
    ...(request.metadata !== undefined && { metadata: request.metadata as KeyMetadata }),
    ...(request.rateLimit !== undefined && { rateLimit: limitOf(request.rateLimit) ?? null }),
  };
}

/** True when `next` lets more requests through than `current` (steady rate or burst). */
function looser(next: RateLimit | null, current: RateLimit | undefined): boolean {
  if (current === undefined) return false;
  if (next === null) return true;
  const capacity = (limit: RateLimit) => (limit.burst > 0 ? limit.burst : limit.requests);
  return (
    next.requests * current.perSeconds > current.requests * next.perSeconds ||
    capacity(next) > capacity(current)
  );
}

function strings(field: string, list: ListValue | undefined): string[] | undefined {
  return list?.values.map((value) => {
    if (value.kind.case !== "stringValue") {
      throw new ConnectError(`${field}: expected a list of strings`, Code.InvalidArgument);
    }
    return value.kind.value;
  });
}
