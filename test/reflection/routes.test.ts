import { createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAdminServer } from "../../src/admin/server.js";
import {
  file_keyward_admin_v1_admin,
  KeyService,
} from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { reflectionRoutes } from "../../src/reflection/routes.js";
import {
  descriptorsOf,
  packageFromDescriptors,
  ReflectionClient,
  type ReflectionVersion,
  registryOf,
} from "../helpers/reflection-client.js";

// The admin port's routes, composed as src/app.ts composes them, with a stub
// KeyService whose GetKey echoes the id and refuses "missing".
const keyRoutes = (router: ConnectRouter) =>
  router.service(KeyService, {
    getKey(request) {
      if (request.id === "missing") throw new ConnectError("no such key", Code.NotFound);
      return { key: { id: request.id, tenant: "acme" } };
    },
  });
const reflection = reflectionRoutes({ files: [file_keyward_admin_v1_admin] });

async function startAdminPort(): Promise<{ server: Http2Server; port: number }> {
  const server = createServer(
    connectNodeAdapter({ routes: (router) => reflection(keyRoutes(router)) }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe.each<ReflectionVersion>(["v1", "v1alpha"])(
  "reflection %s on the admin port (connect-node, HTTP/2)",
  (version) => {
    let admin: { server: Http2Server; port: number };
    let client: ReflectionClient;
    const clients: grpc.Client[] = [];

    beforeAll(async () => {
      admin = await startAdminPort();
      client = new ReflectionClient(admin.port, version);
    });
    afterAll(async () => {
      client.close();
      for (const c of clients) c.close();
      // http2.Server#close calls back only once every session has ended: a
      // client left open would hang this hook until it timed out.
      await new Promise<void>((resolve, reject) =>
        admin.server.close((error) => (error ? reject(error) : resolve())),
      );
    });

    it("lists KeyService and both reflection services, and nothing the port does not serve", async () => {
      expect((await client.listServices()).sort()).toEqual([
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "keyward.admin.v1.KeyService",
      ]);
    });

    it("gives KeyService descriptors, Timestamp included, from which a working client is built", async () => {
      const files = descriptorsOf(
        await client.ask({ file_containing_symbol: "keyward.admin.v1.KeyService" }),
      );
      expect(files.map((f) => f.name)).toEqual([
        "keyward/admin/v1/admin.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
      ]);
      const registry = registryOf(files);
      expect(
        registry.getService("keyward.admin.v1.KeyService")?.method.getKey?.input.typeName,
      ).toBe("keyward.admin.v1.GetKeyRequest");

      const loaded = grpc.loadPackageDefinition(packageFromDescriptors(files)) as unknown as {
        keyward: { admin: { v1: { KeyService: grpc.ServiceClientConstructor } } };
      };
      const keys = new loaded.keyward.admin.v1.KeyService(
        `127.0.0.1:${admin.port}`,
        grpc.credentials.createInsecure(),
      ) as unknown as grpc.Client & {
        GetKey(
          request: { id: string },
          callback: (error: grpc.ServiceError | null, response: { key: { id: string } }) => void,
        ): void;
      };
      clients.push(keys);
      const getKey = (id: string) =>
        new Promise<{ key: { id: string } } | grpc.ServiceError>((resolve) =>
          keys.GetKey({ id }, (error, response) => resolve(error ?? response)),
        );
      expect(await getKey("0123456789abcdef")).toMatchObject({ key: { id: "0123456789abcdef" } });
      expect(await getKey("missing")).toMatchObject({ code: grpc.status.NOT_FOUND });
    });

    it("answers an unknown symbol with error_response NOT_FOUND", async () => {
      const response = await client.ask({ file_containing_symbol: "keyward.admin.v1.Nope" });
      expect(response.error_response).toEqual({
        error_code: grpc.status.NOT_FOUND,
        error_message: "symbol keyward.admin.v1.Nope not found",
      });
    });

    it("answers several requests on one stream in order", async () => {
      const responses = await client.session([
        { file_containing_symbol: "keyward.admin.v1.GetKeyRequest" },
        { file_by_filename: "google/protobuf/timestamp.proto" },
        { list_services: "" },
      ]);
      expect(responses.map((r) => r.message_response)).toEqual([
        "file_descriptor_response",
        "file_descriptor_response",
        "list_services_response",
      ]);
      expect(descriptorsOf(responses[1] as (typeof responses)[number]).map((f) => f.name)).toEqual([
        "google/protobuf/timestamp.proto",
      ]);
    });
  },
);

describe("reflection behind the admin server", () => {
  it("is reached over the admin port's cleartext HTTP/2, beside KeyService", async () => {
    // startAdminServer tells HTTP/2 from HTTP/1.1 by the connection preface;
    // reflection tools open with prior-knowledge h2c, as this client does.
    const server = await startAdminServer({
      port: 0,
      routes: (router) => reflection(keyRoutes(router)),
      interceptors: [],
    });
    const client = new ReflectionClient(server.port, "v1");
    try {
      expect(await client.listServices()).toContain("keyward.admin.v1.KeyService");
    } finally {
      client.close();
      await server.close();
    }
  });
});
