import { create, type DescFile, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  file_grpc_reflection_v1_reflection,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Options for {@link createReflectionResponder} and the transport adapters. */
export interface ReflectionOptions {
  /**
   * The generated files (`file_…` from src/gen) that declare the services
   * this server serves. list_services names every service they declare, so
   * pass only files whose services are served. Their transitive dependencies,
   * well-known types included, are reached through the files themselves and
   * need not be listed. The reflection protocol's own files (v1 and v1alpha)
   * are always added.
   */
  readonly files: readonly DescFile[];
}

/**
 * Answers one ServerReflectionRequest, in the v1 messages (v1alpha is the
 * same wire format; the adapters convert). Never throws: a failed lookup is
 * an `error_response` with a gRPC status code, and the stream goes on.
 */
export type ReflectionResponder = (request: ServerReflectionRequest) => ServerReflectionResponse;

/**
 * Builds the reflection index once (symbols, files and their serialized
 * FileDescriptorProtos), so that answering does no descriptor work:
 *
 * - list_services: the services of `options.files` plus ServerReflection
 *   (v1 and v1alpha);
 * - file_by_filename / file_containing_symbol / file_containing_extension:
 *   the file first, then its transitive dependencies (each sent every time:
 *   the protocol allows skipping files already sent on the stream, never
 *   requires it, and the whole set is a few kilobytes);
 * - all_extension_numbers_of_type: the extension numbers of a known message
 *   (none in keyward's files);
 * - any name, file or extension not known: `error_response` NOT_FOUND (5).
 */
export function createReflectionResponder(options: ReflectionOptions): ReflectionResponder {
  const index = indexFiles([
    ...options.files,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
  const services = [...new Set(index.served.flatMap((file) => file.services))].map(
    (service) => service.typeName,
  );

  return (request) => {
    const reply = (messageResponse: ResponseFields["messageResponse"]) =>
      create(ServerReflectionResponseSchema, {
        validHost: request.host,
        originalRequest: request,
        messageResponse,
      });
    const notFound = (what: string) =>
      reply({
        case: "errorResponse",
        value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
      });
    const descriptors = (file: DescFile | undefined, what: string) =>
      file
        ? reply({
            case: "fileDescriptorResponse",
            value: { fileDescriptorProto: index.descriptorsOf(file) },
          })
        : notFound(what);

    const { messageRequest: ask } = request;
    switch (ask.case) {
      case "listServices":
        return reply({
          case: "listServicesResponse",
          value: { service: services.map((name) => ({ name })) },
        });
      case "fileByFilename":
        return descriptors(index.files.get(ask.value), `file ${ask.value}`);
      case "fileContainingSymbol":
        return descriptors(index.symbols.get(ask.value), `symbol ${ask.value}`);
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = ask.value;
        return descriptors(
          index.extensions.get(containingType)?.get(extensionNumber),
          `extension ${extensionNumber} of ${containingType}`,
        );
      }
      case "allExtensionNumbersOfType": {
        // Unlike file_containing_extension, a known message with no extensions
        // is an answer (an empty list), not an error.
        if (!index.messages.has(ask.value)) return notFound(`message ${ask.value}`);
        const numbers = [...(index.extensions.get(ask.value)?.keys() ?? [])];
        return reply({
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: ask.value, extensionNumber: numbers },
        });
      }
      case undefined:
        return reply({
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "no message_request set" },
        });
    }
  };
}

type ResponseFields = MessageInitShape<typeof ServerReflectionResponseSchema>;

interface ReflectionIndex {
  /** The files given, whose services are listed. */
  readonly served: readonly DescFile[];
  /** Every file reachable from the ones given, by proto path. */
  readonly files: ReadonlyMap<string, DescFile>;
  /** Fully-qualified name (no leading dot) → declaring file. */
  readonly symbols: ReadonlyMap<string, DescFile>;
  readonly messages: ReadonlySet<string>;
  /** Extended message → extension number → declaring file. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, DescFile>>;
  /** The serialized FileDescriptorProtos of a file and its transitive dependencies. */
  descriptorsOf(file: DescFile): Uint8Array[];
}

function indexFiles(given: readonly DescFile[]): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const file of given) visit(file);

  const symbols = new Map<string, DescFile>();
  const messages = new Set<string>();
  const extensions = new Map<string, Map<number, DescFile>>();
  for (const file of files.values()) {
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      switch (type.kind) {
        case "message":
          messages.add(type.typeName);
          for (const field of type.fields) symbols.set(`${type.typeName}.${field.name}`, file);
          break;
        case "enum": {
          // protoc scopes enum values beside their enum, not inside it.
          const scope = type.parent?.typeName ?? file.proto.package;
          for (const value of type.values) {
            symbols.set(scope ? `${scope}.${value.name}` : value.name, file);
          }
          break;
        }
        case "service":
          for (const method of type.methods) symbols.set(`${type.typeName}.${method.name}`, file);
          break;
        case "extension": {
          const byNumber = extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
          byNumber.set(type.number, file);
          extensions.set(type.extendee.typeName, byNumber);
          break;
        }
      }
    }
  }

  const serialized = new Map<DescFile, Uint8Array>();
  for (const file of files.values()) {
    serialized.set(file, toBinary(FileDescriptorProtoSchema, file.proto));
  }
  // The file asked for goes first: clients such as grpcurl read the answer
  // from the first descriptor and the rest as its imports.
  const closure = (file: DescFile, into: Set<DescFile> = new Set()): Set<DescFile> => {
    into.add(file);
    for (const dependency of file.dependencies)
      if (!into.has(dependency)) closure(dependency, into);
    return into;
  };
  const closures = new Map<DescFile, Uint8Array[]>();
  for (const file of files.values()) {
    closures.set(
      file,
      [...closure(file)].map((member) => serialized.get(member) as Uint8Array),
    );
  }

  return {
    served: given,
    files,
    symbols,
    messages,
    extensions,
    descriptorsOf: (file) => closures.get(file) ?? [],
  };
}
