import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { ConsoleHandler } from "../admin/console.js";
import type { Config } from "../config/schema.js";
import { guard } from "../http/guard.js";
import { grpcMessage } from "../lib/grpc-message.js";
import { type HttpListener, listenHttp1And2 } from "../lib/http-listener.js";
import { sendJson } from "../lib/json-response.js";
import type { Logger } from "../lib/log.js";
import type { AdminPort } from "./admin-port.js";
import { adminConsole } from "./console.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

/** Options for {@link startReplicaAdmin}. */
export interface ReplicaAdminOptions {
  readonly host: string;
  readonly port: number;
  /** The primary's admin URL, named in every refusal. */
  readonly primary: string;
  /** The key console, when `console.enabled` is set on the replica. */
  readonly console: ConsoleHandler | undefined;
  readonly logger: Logger;
}

/** A replica's admin port: {@link startReplicaAdmin} on the configured address. */
export function replicaAdminPort(
  config: Config,
  issuers: () => Config["issuers"],
  logger: Logger,
): AdminPort {
  const console = adminConsole(config, issuers, logger);
  return {
    parts: ["admin refusal", ...(console ? ["console"] : [])],
    listen: () =>
      startReplicaAdmin({
        host: config.listen.host,
        port: config.listen.admin,
        primary: config.replication.primary as string,
        console,
        logger: logger.child({ name: "admin" }),
      }),
    start() {},
    async close() {},
  };
}

/** The one refusal a replica's admin port gives, whatever the call. */
export function replicaRefusal(primary: string): string {
  return `this keyward is a replica; send admin calls to the primary at ${primary}`;
}

/** The REST routes of the admin API (admin/rest-routes.ts), refused like RPCs. */
const REST_PATH = /^\/(v1\/admin|api\/v1\/admin|api-keys)(\/|$)/;
/** `/package.Service/Method`: a Connect, gRPC or gRPC-Web call. */
const RPC_PATH = /^\/[A-Za-z_][\w]*(\.[\w]+)+\/[A-Za-z_]\w*$/;

/**
 * A replica's admin port: every admin call (Connect, gRPC, gRPC-Web or REST)
 * is answered `failed_precondition` naming the primary, as the admin API's
 * own codes would put it, and the console is served when it is on. Built on
 * node's HTTP servers alone: a replica never evaluates the admin API,
 * connect-node's server side or reflection (issue 19, a lean sidecar).
 */
export function startReplicaAdmin(options: ReplicaAdminOptions): Promise<HttpListener> {
  const message = replicaRefusal(options.primary);
  const handler = guard(options.logger, (req: Request, res: Response) => {
    if (options.console?.(req, res)) return;
    // The body is never read: discard it so the connection stays usable.
    req.resume();
    const path = new URL(req.url ?? "/", "http://admin").pathname;
    if (RPC_PATH.test(path)) refuseCall(req, res, message);
    else if (REST_PATH.test(path)) sendJson(res, 409, { error: "failed_precondition", message });
    else sendJson(res, 404, { error: "not_found", message: "no such route" });
  });
  return listenHttp1And2(handler, {
    host: options.host,
    port: options.port,
    logger: options.logger,
  });
}

/** gRPC's FAILED_PRECONDITION. */
const GRPC_FAILED_PRECONDITION = "9";

/** An RPC refused in its own protocol, told apart by content-type as connect-node does. */
function refuseCall(req: Request, res: Response, message: string): void {
  const type = String(req.headers["content-type"] ?? "").toLowerCase();
  if (type.startsWith("application/grpc")) {
    // gRPC and gRPC-Web: a trailers-only answer, the status in the headers.
    res.writeHead(200, {
      "content-type": type.startsWith("application/grpc-web")
        ? "application/grpc-web+proto"
        : "application/grpc",
      "grpc-status": GRPC_FAILED_PRECONDITION,
      "grpc-message": grpcMessage(message),
    });
    res.end();
  } else if (type.startsWith("application/connect+")) {
    // Connect streaming: the error travels in the end-of-stream message.
    const end = Buffer.from(JSON.stringify({ error: { code: "failed_precondition", message } }));
    const prefix = Buffer.alloc(5);
    prefix.writeUInt8(0b10, 0);
    prefix.writeUInt32BE(end.length, 1);
    res.writeHead(200, { "content-type": type });
    res.end(Buffer.concat([prefix, end]));
  } else {
    // Connect unary (JSON or binary): the error as JSON, HTTP 400 for this code.
    sendJson(res, 400, { code: "failed_precondition", message });
  }
}
