import { readdirSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { IssuerConfig } from "../config/issuers.js";

/** Where `npm run build` puts the console (vite, from src/console/), seen from src/admin/ and dist/admin/ alike. */
export const CONSOLE_DIST = fileURLToPath(new URL("../../dist/console/", import.meta.url));

/** Options for {@link createConsoleHandler}. */
export interface ConsoleHandlerOptions {
  /** The built console's folder. Default {@link CONSOLE_DIST}. */
  readonly root?: string;
  /**
   * The configured issuers, read per request so that a reload shows at once.
   * Those with a `console:` block are offered as sign-in buttons.
   */
  readonly issuers: () => readonly IssuerConfig[];
}

/** Answers a request when it is the console's (true), or leaves it to the API (false). */
export interface ConsoleHandler {
  (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): boolean;
  /** False when the built console was not found (every page then answers 503). */
  readonly built: boolean;
}

interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer | undefined;
  readonly cacheControl: string;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".json", ".svg", ".txt"]);
/** Vite names every built asset after its content hash: such a URL never changes meaning. */
const HASHED = /^assets\/.+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;
const BASE = "/console/";

/**
 * The key console's static files on the admin port, under /console/.
 *
 * Every file is read into memory once, here: a request is answered from that
 * table by exact path, never by joining the URL onto the file system, so no
 * URL (`..`, encoded slashes, symlinks) can reach another file. Every answer
 * carries a strict Content-Security-Policy: scripts and styles from this
 * origin only, no inline script, and network requests to this origin plus
 * the token endpoints of the configured console issuers (the PKCE code
 * exchange is a browser POST to the IdP).
 */
export function createConsoleHandler(options: ConsoleHandlerOptions): ConsoleHandler {
  const assets = readAssets(options.root ?? CONSOLE_DIST);
  const handle = (
    req: IncomingMessage | Http2ServerRequest,
    res: ServerResponse | Http2ServerResponse,
  ): boolean => {
    const url = new URL(req.url ?? "/", "http://admin");
    const path = url.pathname;
    if (path === "/console") {
      res.writeHead(308, { location: `${BASE}${url.search}`, ...securityHeaders([]) });
      res.end();
      return true;
    }
    if (!path.startsWith(BASE)) return false;

    const clients = consoleClients(options.issuers());
    const headers = securityHeaders(clients.map((client) => new URL(client.token_endpoint).origin));
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      send(res, method, 405, { ...headers, allow: "GET, HEAD", ...TEXT }, "method not allowed\n");
      return true;
    }
    if (path === `${BASE}config.json`) {
      // What the page needs to offer sign-in: public client facts only.
      const body = JSON.stringify({ issuers: clients });
      send(res, method, 200, { ...headers, ...JSON_TYPE, "cache-control": "no-store" }, body);
      return true;
    }
    if (assets === undefined) {
      send(
        res,
        method,
        503,
        { ...headers, ...TEXT, "cache-control": "no-store" },
        "the key console was not built: run `npm run build`\n",
      );
      return true;
    }
    const name = path === BASE ? "index.html" : path.slice(BASE.length);
    const asset = assets.get(name);
    if (!asset) {
      send(res, method, 404, { ...headers, ...TEXT, "cache-control": "no-store" }, "not found\n");
      return true;
    }
    const gzip = asset.gzip && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    send(
      res,
      method,
      200,
      {
        ...headers,
        "content-type": asset.type,
        "cache-control": asset.cacheControl,
        vary: "accept-encoding",
        ...(gzip && { "content-encoding": "gzip" }),
      },
      gzip ? (asset.gzip as Buffer) : asset.body,
    );
    return true;
  };
  return Object.assign(handle, { built: assets !== undefined });
}

/** The `config.json` entry of one issuer with a console block. */
export interface ConsoleClient {
  readonly issuer: string;
  readonly client_id: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  /** Sent as `audience` (Auth0 issues a JWT access token for that API only when asked). */
  readonly audience: string;
  readonly scope: string;
}

function consoleClients(issuers: readonly IssuerConfig[]): ConsoleClient[] {
  return issuers.flatMap((issuer) =>
    issuer.console
      ? [
          {
            issuer: issuer.issuer,
            client_id: issuer.console.client_id,
            authorization_endpoint: issuer.console.authorization_endpoint,
            token_endpoint: issuer.console.token_endpoint,
            audience: [issuer.audience].flat()[0] ?? "",
            scope: issuer.console.scope ?? "",
          },
        ]
      : [],
  );
}

const TEXT = { "content-type": "text/plain; charset=utf-8" };
const JSON_TYPE = { "content-type": "application/json" };

function securityHeaders(tokenOrigins: readonly string[]): Record<string, string> {
  const connect = ["'self'", ...new Set(tokenOrigins)].join(" ");
  return {
    "content-security-policy": [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self'",
      `connect-src ${connect}`,
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join("; "),
    "x-content-type-options": "nosniff",
    // The authorization code comes back in the URL: it must not leave in a Referer.
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "x-frame-options": "DENY",
  };
}

function send(
  res: ServerResponse | Http2ServerResponse,
  method: string,
  status: number,
  headers: Record<string, string>,
  body: string | Buffer,
): void {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers, "content-length": String(bytes.length) });
  if (method === "HEAD") res.end();
  else res.end(bytes);
}

/** Every file of the built console by its URL path below /console/; undefined when not built. */
function readAssets(root: string): Map<string, Asset> | undefined {
  let files: string[];
  try {
    files = readdirSync(root, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name));
  } catch {
    return undefined;
  }
  const assets = new Map<string, Asset>();
  for (const file of files) {
    const name = relative(root, file).split(sep).join("/");
    const ext = extname(name);
    const type = TYPES[ext];
    if (!type) continue;
    const body = readFileSync(file);
    assets.set(name, {
      type,
      body,
      gzip: COMPRESSIBLE.has(ext) ? gzipSync(body) : undefined,
      cacheControl: HASHED.test(name) ? "public, max-age=31536000, immutable" : "no-cache",
    });
  }
  return assets.has("index.html") ? assets : undefined;
}
