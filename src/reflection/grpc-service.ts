import type * as grpc from "@grpc/grpc-js";
import {
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
  ServerReflection as ServerReflectionV1,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { grpcService, schemaCodec } from "../grpc/definition.js";
import { createReflectionResponder, type ReflectionOptions } from "./responder.js";

/**
 * grpc.reflection.v1 and grpc.reflection.v1alpha ServerReflection for a
 * @grpc/grpc-js server, as `[definition, implementation]` pairs for
 * `server.addService(...)`: v1 first, then v1alpha. Both answer from one
 * index built here, once. Each request on the bidi stream gets one response,
 * in order; the call ends when the client half-closes.
 */
export function reflectionServices(
  options: ReflectionOptions,
): [grpc.ServiceDefinition, grpc.UntypedServiceImplementation][] {
  const respond = createReflectionResponder(options);
  const implementation: grpc.UntypedServiceImplementation = {
    ServerReflectionInfo(
      call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>,
    ) {
      call.on("data", (request: ServerReflectionRequest) => {
        // Stop reading while the client is not reading its answers, so that a
        // client that only writes cannot grow the server's buffers.
        if (!call.write(respond(request))) {
          call.pause();
          call.once("drain", () => call.resume());
        }
      });
      call.on("end", () => call.end());
    },
  };
  return [
    [grpcService(ServerReflectionV1, V1_CODECS), implementation],
    [grpcService(ServerReflectionV1alpha, V1_CODECS), implementation],
  ];
}

// v1alpha's messages are v1's, field for field, so v1's codecs serve both
// services; only the method path tells them apart.
const V1_CODECS = {
  ServerReflectionInfo: {
    request: schemaCodec(ServerReflectionRequestSchema),
    response: schemaCodec(ServerReflectionResponseSchema),
  },
};
