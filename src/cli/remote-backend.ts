import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { ListValueSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { codeName } from "../admin/codes.js";
import { protoKeyToJson, protoUsageToJson } from "../admin/convert.js";
import { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";
import type { KeyJson } from "../keys/json.js";
import { UsageError } from "./errors.js";
import type { KeyBackend, Minted } from "./key-backend.js";

/** Talks Connect JSON over HTTP/1.1 to a running admin API. */
export function remoteBackend(baseUrl: string, token: string | undefined): KeyBackend {
  if (!/^https?:\/\//.test(baseUrl))
    throw new UsageError(`--server: "${baseUrl}" is not an http(s) URL`);
  if (!token) throw new UsageError("--token: required with --server (or set KEYWARD_TOKEN)");
  const client: Client<typeof KeyService> = createClient(
    KeyService,
    createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  );
  const call = { headers: { authorization: `Bearer ${token}` }, timeoutMs: 10_000 };
  const minted = (response: {
    key?: Parameters<typeof protoKeyToJson>[0];
    secret: string;
  }): Minted => ({
    key: protoKeyToJson(mustHaveKey(response.key)),
    secret: response.secret,
  });
  return {
    async create(input, idempotencyKey) {
      return minted(
        await readable(
          client.createKey(
            {
              kind: input.kind,
              name: input.name ?? "",
              tenant: input.tenant ?? "",
              owner: input.owner ?? "",
              scopes: [...(input.scopes ?? [])],
              expiresAt:
                input.expiresAt === undefined ? undefined : timestampFromMs(input.expiresAt),
              binding: input.binding,
              idempotencyKey: idempotencyKey ?? "",
              metadata: input.metadata as JsonObject | undefined,
              allowedCidrs: [...(input.allowedCidrs ?? [])],
              rateLimit: input.rateLimit,
            },
            call,
          ),
        ),
      );
    },
    async rotate(id, graceMs) {
      const graceSeconds = Math.ceil(graceMs / 1000);
      return minted(await readable(client.rotateKey({ id, graceSeconds }, call)));
    },
    async revoke(id) {
      return protoKeyToJson(mustHaveKey((await readable(client.revokeKey({ id }, call))).key));
    },
    async update(id, changes) {
      const request = {
        id,
        name: changes.name,
        scopes: changes.scopes && fromJson(ListValueSchema, [...changes.scopes]),
        expiresAt: changes.expiresAt === undefined ? undefined : timestampFromMs(changes.expiresAt),
        metadata: changes.metadata as JsonObject | undefined,
        allowedCidrs: changes.allowedCidrs && fromJson(ListValueSchema, [...changes.allowedCidrs]),
        rateLimit:
          changes.rateLimit === null
            ? { requests: 0, perSeconds: 0, burst: 0 }
            : (changes.rateLimit ?? undefined),
      };
      return protoKeyToJson(mustHaveKey((await readable(client.updateKey(request, call))).key));
    },
    async suspend(id) {
      return protoKeyToJson(mustHaveKey((await readable(client.suspendKey({ id }, call))).key));
    },
    async resume(id) {
      return protoKeyToJson(mustHaveKey((await readable(client.resumeKey({ id }, call))).key));
    },
    async get(id) {
      return protoKeyToJson(mustHaveKey((await readable(client.getKey({ id }, call))).key));
    },
    async usage(id, hours) {
      return protoUsageToJson((await readable(client.getKeyUsage({ id, hours }, call))).usage);
    },
    async list(filter, limit) {
      const keys: KeyJson[] = [];
      let pageToken = "";
      do {
        const page = await readable(
          client.listKeys(
            {
              pageSize: Math.min(limit - keys.length, 1000),
              pageToken,
              tenant: filter.tenant ?? "",
              kind: filter.kind ?? "",
              status: filter.status ?? "",
              owner: filter.owner ?? "",
              run: filter.run ?? "",
            },
            call,
          ),
        );
        keys.push(...page.keys.map(protoKeyToJson));
        pageToken = page.nextPageToken;
      } while (pageToken && keys.length < limit);
      return keys;
    },
    async revokeRun(binding) {
      return (await readable(client.revokeRunKeys({ binding }, call))).keys.map(protoKeyToJson);
    },
    close() {},
  };
}

function mustHaveKey<T>(key: T | undefined): T {
  if (key === undefined) throw new Error("the admin API answered without a key");
  return key;
}

/**
 * Admin API refusals become one-line CLI errors: "<code>: <message>". An
 * invalid_argument is a flag value the server refused (a scope it does not
 * know, say): a usage error, exit 2, like one the CLI spots itself.
 */
async function readable<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof ConnectError) {
      const message = `${codeName(error.code)}: ${error.rawMessage}`;
      throw error.code === Code.InvalidArgument ? new UsageError(message) : new Error(message);
    }
    throw error;
  }
}
