import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { z } from "zod";
import { formatZodError } from "../config/errors.js";
import type { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import { identityTextProblem } from "../keys/input.js";
import { codeName } from "./codes.js";
import { protoKeyToJson } from "./convert.js";

type Request = IncomingMessage | Http2ServerRequest;
/** The part of an HTTP/1 or HTTP/2 response this module writes to. */
interface Response {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(text: string): unknown;
}

/** Largest admin request body read; larger answers 413. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

const isoTime = z.iso.datetime({
  offset: true,
  message: "expected an ISO 8601 time such as 2025-01-01T00:00:00Z",
});
const scopes = z.array(z.string()).default([]);
/**
 * A name, description, owner or tenant: the identity rule (keys/input.ts).
 * Checked here as well as in the service because JSON can carry what the
 * in-process call cannot: an unpaired surrogate would reach the service as
 * U+FFFD, silently changed instead of refused.
 */
const identityText = z.string().superRefine((value, context) => {
  const problem = identityTextProblem(value);
  if (problem) context.addIssue({ code: "custom", message: problem });
});

// The seeds' request bodies, strictly: an unknown field is a 400 naming it,
// not silently ignored.
const adminCreateBody = z
  .object({
    name: identityText.default(""),
    description: identityText.optional(),
    scopes,
    expiresAt: isoTime.optional(),
    kind: z.string().optional(),
    tenant: identityText.optional(),
    owner: identityText.optional(),
    binding: z
      .object({ experiment: z.string(), variation: z.string(), run: z.string() })
      .strict()
      .optional(),
    idempotencyKey: z.string().max(200).optional(),
  })
  .strict();

const apiKeysCreateBody = z
  .object({
    description: identityText.default(""),
    name: identityText.optional(),
    scopes,
    expiresAt: isoTime.optional(),
    kind: z.enum(["user", "agent"]).optional(),
  })
  .strict();

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
      const body = method === "POST" ? await readJson(req) : undefined;
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

interface RouteInput {
  body: unknown;
  url: URL;
  headers: Record<string, string>;
  idempotencyKey: string | string[] | undefined;
}
type Route = (client: Client<typeof KeyService>, input: RouteInput) => Promise<[number, unknown]>;

const ID = "([0-9a-f]{16})";

function matchRoute(method: string, path: string): Route | undefined {
  const adminBase = path.match(/^(?:\/api)?\/v1\/admin\/keys(.*)$/);
  if (adminBase) {
    const rest = adminBase[1] ?? "";
    if (rest === "" && method === "POST") return createAdminKey;
    if (rest === "" && method === "GET") return listKeys;
    const id = rest.match(new RegExp(`^/${ID}(/rotate)?$`));
    if (id) {
      const keyId = id[1] as string;
      if (id[2] && method === "POST") return (client, input) => rotate(client, keyId, input);
      if (!id[2] && method === "DELETE") return (client, input) => revoke(client, keyId, input);
      if (!id[2] && method === "GET") return (client, input) => get(client, keyId, input);
    }
    return rest === "" || /^\/[^/]+(\/rotate)?$/.test(rest) ? methodNotAllowed(rest) : undefined;
  }
  if (path === "/api-keys" && method === "POST") return createApiKey;
  if (path === "/api-keys" && method === "GET") return listKeys;
  const apiKey = path.match(new RegExp(`^/api-keys/${ID}$`));
  if (apiKey && method === "DELETE")
    return (client, input) => revoke(client, apiKey[1] as string, input);
  if (path === "/api-keys" || /^\/api-keys\/[^/]+$/.test(path)) return methodNotAllowed(path);
  return undefined;
}

function methodNotAllowed(_path: string): Route {
  // An id that is not 16 lower-case hex cannot exist: answer as for any unknown key.
  return async () => {
    throw new ConnectError("no such key or method", Code.NotFound);
  };
}

const createAdminKey: Route = async (client, { body, headers, idempotencyKey }) => {
  const input = parse(adminCreateBody, body);
  const response = await client.createKey(
    {
      kind: input.kind ?? "",
      name: input.name || input.description || "",
      tenant: input.tenant ?? "",
      owner: input.owner ?? "",
      scopes: input.scopes,
      expiresAt: input.expiresAt ? timestampFromMs(Date.parse(input.expiresAt)) : undefined,
      binding: input.binding,
      idempotencyKey: input.idempotencyKey ?? headerValue(idempotencyKey),
    },
    { headers },
  );
  return [201, { key: protoKeyToJson(response.key ?? missing()), secret: response.secret }];
};

const createApiKey: Route = async (client, { body, headers, idempotencyKey }) => {
  const input = parse(apiKeysCreateBody, body);
  const response = await client.createKey(
    {
      kind: input.kind ?? "",
      name: input.name ?? input.description,
      scopes: input.scopes,
      expiresAt: input.expiresAt ? timestampFromMs(Date.parse(input.expiresAt)) : undefined,
      idempotencyKey: headerValue(idempotencyKey),
    },
    { headers },
  );
  return [201, { key: protoKeyToJson(response.key ?? missing()), secret: response.secret }];
};

const listKeys: Route = async (client, { url, headers }) => {
  const q = url.searchParams;
  const pageSize = Number(q.get("page_size") ?? q.get("pageSize") ?? "0");
  if (!Number.isInteger(pageSize) || pageSize < 0) {
    throw new ConnectError("page_size must be a whole number", Code.InvalidArgument);
  }
  const response = await client.listKeys(
    {
      pageSize,
      pageToken: q.get("page_token") ?? q.get("pageToken") ?? "",
      tenant: q.get("tenant") ?? "",
      kind: q.get("kind") ?? "",
      status: q.get("status") ?? "",
      owner: q.get("owner") ?? "",
      run: q.get("run") ?? "",
    },
    { headers },
  );
  return [200, { keys: response.keys.map(protoKeyToJson), nextPageToken: response.nextPageToken }];
};

async function rotate(
  client: Client<typeof KeyService>,
  id: string,
  { headers }: RouteInput,
): Promise<[number, unknown]> {
  const response = await client.rotateKey({ id }, { headers });
  return [200, { key: protoKeyToJson(response.key ?? missing()), secret: response.secret }];
}

async function revoke(
  client: Client<typeof KeyService>,
  id: string,
  { headers }: RouteInput,
): Promise<[number, unknown]> {
  const response = await client.revokeKey({ id }, { headers });
  return [200, { key: protoKeyToJson(response.key ?? missing()) }];
}

async function get(
  client: Client<typeof KeyService>,
  id: string,
  { headers }: RouteInput,
): Promise<[number, unknown]> {
  const response = await client.getKey({ id }, { headers });
  return [200, { key: protoKeyToJson(response.key ?? missing()) }];
}

function parse<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body ?? {});
  if (!result.success) throw new ConnectError(formatZodError(result.error), Code.InvalidArgument);
  return result.data;
}

function headerValue(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? "";
}

function missing(): never {
  throw new ConnectError("response without a key", Code.Internal);
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
export function sendJson(res: Response, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
