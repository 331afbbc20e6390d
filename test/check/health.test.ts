import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

// grpc.health.v1 is the standard protocol; the client is built from the
// standard definition with proto-loader, as Kubernetes and grpc tools use it.
const definition = protoLoader.loadSync("grpc/health/v1/health.proto", {
  includeDirs: ["proto"],
  enums: String,
});
const { grpc: g } = grpc.loadPackageDefinition(definition) as unknown as {
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

type HealthClient = grpc.Client & {
  Check(
    req: { service: string },
    cb: (e: grpc.ServiceError | null, r: { status: string }) => void,
  ): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

describe("health", () => {
  let kw: TestKeyward;
  let health: HealthClient;
  beforeAll(async () => {
    kw = await startTestKeyward();
    health = new g.health.v1.Health(
      `127.0.0.1:${kw.ports.check}`,
      grpc.credentials.createInsecure(),
    ) as unknown as HealthClient;
  });
  afterAll(async () => {
    health.close();
    await kw.close();
  });

  const check = (service: string) =>
    new Promise<{ status: string } | grpc.ServiceError>((resolve) =>
      health.Check({ service }, (error, response) => resolve(error ?? response)),
    );

  it("reports SERVING for the server and the Authorization service once the store is open", async () => {
    expect(await check("")).toEqual({ status: "SERVING" });
    expect(await check("envoy.service.auth.v3.Authorization")).toEqual({ status: "SERVING" });
    expect(await check("no.such.Service")).toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("answers /healthz and /readyz on the HTTP port", async () => {
    const base = `http://127.0.0.1:${kw.ports.http}`;
    const healthz = await fetch(`${base}/healthz`);
    expect([healthz.status, await healthz.json()]).toEqual([200, { status: "ok" }]);
    const readyz = await fetch(`${base}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.json()).toEqual({ status: "ready", checks: { store: "ok" } });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});

describe("draining", () => {
  it("streams NOT_SERVING to watchers when keyward shuts down", async () => {
    const kw = await startTestKeyward();
    const health = new g.health.v1.Health(
      `127.0.0.1:${kw.ports.check}`,
      grpc.credentials.createInsecure(),
    ) as unknown as HealthClient;
    const seen: string[] = [];
    const stream = health.Watch({ service: "" });
    const notServing = new Promise<void>((resolve) => {
      stream.on("data", (message: { status: string }) => {
        seen.push(message.status);
        if (message.status === "NOT_SERVING") resolve();
      });
      stream.on("error", () => resolve());
    });
    await new Promise((r) => setTimeout(r, 100));
    const closing = kw.close();
    await notServing;
    stream.cancel();
    health.close();
    await closing;
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
  });
});
