import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { UpdateKeyRequest } from "../../gen/keyward/admin/v1/admin_pb.js";
import type { KeyMetadata } from "../../keys/metadata.js";
import type { KeyUpdate } from "../../keys/repository.js";
import { keyToProto } from "../convert.js";
import { assertCouldMint } from "../principal.js";
import { guardInput, type Handlers, notFound } from "./context.js";
import { assertKnownScopes } from "./mint.js";

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

/** The fields the request sets; scopes must all be strings. */
function updateOf(request: UpdateKeyRequest): KeyUpdate {
  let scopes: string[] | undefined;
  if (request.scopes !== undefined) {
    scopes = request.scopes.values.map((value) => {
      if (value.kind.case !== "stringValue") {
        throw new ConnectError("scopes: expected a list of strings", Code.InvalidArgument);
      }
      return value.kind.value;
    });
  }
  return {
    ...(request.name !== undefined && { name: request.name }),
    ...(scopes !== undefined && { scopes }),
    ...(request.expiresAt !== undefined && { expiresAt: timestampMs(request.expiresAt) }),
    ...(request.metadata !== undefined && { metadata: request.metadata as KeyMetadata }),
  };
}
