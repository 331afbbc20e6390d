import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import {
  Health,
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import { grpcService } from "./definition.js";

export { ServingStatus };

/**
 * grpc.health.v1 state for a gRPC port: the overall server ("") and each
 * named service. Kubernetes gRPC probes and Envoy health checks read it;
 * `Watch` streams every change.
 */
export class HealthState {
  readonly #status = new Map<string, ServingStatus>();
  readonly #watchers = new Set<(service: string, status: ServingStatus) => void>();

  constructor(readonly services: readonly string[]) {
    for (const name of ["", ...services]) this.#status.set(name, ServingStatus.NOT_SERVING);
  }

  /** Sets every known service (and the server) to one status. */
  setAll(serving: boolean): void {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const name of this.#status.keys()) {
      if (this.#status.get(name) === status) continue;
      this.#status.set(name, status);
      for (const watch of this.#watchers) watch(name, status);
    }
  }

  get(service: string): ServingStatus | undefined {
    return this.#status.get(service);
  }

  watch(listener: (service: string, status: ServingStatus) => void): () => void {
    this.#watchers.add(listener);
    return () => this.#watchers.delete(listener);
  }
}

/** The grpc.health.v1.Health service definition and implementation over a HealthState. */
export function healthService(
  state: HealthState,
): [grpc.ServiceDefinition, grpc.UntypedServiceImplementation] {
  const reply = (status: ServingStatus): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status });
  const implementation: grpc.UntypedServiceImplementation = {
    Check(
      call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: grpc.sendUnaryData<HealthCheckResponse>,
    ) {
      const status = state.get(call.request.service);
      if (status === undefined) {
        callback({
          code: 5,
          details: `unknown service ${call.request.service}`,
        } as grpc.ServiceError);
        return;
      }
      callback(null, reply(status));
    },
    Watch(call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      const service = call.request.service;
      call.write(reply(state.get(service) ?? ServingStatus.SERVICE_UNKNOWN));
      const stop = state.watch((name, status) => {
        if (name === service) call.write(reply(status));
      });
      call.on("cancelled", stop);
      call.on("close", stop);
    },
  };
  return [grpcService(Health), implementation];
}
