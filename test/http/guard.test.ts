import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startAdminServer } from "../../src/admin/server.js";
import type { Decision } from "../../src/auth/decision.js";
import { startCheckServer } from "../../src/check/server.js";
import { guard } from "../../src/http/guard.js";
import { startHttpServer } from "../../src/http/server.js";
import { createLogger } from "../../src/lib/log.js";
import type { Pipeline } from "../../src/pipeline/pipeline.js";
import { denial, EnvoyCheckClient } from "../helpers/envoy-client.js";
import { LogCapture } from "../helpers/keyward.js";

// Issue 18 point 1, second half: a failure while writing any response is
// confined to that request (503 deny or reset) and logged at error; the
// server keeps serving. Real servers on loopback, real clients.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function capture() {
  const logs = new LogCapture();
  return { logs, logger: createLogger({ level: "debug", destination: logs }) };
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function expectDeny503(response: Response): Promise<void> {
  expect(response.status).toBe(503);
  expect(response.headers.get("content-type")).toBe("application/json");
  expect(response.headers.get("www-authenticate")).toBe(
    'Bearer realm="keyward", error="unavailable"',
  );
  expect(await response.json()).toEqual({
    error: "unavailable",
    message: expect.any(String),
    decision_id: expect.stringMatching(UUID),
  });
}

describe("guard: one failing request, a server that keeps serving", () => {
  it("answers a synchronous throw with a 503 deny, logged at error, and serves the next request", async () => {
    const { logs, logger } = capture();
    const url = await listen(
      guard(logger, (req, res) => {
        if (req.url?.startsWith("/boom")) {
          res.setHeader("x-half-written", "1");
          res.writeHead(200, { "x-auth-subject": "研究者" }); // throws ERR_INVALID_CHAR
        }
        res.end("ok");
      }),
    );
    const failed = await fetch(`${url}/boom?token=secret`);
    await expectDeny503(failed);
    expect(failed.headers.get("x-half-written")).toBeNull();
    expect(await (await fetch(`${url}/fine`)).text()).toBe("ok");
    const line = logs.records.find((r) => r.msg?.toString().startsWith("response failed"));
    expect(line).toMatchObject({ level: 50, method: "GET", path: "/boom" });
    expect(logs.text).not.toContain("secret");
  });

  it("answers a rejected promise with a 503 deny", async () => {
    const { logger } = capture();
    const url = await listen(
      guard(logger, async (req, res) => {
        await Promise.resolve();
        if (req.url === "/boom") throw new Error("write failed");
        res.end("ok");
      }),
    );
    await expectDeny503(await fetch(`${url}/boom`));
    expect(await (await fetch(`${url}/fine`)).text()).toBe("ok");
  });

  it("resets the connection when the failure comes after the headers were sent", async () => {
    const { logs, logger } = capture();
    const url = await listen(
      guard(logger, async (req, res) => {
        if (req.url === "/boom") {
          res.writeHead(200, { "content-length": "100" });
          res.write("partial");
          await Promise.resolve();
          throw new Error("failed mid-body");
        }
        res.end("ok");
      }),
    );
    // The client sees a broken response, never a complete one.
    await expect(fetch(`${url}/boom`).then((r) => r.text())).rejects.toThrow();
    expect(await (await fetch(`${url}/fine`)).text()).toBe("ok");
    expect(logs.records.some((r) => r.level === 50)).toBe(true);
  });
});

describe("the HTTP port when a response cannot be written", () => {
  it("answers /readyz and /metrics failures with 503 and keeps answering /healthz", async () => {
    const { logs, logger } = capture();
    const server = await startHttpServer({
      port: 0,
      logger,
      readiness: () => {
        throw new Error("readiness probe threw");
      },
      // A content type no header may carry: writeHead throws inside the promise.
      metrics: async () => ({ contentType: "text/plain\nx-evil: 1", body: "m 1\n" }),
    });
    cleanups.push(() => server.close());
    const base = `http://127.0.0.1:${server.port}`;
    await expectDeny503(await fetch(`${base}/readyz`));
    await expectDeny503(await fetch(`${base}/metrics`));
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(logs.records.filter((r) => r.level === 50)).toHaveLength(2);
  });
});

describe("the admin port when a client misbehaves", () => {
  it("survives connections reset before, during and after the first bytes", async () => {
    const { logger } = capture();
    const server = await startAdminServer({
      port: 0,
      logger,
      routes: () => {},
      interceptors: [],
      console: Object.assign(
        (req: { url?: string | undefined }) => {
          if (req.url === "/console/boom") throw new Error("console handler threw");
          return false;
        },
        { built: true },
      ),
    });
    cleanups.push(() => server.close());
    const reset = (bytes: string | undefined) =>
      new Promise<void>((resolve) => {
        const socket = connect(server.port, "127.0.0.1", () => {
          if (bytes === undefined) socket.resetAndDestroy();
          else socket.write(bytes, () => socket.resetAndDestroy());
        });
        socket.on("close", () => resolve());
        socket.on("error", () => {});
      });
    // 20 of each: a reset races the server's read, so one try may not hit it.
    for (let i = 0; i < 20; i++) {
      await reset(undefined);
      await reset("GET /v1/admin/keys HTTP/1.1\r\nHost: x\r\n");
      await reset("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    }
    await expectDeny503(await fetch(`http://127.0.0.1:${server.port}/console/boom`));
    const after = await fetch(`http://127.0.0.1:${server.port}/nothing-here`);
    expect(after.status).toBe(404);
  });
});

describe("a decision no response builder can turn into bytes", () => {
  // Fault injection, not a mock: the real servers with a pipeline whose allow
  // is corrupt (no scopes list), so that building the answer itself throws,
  // synchronously or after an asynchronous decision.
  const corrupt = {
    allow: true,
    decisionId: "00000000-0000-4000-8000-000000000000",
    identity: { kind: "live", subject: "s", keyId: "k", tenant: "" },
  } as unknown as Decision;
  const pipelines: [string, Pipeline][] = [
    ["synchronous", () => corrupt],
    ["asynchronous", () => Promise.resolve(corrupt)],
  ];

  it.each(pipelines)(
    "is a 503 deny on Check (%s decision), and Check keeps serving",
    async (_label, pipeline) => {
      const { logs, logger } = capture();
      const server = await startCheckServer({ port: 0, logger, pipeline });
      const client = new EnvoyCheckClient(server.port, { ownConnection: true });
      cleanups.push(async () => {
        client.close();
        await server.close(0);
      });
      for (let i = 0; i < 3; i++) {
        const denied = denial(await client.check({ path: "/api/v1/sources" }));
        expect([denied.grpcCode, denied.body.error]).toEqual([14, "unavailable"]);
      }
      expect(logs.records.filter((r) => r.level === 50)).toHaveLength(3);
    },
  );

  it.each(pipelines)(
    "is a 503 deny on /authz (%s decision), and the port keeps serving",
    async (_label, pipeline) => {
      const { logs, logger } = capture();
      const server = await startHttpServer({
        port: 0,
        logger,
        readiness: () => ({ ready: true, checks: {} }),
        forwardAuth: { pipeline, logger },
      });
      cleanups.push(() => server.close(0));
      const base = `http://127.0.0.1:${server.port}`;
      for (let i = 0; i < 3; i++) await expectDeny503(await fetch(`${base}/authz/api/v1/sources`));
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect(logs.records.filter((r) => r.level === 50)).toHaveLength(3);
    },
  );
});
