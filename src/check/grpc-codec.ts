import type * as grpc from "@grpc/grpc-js";

interface Codec<T> {
  serialize(message: T): Buffer;
  deserialize(bytes: Buffer): T;
}

/** A grpc-js method definition whose messages go through protobuf-es codecs. */
export function unaryMethod<Req, Res>(
  path: string,
  request: Codec<Req>,
  response: Codec<Res>,
): grpc.MethodDefinition<Req, Res> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: request.serialize,
    requestDeserialize: request.deserialize,
    responseSerialize: response.serialize,
    responseDeserialize: response.deserialize,
  };
}

/** A protobuf-es Uint8Array as a Buffer without copying it. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
