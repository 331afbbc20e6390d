import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { faultDeny } from "../../src/auth/decision.js";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { startTracing, tracingRequested } from "../../src/observability/otel-sdk.js";
import { tracedIfEnabled, tracingRegistered } from "../../src/observability/tracing.js";
import { serve } from "../helpers/cli.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { scopeTablePolicyFile } from "../helpers/keyward.js";

/** An OTLP/HTTP trace receiver (JSON encoding, as @opentelemetry/exporter-trace-otlp-http sends). */
interface Receiver {
  readonly url: string;
  /** Every request body received on /v1/traces, as text. */
  readonly bodies: string[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/traces") {
        bodies.push(Buffer.concat(chunks).toString("utf8"));
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
}
interface OtlpSpan {
  traceId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: OtlpValue }[];
}

/** Every span of the received exports, with its resource's service name. */
function spansOf(bodies: readonly string[]) {
  return bodies.flatMap((body) => {
    const parsed = JSON.parse(body) as {
      resourceSpans: {
        resource: { attributes: { key: string; value: OtlpValue }[] };
        scopeSpans: { spans: OtlpSpan[] }[];
      }[];
    };
    return parsed.resourceSpans.flatMap((resourceSpans) => {
      const service = resourceSpans.resource.attributes.find((a) => a.key === "service.name")?.value
        .stringValue;
      return resourceSpans.scopeSpans.flatMap((scope) =>
        scope.spans.map((span) => ({
          service,
          ...span,
          attrs: Object.fromEntries(span.attributes.map((a) => [a.key, a.value.stringValue])),
        })),
      );
    });
  });
}

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";

// keyward serve, configured by the standard OTEL_* variables alone, exports
// its spans over OTLP/HTTP to a receiver on loopback. Stopping the process
// flushes the batch processor, so the spans are all there once it exited:
// nothing here waits on a clock.
describe("trace export by configuration (OTEL_EXPORTER_OTLP_ENDPOINT)", () => {
  let receiver: Receiver;
  let secret: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    receiver = await startReceiver();
    const dir = mkdtempSync(join(tmpdir(), "keyward-otlp-"));
    const database = join(dir, "keys.db");
    const db = openDatabase(database);
    secret = new KeyRepository(db).create({ kind: "live", scopes: ["sources:read"] }).secret;
    db.close();
    env = {
      KEYWARD_DATABASE: database,
      KEYWARD_POLICY: scopeTablePolicyFile(),
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_SAMPLER: "",
      OTEL_SERVICE_NAME: "",
    };
  });
  afterAll(async () => receiver.close());

  async function run(extraEnv: NodeJS.ProcessEnv): Promise<void> {
    receiver.bodies.length = 0;
    const server = await serve([], { ...env, ...extraEnv });
    const check = new EnvoyCheckClient(server.ports.check);
    try {
      const traceparent = `00-${TRACE_ID}-${PARENT_ID}-01`;
      await check.check({
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${secret}`, traceparent },
      });
      await check.check({ path: "/api/v1/sources", headers: { traceparent } });
      await fetch(`http://127.0.0.1:${server.ports.http}/authz/api/v1/sources`, {
        headers: { authorization: `Bearer ${secret}x`, traceparent },
      });
    } finally {
      check.close();
      expect(await server.stop()).toBe(0);
    }
  }

  it("sends a span per decision, continuing the trace, with outcome and code and no credential", async () => {
    await run({});
    const spans = spansOf(receiver.bodies).filter((span) => span.name === "keyward.check");
    expect(spans).toHaveLength(3);
    for (const span of spans) {
      expect(span.service).toBe("keyward");
      expect(span.traceId).toBe(TRACE_ID);
      expect(span.parentSpanId).toBe(PARENT_ID);
      expect(span.attrs["keyward.decision_id"]).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(
      spans.map((span) => [span.attrs["keyward.transport"], span.attrs["keyward.decision"]]),
    ).toEqual([
      ["grpc", "allow"],
      ["grpc", "missing_credential"],
      ["http", "invalid_token"],
    ]);
    const text = receiver.bodies.join("\n");
    expect(text).not.toContain(secret.slice(-40));
    expect(text).not.toMatch(/sk_live_[0-9a-f]{16}_[0-9a-f]{8}/);
  });

  it("samples as OTEL_TRACES_SAMPLER says", async () => {
    await run({ OTEL_TRACES_SAMPLER: "always_off" });
    expect(spansOf(receiver.bodies)).toEqual([]);
  });
});

describe("tracing without configuration", () => {
  it("is asked for only by the standard variables", () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c/v1/traces" })).toBe(
      true,
    );
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: "console, otlp" })).toBe(true);
    expect(
      tracingRequested({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "x" }),
    ).toBe(false);
    expect(tracingRequested({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" })).toBe(
      false,
    );
  });

  it("registers nothing, and the pipeline is served without a tracing wrapper", async () => {
    expect(await startTracing({})).toBeUndefined();
    expect(tracingRegistered()).toBe(false);
    const pipeline = () => faultDeny("probe");
    expect(tracedIfEnabled(pipeline, "grpc")).toBe(pipeline);
    const span = trace.getTracer("keyward").startSpan("probe");
    expect(span.isRecording()).toBe(false);
    span.end();
  });
});
