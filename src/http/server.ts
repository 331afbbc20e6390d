import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sendJson as send } from "../lib/json-response.js";
import { createLogger, type Logger } from "../lib/log.js";
import { createForwardAuthHandler, type ForwardAuthOptions } from "./forward-auth.js";
import { isForwardAuthTarget } from "./forward-auth-view.js";
import { guard } from "./guard.js";

/** A readiness probe's answer: ready, plus why not when it is not. */
export interface Readiness {
  readonly ready: boolean;
  /** Ready, but serving possibly stale answers (a replica that lost its primary). */
  readonly degraded?: boolean;
  readonly checks: Readonly<Record<string, string>>;
}

/** Options for {@link startHttpServer}. */
export interface HttpServerOptions {
  readonly host?: string;
  /** Default 9193; 0 picks a free port. */
  readonly port?: number;
  readonly readiness: () => Readiness;
  /** Serves forward-auth on `/authz` with this pipeline; absent, `/authz` is 404. */
  readonly forwardAuth?: ForwardAuthOptions;
  /** Prometheus exposition for `/metrics`; absent, `/metrics` is 404. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
  /**
   * The busiest keys for `/debug/top-keys?limit=N` (N from 1 to 1000,
   * default 20); absent (the default), `/debug/top-keys` is 404.
   */
  readonly topKeys?: (limit: number) => Promise<unknown>;
  /** Where a request that fails while being answered is logged (see guard.ts); default: stderr. */
  readonly logger?: Logger;
}

/** A running HTTP server (forward-auth, health and metrics). */
export interface HttpServer {
  readonly port: number;
  /** Stops listening; lets requests in flight finish (up to `graceMs`, default 5 s), then closes. */
  close(graceMs?: number): Promise<void>;
}

/**
 * The plain-HTTP port. `/authz` and `/authz/…` are forward-auth (any method;
 * see forward-auth.ts). `/metrics` is the Prometheus exposition.
 * `/debug/top-keys` (only when configured) lists the busiest keys.
 * `/healthz` answers 200 while the process is alive;
 * `/readyz` answers 200 only when keyward can decide (store open, JWKS
 * loaded), else 503 with the failing checks, so an orchestrator keeps traffic
 * away from a sidecar that would only deny with 503. A failure while
 * answering any request is confined to that request (guard.ts): it gets a
 * 503 deny or its connection is reset, and the server keeps serving.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const forwardAuth = options.forwardAuth && createForwardAuthHandler(options.forwardAuth);
  const logger = options.logger ?? createLogger();
  const handle = (req: IncomingMessage, res: ServerResponse): unknown => {
    const target = req.url ?? "/";
    if (forwardAuth && isForwardAuthTarget(target)) return forwardAuth(req, res);
    const path = target.split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD")
      return send(res, 405, { error: "method_not_allowed" });
    if (path === "/healthz") return send(res, 200, { status: "ok" });
    if (path === "/readyz") {
      const readiness = options.readiness();
      return send(res, readiness.ready ? 200 : 503, {
        status: readiness.ready ? (readiness.degraded ? "degraded" : "ready") : "not_ready",
        checks: readiness.checks,
      });
    }
    if (path === "/debug/top-keys" && options.topKeys) {
      const limit = Number(new URLSearchParams(target.split("?")[1] ?? "").get("limit") ?? 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        return send(res, 400, { error: "invalid_limit", message: "limit: 1 to 1000" });
      }
      return options.topKeys(limit).then(
        (report) => send(res, 200, report),
        () => send(res, 500, { error: "top_keys_unavailable" }),
      );
    }
    if (path === "/metrics" && options.metrics) {
      // Returned, so that a failure while writing reaches the guard.
      return options.metrics().then(
        ({ contentType, body }) => {
          res.writeHead(200, {
            "content-type": contentType,
            "content-length": Buffer.byteLength(body),
          });
          res.end(body);
        },
        () => send(res, 500, { error: "metrics_unavailable" }),
      );
    }
    return send(res, 404, { error: "not_found" });
  };
  const server = createServer(guard(logger, handle));
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 9193, options.host ?? "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: (graceMs = 5000) =>
      new Promise<void>((resolve) => {
        // Idle keep-alive connections (a proxy's pool) close now; a request in
        // flight gets its answer first, as on the Check port, up to graceMs.
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
