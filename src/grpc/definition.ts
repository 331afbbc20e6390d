import {
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

/** How one side of a method turns messages into bytes and back. */
export interface Codec<T> {
  serialize(message: T): Buffer;
  deserialize(bytes: Buffer): T;
}

/** The protobuf-es codec of a message schema: `toBinary` and `fromBinary`, no copies. */
export function schemaCodec<Desc extends DescMessage>(schema: Desc): Codec<MessageShape<Desc>> {
  return {
    serialize: (message) => asBuffer(toBinary(schema, message)),
    deserialize: (bytes) => fromBinary(schema, bytes),
  };
}

/** Codecs that replace a method's schema codecs, e.g. to pass pre-encoded responses through. */
export interface MethodCodecs<Req = unknown, Res = unknown> {
  readonly request?: Codec<Req>;
  readonly response?: Codec<Res>;
}

/**
 * The grpc-js definition of a method, read from its protobuf-es descriptor:
 * path `/<package.Service>/<Method>`, streaming from the method kind, codecs
 * from the input and output schemas unless `codecs` replaces them.
 */
export function grpcMethod<Req = unknown, Res = unknown>(
  method: DescMethod,
  codecs: MethodCodecs<Req, Res> = {},
): grpc.MethodDefinition<Req, Res> {
  const request = codecs.request ?? (schemaCodec(method.input) as unknown as Codec<Req>);
  const response = codecs.response ?? (schemaCodec(method.output) as unknown as Codec<Res>);
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream:
      method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream:
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: request.serialize,
    requestDeserialize: request.deserialize,
    responseSerialize: response.serialize,
    responseDeserialize: response.deserialize,
    originalName: method.localName,
  };
}

/**
 * The grpc-js definition of a whole service, keyed by method name as
 * `server.addService` and `grpc.makeGenericClientConstructor` expect it.
 * `codecs` replaces the schema codecs of the methods it names.
 */
export function grpcService(
  service: DescService,
  codecs: Readonly<Record<string, MethodCodecs>> = {},
): grpc.ServiceDefinition {
  return Object.fromEntries(
    service.methods.map((method) => [method.name, grpcMethod(method, codecs[method.name])]),
  );
}

/** A protobuf-es Uint8Array as a Buffer without copying it. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
