import { propagation, trace } from "@opentelemetry/api";

/** The environment variables this module reads (the OpenTelemetry SDK's standard names). */
export type OtelEnv = Readonly<Record<string, string | undefined>>;

/** A registered tracing SDK: flush what is pending and stop. */
export interface TracingSdk {
  shutdown(): Promise<void>;
}

/**
 * Whether the environment asks for trace export: the standard
 * `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
 * set, or `OTEL_TRACES_EXPORTER` names `otlp`; never with
 * `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
 */
export function tracingRequested(env: OtelEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  if (exporters.includes("none")) return false;
  return (
    exporters.includes("otlp") ||
    Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT) ||
    Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  );
}

/**
 * Registers the OpenTelemetry SDK when the environment asks for it (see
 * {@link tracingRequested}): a tracer provider for service `keyward` (or
 * `OTEL_SERVICE_NAME`), sampling from `OTEL_TRACES_SAMPLER` /
 * `OTEL_TRACES_SAMPLER_ARG` (the SDK reads them; default parent-based
 * always-on), a batch span processor (`OTEL_BSP_*`), the OTLP/HTTP exporter
 * (JSON over HTTP to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
 * `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else localhost:4318) and the
 * W3C trace-context propagator. Resolves undefined, having loaded nothing,
 * when tracing is not asked for: the SDK is imported dynamically, so a
 * keyward without it keeps @opentelemetry/api's no-op tracer and the hot
 * path pays nothing.
 */
export async function startTracing(env: OtelEnv): Promise<TracingSdk | undefined> {
  if (!tracingRequested(env)) return undefined;
  const [{ BasicTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, core, resources] =
    await Promise.all([
      import("@opentelemetry/sdk-trace-base"),
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/core"),
      import("@opentelemetry/resources"),
    ]);
  const url =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ||
    (env.OTEL_EXPORTER_OTLP_ENDPOINT &&
      `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`) ||
    undefined;
  const provider = new BasicTracerProvider({
    resource: resources.resourceFromAttributes({
      "service.name": env.OTEL_SERVICE_NAME || "keyward",
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(url ? { url } : {}))],
  });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  return {
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
    },
  };
}
