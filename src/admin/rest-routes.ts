import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { ListValueSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { z } from "zod";
import { formatZodError } from "../config/errors.js";
import type { Key, KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import { protoKeyToJson, protoUsageToJson } from "./convert.js";
import { adminCreateBody, apiKeysCreateBody, rotateBody, updateBody } from "./rest-bodies.js";

// The seeds' REST routes, one function each: JSON body in, KeyService call,
// the seeds' response shape out (rest.ts reads and writes the HTTP).

export interface RouteInput {
  body: unknown;
  url: URL;
  headers: Record<string, string>;
  idempotencyKey: string | string[] | undefined;
}
export type Route = (
  client: Client<typeof KeyService>,
  input: RouteInput,
) => Promise<[number, unknown]>;

const ID = "([0-9a-f]{16})";

export function matchRoute(method: string, path: string): Route | undefined {
  const adminBase = path.match(/^(?:\/api)?\/v1\/admin\/keys(.*)$/);
  if (adminBase) {
    const rest = adminBase[1] ?? "";
    if (rest === "" && method === "POST") return createAdminKey;
    if (rest === "" && method === "GET") return listKeys;
    const id = rest.match(new RegExp(`^/${ID}(?:/(rotate|suspend|resume|usage))?$`));
    if (id) {
      const keyId = id[1] as string;
      const action = id[2];
      if (action === "usage" && method === "GET")
        return (client, input) => usage(client, keyId, input);
      if (action === "rotate" && method === "POST")
        return (client, input) => rotate(client, keyId, input);
      if (action === "suspend" && method === "POST")
        return (client, input) =>
          keyCall(client.suspendKey({ id: keyId }, { headers: input.headers }));
      if (action === "resume" && method === "POST")
        return (client, input) =>
          keyCall(client.resumeKey({ id: keyId }, { headers: input.headers }));
      if (!action && method === "DELETE") return (client, input) => revoke(client, keyId, input);
      if (!action && method === "GET") return (client, input) => get(client, keyId, input);
      if (!action && method === "PATCH") return (client, input) => update(client, keyId, input);
    }
    return rest === "" || /^\/[^/]+(\/(rotate|suspend|resume|usage))?$/.test(rest)
      ? methodNotAllowed(rest)
      : undefined;
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
      metadata: input.metadata as JsonObject | undefined,
      allowedCidrs: input.allowedCidrs,
      rateLimit: input.rateLimit,
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
  { body, headers }: RouteInput,
): Promise<[number, unknown]> {
  const { graceSeconds } = parse(rotateBody, body);
  const response = await client.rotateKey({ id, graceSeconds: graceSeconds ?? 0 }, { headers });
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

/** `GET …/keys/{id}/usage?hours=24`: the key's hourly use, oldest first. */
async function usage(
  client: Client<typeof KeyService>,
  id: string,
  { headers, url }: RouteInput,
): Promise<[number, unknown]> {
  const hours = url.searchParams.get("hours");
  if (hours !== null && !/^\d{1,5}$/.test(hours))
    throw new ConnectError("hours: expected a whole number of hours", Code.InvalidArgument);
  const response = await client.getKeyUsage({ id, hours: Number(hours ?? 0) }, { headers });
  return [200, { usage: protoUsageToJson(response.usage) }];
}

const update = (client: Client<typeof KeyService>, id: string, { body, headers }: RouteInput) => {
  const input = parse(updateBody, body);
  return keyCall(
    client.updateKey(
      {
        id,
        name: input.name,
        scopes: input.scopes && fromJson(ListValueSchema, input.scopes),
        expiresAt: input.expiresAt ? timestampFromMs(Date.parse(input.expiresAt)) : undefined,
        metadata: input.metadata as JsonObject | undefined,
        allowedCidrs: input.allowedCidrs && fromJson(ListValueSchema, input.allowedCidrs),
        // null removes the limit: a limit of 0 requests says so on the wire.
        rateLimit:
          input.rateLimit === null
            ? { requests: 0, perSeconds: 0, burst: 0 }
            : (input.rateLimit ?? undefined),
      },
      { headers },
    ),
  );
};

/** A call that answers one key, as `{"key":{…}}`. */
async function keyCall(call: Promise<{ key?: Key | undefined }>): Promise<[number, unknown]> {
  return [200, { key: protoKeyToJson((await call).key ?? missing()) }];
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
