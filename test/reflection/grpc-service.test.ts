import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUTHORIZATION_SERVICE } from "../../src/check/server.js";
import {
  Authorization,
  type CheckRequest,
  type CheckResponse,
  CheckResponseSchema,
  file_envoy_service_auth_v3_external_auth,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { file_grpc_health_v1_health } from "../../src/gen/grpc/health/v1/health_pb.js";
import { grpcService } from "../../src/grpc/definition.js";
import { HealthState, healthService } from "../../src/grpc/health.js";
import { reflectionServices } from "../../src/reflection/grpc-service.js";
import {
  descriptorsOf,
  packageFromDescriptors,
  ReflectionClient,
  type ReflectionVersion,
  registryOf,
} from "../helpers/reflection-client.js";

// The Check port as src/check/server.ts composes it, with a stub Check that
// echoes the request path, so that a client built from reflection alone can
// be shown to encode a real CheckRequest.
async function startCheckPort(): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(grpcService(Authorization), {
    Check(
      call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
      callback: grpc.sendUnaryData<CheckResponse>,
    ) {
      const path = call.request.attributes?.request?.http?.path ?? "";
      callback(null, create(CheckResponseSchema, { status: { code: 0, message: path } }));
    },
  });
  server.addService(...healthService(new HealthState([AUTHORIZATION_SERVICE])));
  for (const service of reflectionServices({
    files: [file_envoy_service_auth_v3_external_auth, file_grpc_health_v1_health],
  })) {
    server.addService(...service);
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return { server, port };
}

describe.each<ReflectionVersion>(["v1", "v1alpha"])(
  "reflection %s on the Check port (grpc-js)",
  (version) => {
    let check: { server: grpc.Server; port: number };
    let reflection: ReflectionClient;
    const clients: grpc.Client[] = [];

    beforeAll(async () => {
      check = await startCheckPort();
      reflection = new ReflectionClient(check.port, version);
    });
    afterAll(async () => {
      reflection.close();
      for (const client of clients) client.close();
      // tryShutdown calls back only once every connection has closed: a client
      // left open would hang this hook until it timed out.
      await new Promise<void>((resolve) => check.server.tryShutdown(() => resolve()));
    });

    it("lists Authorization, Health and both reflection services", async () => {
      expect((await reflection.listServices()).sort()).toEqual([
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
    });

    it("answers file_containing_symbol for Authorization with its file first, then every import", async () => {
      const files = descriptorsOf(
        await reflection.ask({ file_containing_symbol: "envoy.service.auth.v3.Authorization" }),
      );
      expect(files[0]?.name).toBe("envoy/service/auth/v3/external_auth.proto");
      expect(files.map((f) => f.name).sort()).toEqual([
        "envoy/config/core/v3/base.proto",
        "envoy/service/auth/v3/attribute_context.proto",
        "envoy/service/auth/v3/external_auth.proto",
        "envoy/type/v3/http_status.proto",
        "google/protobuf/any.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/wrappers.proto",
        "google/rpc/status.proto",
      ]);
      const service = files[0]?.service.find((s) => s.name === "Authorization");
      expect(service?.method.map((m) => [m.name, m.inputType, m.outputType])).toEqual([
        ["Check", ".envoy.service.auth.v3.CheckRequest", ".envoy.service.auth.v3.CheckResponse"],
      ]);
      // protobuf-es resolves every reference, or throws on a missing import.
      const registry = registryOf(files);
      expect(registry.getService(AUTHORIZATION_SERVICE)?.methods[0]?.input.typeName).toBe(
        "envoy.service.auth.v3.CheckRequest",
      );
    });

    it("gives descriptors from which a working Check client is built", async () => {
      const files = descriptorsOf(
        await reflection.ask({ file_containing_symbol: "envoy.service.auth.v3.Authorization" }),
      );
      const loaded = grpc.loadPackageDefinition(packageFromDescriptors(files)) as unknown as {
        envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
      };
      const client = new loaded.envoy.service.auth.v3.Authorization(
        `127.0.0.1:${check.port}`,
        grpc.credentials.createInsecure(),
      ) as unknown as grpc.Client & {
        Check(
          request: unknown,
          callback: (
            error: grpc.ServiceError | null,
            response: { status: { message: string } },
          ) => void,
        ): void;
      };
      clients.push(client);
      const response = await new Promise<{ status: { message: string } }>((resolve, reject) =>
        client.Check({ attributes: { request: { http: { path: "/reflected" } } } }, (error, r) =>
          error ? reject(error) : resolve(r),
        ),
      );
      expect(response.status.message).toBe("/reflected");
    });

    it.each([
      [
        "a method",
        "envoy.service.auth.v3.Authorization.Check",
        "envoy/service/auth/v3/external_auth.proto",
      ],
      [
        "a message",
        "envoy.service.auth.v3.CheckRequest",
        "envoy/service/auth/v3/external_auth.proto",
      ],
      [
        "a nested message",
        "envoy.service.auth.v3.AttributeContext.HttpRequest",
        "envoy/service/auth/v3/attribute_context.proto",
      ],
      [
        "a nested enum",
        "grpc.health.v1.HealthCheckResponse.ServingStatus",
        "grpc/health/v1/health.proto",
      ],
      ["a well-known type", "google.protobuf.Struct", "google/protobuf/struct.proto"],
      [
        "the reflection service",
        `grpc.reflection.${version}.ServerReflection`,
        `grpc/reflection/${version}/reflection.proto`,
      ],
    ])("finds the file declaring %s", async (_, symbol, file) => {
      const files = descriptorsOf(await reflection.ask({ file_containing_symbol: symbol }));
      expect(files[0]?.name).toBe(file);
    });

    it("answers file_by_filename with the file and its imports", async () => {
      const files = descriptorsOf(
        await reflection.ask({ file_by_filename: "envoy/service/auth/v3/attribute_context.proto" }),
      );
      expect(files.map((f) => f.name)).toEqual([
        "envoy/service/auth/v3/attribute_context.proto",
        "envoy/config/core/v3/base.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/wrappers.proto",
        "google/protobuf/timestamp.proto",
      ]);
    });

    it.each([
      ["an unknown symbol", { file_containing_symbol: "envoy.service.auth.v3.Nope" }],
      ["an unknown file", { file_by_filename: "nope.proto" }],
      [
        "an extension (keyward declares none)",
        {
          file_containing_extension: {
            containing_type: "envoy.service.auth.v3.CheckRequest",
            extension_number: 100,
          },
        },
      ],
      ["extension numbers of an unknown type", { all_extension_numbers_of_type: "no.Such" }],
    ])("answers %s with error_response NOT_FOUND and keeps the stream open", async (_, request) => {
      const [error, after] = await reflection.session([request, { list_services: "" }]);
      expect(error?.message_response).toBe("error_response");
      expect(error?.error_response?.error_code).toBe(grpc.status.NOT_FOUND);
      expect(after?.message_response).toBe("list_services_response");
    });

    it("answers all_extension_numbers_of_type for a known message with an empty list", async () => {
      const response = await reflection.ask({
        all_extension_numbers_of_type: "envoy.service.auth.v3.CheckRequest",
      });
      expect(response.all_extension_numbers_response).toEqual({
        base_type_name: "envoy.service.auth.v3.CheckRequest",
        extension_number: [],
      });
    });

    it("answers several requests on one stream in order, echoing host and request", async () => {
      const responses = await reflection.session([
        { host: "keyward", file_by_filename: "grpc/health/v1/health.proto" },
        { host: "keyward", file_containing_symbol: "nope" },
        { host: "keyward", list_services: "*" },
      ]);
      expect(responses.map((r) => r.message_response)).toEqual([
        "file_descriptor_response",
        "error_response",
        "list_services_response",
      ]);
      expect(responses.map((r) => r.valid_host)).toEqual(["keyward", "keyward", "keyward"]);
      expect(responses[1]?.original_request).toMatchObject({ file_containing_symbol: "nope" });
    });
  },
);
