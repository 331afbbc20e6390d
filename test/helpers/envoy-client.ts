import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

// The client side of every Check test is built from Envoy's canonical protos
// (shipped by @grpc/grpc-js-xds), never from keyward's own generated code, so
// that the tests prove wire compatibility with real Envoy.
const require = createRequire(import.meta.url);
const deps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");

/** Envoy's ext_authz service as @grpc/proto-loader reads it from the canonical protos. */
export const ENVOY_AUTH_PROTO = protoLoader.loadSync("envoy/service/auth/v3/external_auth.proto", {
  includeDirs: ["envoy-api", "googleapis", "xds", "protoc-gen-validate"].map((d) => join(deps, d)),
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(ENVOY_AUTH_PROTO) as unknown as {
  envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
};

/** A CheckResponse as @grpc/proto-loader decodes it (snake_case, enums as names). */
export interface EnvoyCheckResponse {
  status: { code: number; message: string } | null;
  http_response?: "denied_response" | "ok_response";
  denied_response?: {
    status: { code: string };
    headers: {
      header: { key: string; value: string };
      append_action: string;
      append: { value: boolean } | null;
    }[];
    body: string;
  };
  ok_response?: {
    headers: {
      header: { key: string; value: string };
      append_action: string;
      append: { value: boolean } | null;
    }[];
    headers_to_remove: string[];
  };
  dynamic_metadata: { fields: Record<string, StructValue> } | null;
}

export interface StructValue {
  kind: string;
  string_value?: string;
  null_value?: string;
  list_value?: { values: StructValue[] };
}

/** A request as Envoy would describe it. */
export interface CheckInput {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** Sent as header_map with raw_value bytes, as Envoy's encode_raw_headers does. */
  rawHeaders?: [string, string | Buffer][];
  contextExtensions?: Record<string, string>;
  /** The route's metadata (route_metadata_context.filter_metadata), by namespace. */
  routeMetadata?: Record<string, Record<string, unknown>>;
  /** The filter's metadata context (metadata_context.filter_metadata), by namespace. */
  metadataContext?: Record<string, Record<string, unknown>>;
  /** The downstream client's IP (attributes.source.address.socket_address), as Envoy sends it. */
  sourceAddress?: string;
}

/**
 * Plain JSON as a google.protobuf.Struct for proto-loader. protobufjs
 * defines the well-known Struct types itself, with camelCase field names
 * whatever `keepCase` says (a snake_case `string_value` is dropped silently).
 */
export function jsonToStruct(json: Record<string, unknown>): {
  fields: Record<string, unknown>;
} {
  const value = (v: unknown): unknown => {
    if (v === null) return { nullValue: "NULL_VALUE" };
    if (typeof v === "string") return { stringValue: v };
    if (typeof v === "number") return { numberValue: v };
    if (typeof v === "boolean") return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
    return { structValue: jsonToStruct(v as Record<string, unknown>) };
  };
  return { fields: Object.fromEntries(Object.entries(json).map(([k, v]) => [k, value(v)])) };
}

const metadataOf = (byNamespace: Record<string, Record<string, unknown>>) => ({
  filter_metadata: Object.fromEntries(
    Object.entries(byNamespace).map(([namespace, json]) => [namespace, jsonToStruct(json)]),
  ),
});

export class EnvoyCheckClient {
  readonly #client: grpc.Client & Record<string, grpc.MethodDefinition<unknown, unknown>>;

  /**
   * @param ownConnection open a connection of this client's own; by default
   *   grpc-js shares one between clients of the same port.
   */
  constructor(port: number, { ownConnection = false } = {}) {
    const Ctor = loaded.envoy.service.auth.v3.Authorization;
    this.#client = new Ctor(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
      ownConnection ? { "grpc.use_local_subchannel_pool": 1 } : {},
    ) as never;
  }

  check(input: CheckInput): Promise<EnvoyCheckResponse> {
    const http: Record<string, unknown> = {
      method: input.method ?? "GET",
      path: input.path ?? "/",
    };
    if (input.rawHeaders) {
      http.header_map = {
        headers: input.rawHeaders.map(([key, value]) => ({ key, raw_value: Buffer.from(value) })),
      };
    } else {
      http.headers = input.headers ?? {};
    }
    const request = {
      attributes: {
        request: { http },
        context_extensions: input.contextExtensions ?? {},
        ...(input.routeMetadata && { route_metadata_context: metadataOf(input.routeMetadata) }),
        ...(input.metadataContext && { metadata_context: metadataOf(input.metadataContext) }),
        ...(input.sourceAddress && {
          source: {
            address: { socket_address: { address: input.sourceAddress, port_value: 40_000 } },
          },
        }),
      },
    };
    return new Promise((resolve, reject) => {
      (
        this.#client as unknown as {
          Check: (r: unknown, cb: (e: Error | null, r: EnvoyCheckResponse) => void) => void;
        }
      ).Check(request, (error, response) => (error ? reject(error) : resolve(response)));
    });
  }

  close(): void {
    this.#client.close();
  }
}

/** Reads the deny body and headers of a denied response in a test-friendly shape. */
export function denial(response: EnvoyCheckResponse) {
  const denied = response.denied_response;
  if (!denied) throw new Error(`expected a denied response, got ${JSON.stringify(response)}`);
  const headers = Object.fromEntries(denied.headers.map((h) => [h.header.key, h.header.value]));
  return {
    grpcCode: response.status?.code,
    httpStatus: denied.status.code,
    headers,
    body: JSON.parse(denied.body) as { error: string; message: string; decision_id: string },
  };
}

/** The upstream header changes of an allowed response. */
export function allowance(response: EnvoyCheckResponse) {
  const ok = response.ok_response;
  if (!ok || response.status?.code !== 0)
    throw new Error(`expected an allow, got ${JSON.stringify(response)}`);
  return {
    headers: Object.fromEntries(ok.headers.map((h) => [h.header.key, h.header.value])),
    options: ok.headers,
    remove: ok.headers_to_remove,
  };
}

/** Turns a decoded google.protobuf.Struct back into plain JSON. */
export function structToJson(
  struct: { fields: Record<string, StructValue> } | null,
): Record<string, unknown> {
  // protobufjs names the oneof case in snake_case or camelCase depending on
  // where the well-known type was loaded from; accept both.
  const value = (v: StructValue): unknown => {
    const inner = (v as unknown as Record<string, unknown>)[v.kind];
    if (v.kind === "list_value" || v.kind === "listValue") {
      return ((inner as { values: StructValue[] }).values ?? []).map(value);
    }
    if (v.kind === "null_value" || v.kind === "nullValue") return null;
    return inner;
  };
  return Object.fromEntries(Object.entries(struct?.fields ?? {}).map(([k, v]) => [k, value(v)]));
}
