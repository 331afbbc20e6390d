import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import { type JsonResponse, sendJson } from "../lib/json-response.js";
import { codeName } from "./codes.js";
import { matchRoute } from "./rest-routes.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = JsonResponse;

/** Largest admin request body read; larger answers 413. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/** HTTP status for each Connect code the admin API uses (DESIGN: 400, 401, 403, 404, 409, 413). */
const STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.FailedPrecondition]: 409,
  [Code.Aborted]: 409,
  [Code.ResourceExhausted]: 413,
  [Code.Unavailable]: 503,
  [Code.Unimplemented]: 501,
};

/** The in-process KeyService clients the REST routes call. */
export interface RestClients {
  /** For the admin routes (`/v1/admin/keys`, `/api/v1/admin/keys`). */
  readonly admin: Client<typeof KeyService>;
  /** For `/api-keys`: its calls are marked as made through the Chronicle endpoint. */
  readonly chronicle: Client<typeof KeyService>;
}

/** A request body that is not JSON (415): the REST routes read JSON only. */
class UnsupportedMediaType extends Error {}

/**
 * The seeds' REST calls, verbatim, on the admin port. Each route turns its
 * JSON into a KeyService call through an in-process client (a transport
 * that runs the same interceptors: authentication and audit), then turns the
 * answer back into the seeds' response shape. Returns false when no route
 * matches, so the caller can answer 404.
 */
export function createRestHandler(clients: RestClients) {
  return async (req: Request, res: Response): Promise<boolean> => {
    const url = new URL(req.url ?? "/", "http://admin");
    const path = url.pathname.replace(/\/+$/, "");
    const method = req.method ?? "GET";
    const route = matchRoute(method, path);
    if (!route) return false;
    const client = path.startsWith("/api-keys") ? clients.chronicle : clients.admin;
    const headers: Record<string, string> = {};
    if (typeof req.headers.authorization === "string")
      headers.authorization = req.headers.authorization;
    try {
      const body = method === "POST" || method === "PATCH" ? await readJson(req) : undefined;
      const [status, answer] = await route(client, {
        body,
        url,
        headers,
        idempotencyKey: req.headers["idempotency-key"],
      });
      sendJson(res, status, answer);
    } catch (error) {
      if (error instanceof UnsupportedMediaType) {
        sendJson(res, 415, { error: "unsupported_media_type", message: error.message });
        return true;
      }
      const e = ConnectError.from(error);
      sendJson(res, STATUS[e.code] ?? 500, {
        error: codeName(e.code),
        message:
          e.code === Code.Internal || e.code === Code.Unknown ? "internal error" : e.rawMessage,
      });
    }
    return true;
  };
}

/**
 * Reads a JSON body of at most MAX_ADMIN_BODY_BYTES: 413 beyond, 400 when
 * JSON that does not parse, 415 when it is not JSON at all. A body-less
 * request (the seeds' rotate) needs no content-type. A body must be labelled
 * application/json, except that one sent without a label, or with curl's
 * default label for `-d` (application/x-www-form-urlencoded: the Chronicle
 * seed's command sends its JSON so), is read as JSON when it is JSON; a real
 * form or any other type is refused. Bearer credentials make these routes
 * no target for cross-site forms, so this is about clear errors, not CSRF.
 */
async function readJson(req: Request): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY_BYTES) {
      throw new ConnectError(
        `request body larger than ${MAX_ADMIN_BODY_BYTES} bytes`,
        Code.ResourceExhausted,
      );
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  const type = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
  const labelled = type === "application/json";
  if (!labelled && type !== undefined && type !== "application/x-www-form-urlencoded") {
    throw new UnsupportedMediaType(`request body must be application/json, not ${type}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    if (!labelled) throw new UnsupportedMediaType("request body must be application/json");
    throw new ConnectError("request body is not valid JSON", Code.InvalidArgument);
  }
}

/** Writes a JSON answer (used for REST answers and the admin port's own errors). */
