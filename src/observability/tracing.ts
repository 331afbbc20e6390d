import {
  context,
  ProxyTracerProvider,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { Decision } from "../auth/decision.js";
import { type MaybePromise, whenReady } from "../lib/maybe-async.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { Transport } from "./metrics.js";

const tracer = trace.getTracer("keyward");

const getter = {
  keys: (carrier: Record<string, string | undefined>) => Object.keys(carrier),
  get: (carrier: Record<string, string | undefined>, key: string) => carrier[key],
};

/**
 * Wraps a pipeline so each decision is a span (`keyward.check`) continuing
 * the W3C trace context the proxy forwarded (`traceparent`, `tracestate`).
 * Through @opentelemetry/api only: without a registered SDK every call here
 * is the API's no-op, and keyward ships no exporter of its own. The span is
 * made the active one during the decision only when it records, and a
 * synchronous decision stays synchronous.
 */
export function traced(pipeline: Pipeline, transport: Transport): Pipeline {
  return (view) => {
    const parent =
      view.traceContext === undefined
        ? context.active()
        : propagation.extract(context.active(), view.traceContext, getter);
    const span = tracer.startSpan(
      "keyward.check",
      {
        kind: SpanKind.SERVER,
        attributes: { "keyward.transport": transport, "http.request.method": view.method },
      },
      parent,
    );
    const finish = (decision: Decision): Decision => {
      span.setAttribute("keyward.decision", decision.allow ? "allow" : decision.code);
      span.setAttribute("keyward.decision_id", decision.decisionId);
      if (decision.identity) span.setAttribute("keyward.credential.kind", decision.identity.kind);
      if (decision.allow) {
        if (decision.shadowDeny) span.setAttribute("keyward.shadow_deny", decision.shadowDeny.code);
      } else if (decision.code === "unavailable") span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      return decision;
    };
    const fail = (cause: unknown): never => {
      span.end();
      throw cause;
    };
    let result: MaybePromise<Decision>;
    try {
      result = span.isRecording()
        ? context.with(trace.setSpan(parent, span), pipeline, undefined, view)
        : pipeline(view);
    } catch (cause) {
      return fail(cause);
    }
    return whenReady(result, finish, fail);
  };
}

/** What the API's global tracer provider delegates to while no SDK is registered. */
const NO_SDK = new ProxyTracerProvider().getDelegate();

/** True when a tracing SDK is registered (by otel-sdk.ts from OTEL_*, or by a preload module). */
export function tracingRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NO_SDK;
}

/**
 * {@link traced} when a tracing SDK is registered now, else the pipeline
 * itself: without one, even the API's no-op spans and context extraction
 * cost a fraction of a microsecond per decision (bench/tracing-cost.mjs), so
 * keyward skips them. Called when a transport starts, after the SDK (if
 * any) is registered.
 */
export function tracedIfEnabled(pipeline: Pipeline, transport: Transport): Pipeline {
  return tracingRegistered() ? traced(pipeline, transport) : pipeline;
}
