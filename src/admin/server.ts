import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  type ConnectRouter,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import { answerFailure, guard } from "../http/guard.js";
import { type HttpListener, listenHttp1And2 } from "../lib/http-listener.js";
import { sendJson } from "../lib/json-response.js";
import { createLogger, type Logger } from "../lib/log.js";
import type { ConsoleHandler } from "./console.js";
import { createRestHandler, MAX_ADMIN_BODY_BYTES } from "./rest.js";
import { chronicleEndpoint } from "./rpc/mint.js";

/** Options for {@link startAdminServer}. */
export interface AdminServerOptions {
  readonly host?: string;
  /** Default 9192; 0 picks a free port. */
  readonly port?: number;
  /** Every Connect service served on the port (KeyService, and replication on a primary). */
  readonly routes: (router: ConnectRouter) => void;
  /** Applied to every call, REST routes included: authentication, then audit. */
  readonly interceptors: Interceptor[];
  /**
   * Serve TLS instead of cleartext (HTTP/2 and HTTP/1.1 by ALPN). With `ca`,
   * clients must present a certificate it signed (mTLS).
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly ca?: Buffer | undefined };
  /**
   * Long-lived gRPC streams answered on the HTTP/2 request itself, before
   * Connect (a primary's replication Watch); returns whether it took the request.
   */
  readonly streams?: ((req: Http2ServerRequest, res: Http2ServerResponse) => boolean) | undefined;
  /** Serves the key console under /console/ (absent: the console is off and /console/ is a 404). */
  readonly console?: ConsoleHandler | undefined;
  /** Where failed responses and connection errors are logged; default: stderr. */
  readonly logger?: Logger | undefined;
}

export type AdminServer = HttpListener;

/**
 * The admin port: Connect, gRPC-Web and gRPC (connect-node) plus the seeds'
 * REST routes, on one port for both HTTP/1.1 (curl, browsers) and HTTP/2
 * (gRPC clients), see lib/http-listener.ts. A request that fails while being
 * answered gets a 503 deny or a reset stream (guard.ts), and a connection
 * that errors or is reset by its client is dropped alone: neither can take
 * the process down.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { routes, interceptors } = options;
  const logger = options.logger ?? createLogger();
  // The REST routes call the same services in-process, through the same
  // interceptors; POST /api-keys goes through a client whose calls are
  // marked as made through the Chronicle endpoint.
  const inProcess = (marks: Interceptor[]) =>
    createClient(
      KeyService,
      createRouterTransport(routes, { router: { interceptors: [...marks, ...interceptors] } }),
    );
  const rest = createRestHandler({
    admin: inProcess([]),
    chronicle: inProcess([chronicleEndpoint]),
  });
  const adapter = connectNodeAdapter({
    routes,
    interceptors,
    readMaxBytes: MAX_ADMIN_BODY_BYTES,
    // Proto JSON omits empty fields by default; show them, as the seeds' responses do.
    jsonOptions: { alwaysEmitImplicit: true },
    fallback: (req, res) => {
      rest(req, res)
        .then(
          (handled) => {
            if (!handled) sendJson(res, 404, { error: "not_found", message: "no such route" });
          },
          (cause: unknown) => {
            logger.error({ err: cause, method: req.method }, "admin REST route failed");
            sendJson(res, 500, { error: "internal", message: "internal error" });
          },
        )
        // Writing the answer itself failed: this request only.
        .catch((cause: unknown) =>
          answerFailure(logger, req, res as ServerResponse | Http2ServerResponse, cause),
        );
    },
  });
  const handler = guard(
    logger,
    (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
      if (options.console?.(req, res)) return;
      if (
        options.streams &&
        req.httpVersionMajor === 2 &&
        options.streams(req as Http2ServerRequest, res as Http2ServerResponse)
      )
        return;
      const declared = Number(req.headers["content-length"] ?? "0");
      if (declared > MAX_ADMIN_BODY_BYTES) {
        sendJson(res, 413, {
          error: "payload_too_large",
          message: `request body larger than ${MAX_ADMIN_BODY_BYTES} bytes`,
        });
        return;
      }
      adapter(req, res);
    },
  );

  return listenHttp1And2(handler, {
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 9192,
    ...(options.tls && { tls: options.tls }),
    logger,
  });
}
