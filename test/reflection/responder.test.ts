import { create, createFileRegistry, type MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { file_grpc_health_v1_health } from "../../src/gen/grpc/health/v1/health_pb.js";
import { ServerReflectionRequestSchema } from "../../src/gen/grpc/reflection/v1/reflection_pb.js";
import { createReflectionResponder } from "../../src/reflection/responder.js";

// keyward's own files declare no extensions; this proto2 file does, so that
// the extension answers are exercised too. The transports are covered by the
// server tests beside this one.
const extended = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "ext/v1/ext.proto",
    package: "ext.v1",
    syntax: "proto2",
    messageType: [{ name: "Base", extensionRange: [{ start: 100, end: 200 }] }],
    extension: [
      {
        name: "note",
        number: 100,
        label: FieldDescriptorProto_Label.OPTIONAL,
        type: FieldDescriptorProto_Type.STRING,
        extendee: ".ext.v1.Base",
        jsonName: "note",
      },
    ],
  }),
  () => undefined,
).getFile("ext/v1/ext.proto");

const respond = createReflectionResponder({
  files: [file_grpc_health_v1_health, ...(extended ? [extended] : [])],
});
const ask = (
  messageRequest: MessageInitShape<typeof ServerReflectionRequestSchema>["messageRequest"],
) => respond(create(ServerReflectionRequestSchema, { messageRequest })).messageResponse;
const fileAnswered = (response: ReturnType<typeof ask>) =>
  response.case === "fileDescriptorResponse" ? response.value.fileDescriptorProto.length : 0;

describe("reflection responder", () => {
  it("finds fields and enum values, scoped as protoc scopes them", () => {
    expect(
      fileAnswered(
        ask({ case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckRequest.service" }),
      ),
    ).toBe(1);
    expect(
      fileAnswered(
        ask({ case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckResponse.SERVING" }),
      ),
    ).toBe(1);
    expect(ask({ case: "fileContainingSymbol", value: ".grpc.health.v1.Health" })).toMatchObject({
      case: "errorResponse",
      value: { errorCode: Code.NotFound },
    });
  });

  it("answers extensions of a message that has them", () => {
    expect(
      fileAnswered(
        ask({
          case: "fileContainingExtension",
          value: { containingType: "ext.v1.Base", extensionNumber: 100 },
        }),
      ),
    ).toBe(1);
    expect(ask({ case: "allExtensionNumbersOfType", value: "ext.v1.Base" })).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "ext.v1.Base", extensionNumber: [100] },
    });
    expect(
      ask({
        case: "fileContainingExtension",
        value: { containingType: "ext.v1.Base", extensionNumber: 101 },
      }),
    ).toMatchObject({ case: "errorResponse", value: { errorCode: Code.NotFound } });
  });

  it("answers a request with no message_request set with INVALID_ARGUMENT", () => {
    expect(ask({ case: undefined })).toMatchObject({
      case: "errorResponse",
      value: { errorCode: Code.InvalidArgument },
    });
  });
});
