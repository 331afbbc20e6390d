import { context, propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deny } from "../../src/auth/decision.js";
import { EMPTY_VIEW } from "../../src/auth/request-view.js";
import { traced } from "../../src/observability/tracing.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

// A real OpenTelemetry SDK (in-memory exporter), registered as an operator would.
const exporter = new InMemorySpanExporter();

describe("tracing", () => {
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  beforeAll(async () => {
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    kw = await startTestKeyward();
    check = new EnvoyCheckClient(kw.ports.check);
  });
  afterAll(async () => {
    check.close();
    await kw.close();
    trace.disable();
    propagation.disable();
    context.disable();
  });

  it("records a span per Check that continues the trace context Envoy forwarded", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";
    const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    await check.check({
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${secret}`, traceparent: `00-${traceId}-${parentId}-01` },
    });
    await check.check({
      path: "/api/v1/sources",
      headers: { traceparent: `00-${traceId}-${parentId}-01` },
    });
    const spans = exporter.getFinishedSpans().filter((s) => s.name === "keyward.check");
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      expect(span.spanContext().traceId).toBe(traceId);
      expect(span.parentSpanContext?.spanId).toBe(parentId);
    }
    expect(spans.map((s) => s.attributes["keyward.decision"])).toEqual([
      "allow",
      "missing_credential",
    ]);
    expect(spans[0]?.attributes["keyward.credential.kind"]).toBe("live");
  });

  it("ends the span of an asynchronous decision, and of one that fails", async () => {
    exporter.reset();
    const slow = traced(async () => {
      await new Promise((done) => setTimeout(done, 5));
      return deny("unavailable", { reason: "test" });
    }, "grpc");
    const decision = await slow(EMPTY_VIEW);
    expect(decision).toMatchObject({ allow: false, code: "unavailable" });
    const broken = traced(() => Promise.reject(new Error("boom")), "grpc");
    await expect(broken(EMPTY_VIEW)).rejects.toThrow("boom");
    const spans = exporter.getFinishedSpans().filter((s) => s.name === "keyward.check");
    expect(spans).toHaveLength(2);
    expect(spans[0]?.status.code).toBe(2); // ERROR: an unavailable decision
  });
});
