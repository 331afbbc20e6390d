import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";
import { ReflectionClient } from "../helpers/reflection-client.js";

describe("gRPC server reflection on a running keyward", () => {
  let kw: TestKeyward;
  beforeAll(async () => {
    kw = await startTestKeyward();
  });
  afterAll(async () => kw.close());

  it("lists the Check port's services", async () => {
    const client = new ReflectionClient(kw.ports.check, "v1");
    try {
      expect(await client.listServices()).toEqual(
        expect.arrayContaining([
          "envoy.service.auth.v3.Authorization",
          "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection",
        ]),
      );
    } finally {
      client.close();
    }
  });

  it("lists the admin port's services (v1alpha, as older tools ask)", async () => {
    const client = new ReflectionClient(kw.ports.admin, "v1alpha");
    try {
      const services = await client.listServices();
      expect(services).toContain("keyward.admin.v1.KeyService");
      // A single keyward is no primary: it does not offer replication.
      expect(services).not.toContain("keyward.replication.v1.ReplicationService");
    } finally {
      client.close();
    }
  });
});
