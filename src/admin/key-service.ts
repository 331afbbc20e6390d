import type { ConnectRouter } from "@connectrpc/connect";
import { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import { handlers, type KeyServiceOptions } from "./rpc/context.js";
import { mintHandlers } from "./rpc/mint.js";
import { readHandlers } from "./rpc/read.js";
import { revokeHandlers } from "./rpc/revoke.js";
import { suspendHandlers } from "./rpc/suspend.js";
import { updateHandlers } from "./rpc/update.js";

export type { KeyServiceOptions } from "./rpc/context.js";

/**
 * The KeyService routes (connect-es style: a function of the router). Each
 * handler runs its work inside `options.audited`, one transaction with its
 * audit rows; the handlers are grouped by what they do to secrets.
 */
export function keyServiceRoutes(options: KeyServiceOptions) {
  const h = handlers(options);
  return (router: ConnectRouter) =>
    router.service(KeyService, {
      ...mintHandlers(h),
      ...revokeHandlers(h),
      ...suspendHandlers(h),
      ...updateHandlers(h),
      ...readHandlers(h),
    });
}
