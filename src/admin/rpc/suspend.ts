import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { keyToProto } from "../convert.js";
import { assertCouldMint } from "../principal.js";
import { guardInput, type Handlers, notFound } from "./context.js";

/**
 * SuspendKey and ResumeKey: the reversible stop. The visibility and minting
 * rules are revocation's (revoke.ts): a caller suspends or resumes only a
 * key it could have minted, so a resume can never hand back more than the
 * caller could grant anew. A revoked key is refused with failed_precondition
 * either way: revocation is final.
 */
export function suspendHandlers(h: Handlers) {
  const { store, audited } = h.options;
  const change = (
    request: { id: string },
    context: HandlerContext,
    apply: (id: string) => ReturnType<typeof store.suspend>,
    done: string,
  ) =>
    audited(context, request.id, (caller) => {
      const key = h.visibleKey(caller, request.id);
      assertCouldMint(caller, { kind: key.kind, tenant: key.tenant, scopes: key.scopes });
      if (key.status === "revoked") {
        throw new ConnectError(
          `key ${key.id} is revoked and cannot be ${done}`,
          Code.FailedPrecondition,
        );
      }
      return { key: keyToProto(guardInput(() => apply(key.id)) ?? notFound(key.id)) };
    });
  return {
    suspendKey: (request: { id: string }, context: HandlerContext) =>
      change(request, context, (id) => store.suspend(id), "suspended"),
    resumeKey: (request: { id: string }, context: HandlerContext) =>
      change(request, context, (id) => store.resume(id), "resumed"),
  };
}
