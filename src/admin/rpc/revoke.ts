import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { RevokeRunKeysRequest } from "../../gen/keyward/admin/v1/admin_pb.js";
import { keyToProto } from "../convert.js";
import { assertAdministrator, assertCouldMint } from "../principal.js";
import { type Handlers, notFound } from "./context.js";

/** RevokeKey and RevokeRunKeys: the two calls that destroy secrets. */
export function revokeHandlers(h: Handlers) {
  const { store, audited } = h.options;
  return {
    revokeKey(request: { id: string }, context: HandlerContext) {
      return audited(context, request.id, (caller) => {
        const key = h.visibleKey(caller, request.id);
        // Destroying a secret takes the authority to mint it (owner aside:
        // any admin of the tenant may stop a key, whoever it acts as).
        assertCouldMint(caller, { kind: key.kind, tenant: key.tenant, scopes: key.scopes });
        return { key: keyToProto(store.revoke(key.id) ?? notFound(key.id)) };
      });
    },

    revokeRunKeys(request: RevokeRunKeysRequest, context: HandlerContext) {
      return audited(context, undefined, (caller) => {
        const binding = request.binding;
        if (!binding?.experiment || !binding.variation || !binding.run) {
          throw new ConnectError(
            "binding needs experiment, variation and run",
            Code.InvalidArgument,
          );
        }
        assertAdministrator(caller, "end runs");
        const tenant = caller.superuser ? undefined : caller.identity.tenant;
        // Ending a run destroys every worker secret of it: the caller must be
        // able to mint worker keys here at all, and each of these. All or none.
        assertCouldMint(caller, { kind: "worker", tenant: caller.identity.tenant, scopes: [] });
        for (const key of store.runKeys(binding, tenant)) {
          assertCouldMint(caller, { kind: key.kind, tenant: key.tenant, scopes: key.scopes });
        }
        return { keys: store.revokeRun(binding, tenant).map(keyToProto) };
      });
    },
  };
}
