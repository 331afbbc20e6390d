import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A readiness probe's answer: ready, plus why not when it is not. */
export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, string>>;
}

/** Options for {@link startHttpServer}. */
export interface HttpServerOptions {
  readonly host?: string;
  /** Default 9193; 0 picks a free port. */
  readonly port?: number;
  readonly readiness: () => Readiness;
}

/** A running HTTP server (health, and later forward-auth and metrics). */
export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The plain-HTTP port: `/healthz` answers 200 while the process is alive;
 * `/readyz` answers 200 only when keyward can decide (store open, JWKS
 * loaded), else 503 with the failing checks, so an orchestrator keeps traffic
 * away from a sidecar that would only deny with 503.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD")
      return send(res, 405, { error: "method_not_allowed" });
    if (path === "/healthz") return send(res, 200, { status: "ok" });
    if (path === "/readyz") {
      const readiness = options.readiness();
      return send(res, readiness.ready ? 200 : 503, {
        status: readiness.ready ? "ready" : "not_ready",
        checks: readiness.checks,
      });
    }
    return send(res, 404, { error: "not_found" });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 9193, options.host ?? "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
