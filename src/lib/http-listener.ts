import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttp1Server } from "node:http";
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { Logger } from "./log.js";

/** A handler for both HTTP versions' requests. */
export type AnyVersionHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

/** Options for {@link listenHttp1And2}. */
export interface HttpListenerOptions {
  readonly host: string;
  readonly port: number;
  /**
   * Serve TLS instead of cleartext (HTTP/2 and HTTP/1.1 by ALPN). With `ca`,
   * clients must present a certificate it signed (mTLS).
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly ca?: Buffer | undefined };
  /** Where connection errors are logged (debug). */
  readonly logger: Logger;
}

/** A bound listener: its port, and close() that drops every connection. */
export interface HttpListener {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * One port for HTTP/1.1 (curl, browsers) and HTTP/2 (gRPC clients): over
 * TLS ALPN decides; in cleartext the first bytes do, since an HTTP/2 client
 * opens with the "PRI * HTTP/2.0" preface. A connection that errors or is
 * reset by its client is dropped alone.
 */
export async function listenHttp1And2(
  handler: AnyVersionHandler,
  options: HttpListenerOptions,
): Promise<HttpListener> {
  const { logger } = options;
  const http1 = createHttp1Server(handler);
  const http2 = createHttp2Server({}, handler);
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
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
          track(socket);
          (socket.alpnProtocol === "h2" ? http2 : http1).emit("connection", socket);
        },
      )
    : createNetServer((socket) => {
        track(socket);
        // Until the first bytes are read no HTTP server owns the socket, and an
        // 'error' without a listener (a client reset) would be thrown.
        socket.on("error", (error) => logger.debug({ err: error }, "connection error"));
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
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
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
