import {
  createServer as createHttp1Server,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import {
  type ConnectRouter,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import { answerFailure, guard } from "../http/guard.js";
import { createLogger, type Logger } from "../lib/log.js";
import type { ConsoleHandler } from "./console.js";
import { createRestHandler, MAX_ADMIN_BODY_BYTES, sendJson } from "./rest.js";
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

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The admin port: Connect, gRPC-Web and gRPC (connect-node) plus the seeds'
 * REST routes, on one port for both HTTP/1.1 (curl, browsers) and cleartext
 * HTTP/2 (gRPC clients). The first bytes of a connection tell which: an
 * HTTP/2 client opens with the "PRI * HTTP/2.0" preface. A request that
 * fails while being answered gets a 503 deny or a reset stream (guard.ts),
 * and a connection that errors or is reset by its client is dropped alone:
 * neither can take the process down.
 *
 * Long because the port serves three protocols from one listener (first
 * bytes decide), and they share the guard, the REST handler and shutdown.
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

  const http1 = createHttp1Server(handler);
  const http2 = createHttp2Server({}, handler);
  const sockets = new Set<Socket>();
  const tlsOptions = options.tls;
  const server = tlsOptions
    ? createTlsServer(
        {
          cert: tlsOptions.cert,
          key: tlsOptions.key,
          ...(tlsOptions.ca && { ca: tlsOptions.ca, requestCert: true, rejectUnauthorized: true }),
          ALPNProtocols: ["h2", "http/1.1"],
        },
        (socket) => {
          sockets.add(socket);
          socket.once("close", () => sockets.delete(socket));
          (socket.alpnProtocol === "h2" ? http2 : http1).emit("connection", socket);
        },
      )
    : cleartextServer();
  function cleartextServer() {
    return createNetServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      // Until the first bytes are read no HTTP server owns the socket, and an
      // 'error' without a listener (a client reset) would be thrown.
      socket.on("error", (error) => logger.debug({ err: error }, "admin connection error"));
      socket.once("data", (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        if (first.subarray(0, 3).toString("latin1") === "PRI") {
          // node:http2 takes the socket's native handle (every byte of a
          // replica's snapshot then goes out without passing through
          // JavaScript) and first feeds the session what is already buffered
          // on the socket, the unshifted bytes included.
          http2.emit("connection", socket);
        } else {
          http1.emit("connection", socket);
          socket.resume();
        }
      });
    });
  }
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 9192, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        http1.closeIdleConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}
