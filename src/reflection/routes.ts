import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  ServerReflection as ServerReflectionV1,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as V1alphaRequestSchema,
  ServerReflectionResponseSchema as V1alphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createReflectionResponder, type ReflectionOptions } from "./responder.js";

/**
 * grpc.reflection.v1 and grpc.reflection.v1alpha ServerReflection as
 * connect-node routes (connect-es style: a function of the router, returning
 * it). ServerReflectionInfo is a bidi stream, so it is reachable over HTTP/2
 * only (gRPC, or Connect over HTTP/2); reflection tools speak gRPC. Each
 * request gets one response, in order. The index is built here, once.
 */
export function reflectionRoutes(options: ReflectionOptions) {
  const respond = createReflectionResponder(options);
  return (router: ConnectRouter) =>
    router
      .service(ServerReflectionV1, {
        async *serverReflectionInfo(requests) {
          for await (const request of requests) yield respond(request);
        },
      })
      .service(ServerReflectionV1alpha, {
        // v1alpha is v1 under another package, field for field: going through
        // the wire format converts exactly, with no field-by-field copy to keep
        // in step with the proto.
        async *serverReflectionInfo(requests) {
          for await (const request of requests) {
            const answer = respond(
              convert(V1alphaRequestSchema, ServerReflectionRequestSchema, request),
            );
            yield convert(ServerReflectionResponseSchema, V1alphaResponseSchema, answer);
          }
        },
      });
}

function convert<From extends DescMessage, To extends DescMessage>(
  from: From,
  to: To,
  message: MessageShape<From>,
): MessageShape<To> {
  return fromBinary(to, toBinary(from, message));
}
