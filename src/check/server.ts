import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Decision } from "../auth/decision.js";
import { faultDeny } from "../auth/decision.js";
import { EMPTY_VIEW, type RequestView } from "../auth/request-view.js";
import {
  Authorization,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
  file_envoy_service_auth_v3_external_auth,
} from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import { asBuffer, grpcService } from "../grpc/definition.js";
import { HealthState, healthService } from "../grpc/health.js";
import type { Logger } from "../lib/log.js";
import { type MaybePromise, whenReady } from "../lib/maybe-async.js";
import { logDecision, logDeny } from "../pipeline/log-decision.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { reflectionServices } from "../reflection/grpc-service.js";
import { createEncodedCheckResponder } from "./encoded-response.js";
import { type CheckRequestFields, decodeCheckRequest } from "./request-decoder.js";
import { viewOfCheckRequest } from "./request-view.js";
import type { CheckResponderOptions } from "./response.js";

export const AUTHORIZATION_SERVICE = Authorization.typeName;

/** Options for {@link startCheckServer}. */
export interface CheckServerOptions extends CheckResponderOptions {
  readonly pipeline: Pipeline;
  readonly logger: Logger;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 9191; 0 picks a free port. */
  readonly port?: number;
  /** Share of allowed decisions logged, 0..1 (config `log.allow_sample_rate`); default 0. */
  readonly allowSampleRate?: number;
  /** The filter-metadata namespace `required_scopes` is read under; default "keyward". */
  readonly metadataNamespace?: string;
  /** Distinct encoded responses kept (see encoded-response.ts); default 10 000. */
  readonly responseCacheEntries?: number;
}

/** A running ext_authz server. */
export interface CheckServer {
  readonly port: number;
  readonly health: HealthState;
  /** Stops taking calls, lets in-flight ones finish (up to `graceMs`), then closes. */
  close(graceMs?: number): Promise<void>;
}

// A CheckRequest that fails to decode is carried to the handler as this
// marker, so that it is answered with a logged deny instead of a transport
// error whose handling would be up to the proxy's failure mode.
const UNDECODABLE = Symbol("undecodable");
type Incoming = CheckRequestFields | typeof UNDECODABLE;

/**
 * Serves envoy.service.auth.v3.Authorization/Check and grpc.health.v1 on one
 * port with @grpc/grpc-js, (de)serialising with the generated protobuf-es
 * schemas. The handler never throws and never answers with an error status:
 * every outcome, faults included, is a CheckResponse with a decision.
 *
 * Long because the Check handler, its codecs and the server lifecycle share
 * the responder and the health state; each part is commented where it starts.
 */
export async function startCheckServer(options: CheckServerOptions): Promise<CheckServer> {
  const log = options.logger;
  const respond = createEncodedCheckResponder(options, options.responseCacheEntries);
  const prefix = options.prefix ?? "x-auth-";
  const health = new HealthState([AUTHORIZATION_SERVICE]);
  const sampleRate = options.allowSampleRate ?? 0;

  // Responses leave the handler already encoded (encoded-response.ts); a
  // CheckResponse message is only ever serialised by a client.
  const definition = grpcService(Authorization, {
    Check: {
      request: {
        serialize: (m: Incoming) => asBuffer(toBinary(CheckRequestSchema, m as CheckRequest)),
        deserialize: (bytes: Buffer): Incoming => {
          try {
            return decodeCheckRequest(bytes);
          } catch {
            return UNDECODABLE;
          }
        },
      },
      response: {
        serialize: (m: CheckResponse | Buffer) =>
          Buffer.isBuffer(m) ? m : asBuffer(toBinary(CheckResponseSchema, m)),
        deserialize: (bytes: Buffer) => fromBinary(CheckResponseSchema, bytes),
      },
    },
  });

  // A failure while building or sending the answer is confined to this call:
  // logged at error, then a 503 deny; if even that cannot be built, the call
  // ends with UNAVAILABLE (a failed call, which the proxy's failure_mode_allow
  // = false turns into a deny).
  const answer = (decision: Decision, view: RequestView, callback: grpc.sendUnaryData<Buffer>) => {
    let bytes: Buffer;
    try {
      logDecision(log, decision, view, sampleRate);
      bytes = respond(decision, view);
    } catch (cause) {
      const fault = faultDeny("response failed", cause);
      try {
        logDeny(log, fault, view);
        bytes = respond(fault, EMPTY_VIEW);
      } catch {
        callback({ code: grpc.status.UNAVAILABLE, details: "keyward could not answer" });
        return;
      }
    }
    callback(null, bytes);
  };

  const implementation: grpc.UntypedServiceImplementation = {
    Check(call: grpc.ServerUnaryCall<Incoming, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      let view: RequestView = EMPTY_VIEW;
      let decision: MaybePromise<Decision>;
      try {
        if (call.request === UNDECODABLE) decision = faultDeny("undecodable CheckRequest");
        else {
          view = viewOfCheckRequest(call.request, prefix, options.metadataNamespace);
          decision = options.pipeline(view);
        }
      } catch (cause) {
        decision = faultDeny("check handler failed", cause);
      }
      // Most decisions (API keys, cached JWTs) are made synchronously.
      whenReady(
        decision,
        (made) => answer(made, view, callback),
        (cause) => answer(faultDeny("pipeline rejected", cause), view, callback),
      );
    },
  };

  const server = new grpc.Server();
  server.addService(definition, implementation);
  server.addService(...healthService(health));
  // Server reflection, so grpcurl-style tools can list and call the services.
  for (const service of reflectionServices({
    files: [file_envoy_service_auth_v3_external_auth, file_grpc_health_v1_health],
  })) {
    server.addService(...service);
  }

  const host = options.host ?? "127.0.0.1";
  const address = host.includes(":")
    ? `[${host}]:${options.port ?? 9191}`
    : `${host}:${options.port ?? 9191}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  health.setAll(true);

  return {
    port,
    health,
    close(graceMs = 5000) {
      health.setAll(false);
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
