import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import {
  create,
  createFileRegistry,
  type FileRegistry,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

// The reflection client is built from gRPC's canonical reflection.proto
// (shipped by @grpc/reflection), never from keyward's copy, so that the tests
// prove wire compatibility with what grpcurl and friends send.
const require = createRequire(import.meta.url);
const protoRoot = join(dirname(require.resolve("@grpc/reflection")), "..", "proto");

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export type ReflectionVersion = "v1" | "v1alpha";

const clients = Object.fromEntries(
  (["v1", "v1alpha"] as const).map((version) => {
    const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
      ...LOADER_OPTIONS,
      includeDirs: [protoRoot],
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: {
        reflection: Record<ReflectionVersion, { ServerReflection: grpc.ServiceClientConstructor }>;
      };
    };
    return [version, loaded.grpc.reflection[version].ServerReflection];
  }),
) as Record<ReflectionVersion, grpc.ServiceClientConstructor>;

/** A ServerReflectionRequest as proto-loader takes it (snake_case, one request field set). */
export type ReflectionRequest = { host?: string } & (
  | { list_services: string }
  | { file_by_filename: string }
  | { file_containing_symbol: string }
  | { file_containing_extension: { containing_type: string; extension_number: number } }
  | { all_extension_numbers_of_type: string }
);

/** A ServerReflectionResponse as proto-loader decodes it. */
export interface ReflectionResponse {
  valid_host: string;
  original_request: Record<string, unknown> | null;
  message_response:
    | "file_descriptor_response"
    | "all_extension_numbers_response"
    | "list_services_response"
    | "error_response";
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}

/** A canonical grpc.reflection client for one protocol version. */
export class ReflectionClient {
  readonly #client: grpc.Client;

  constructor(port: number, version: ReflectionVersion) {
    this.#client = new clients[version](`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  /** Sends every request on one ServerReflectionInfo stream, half-closes, and collects the answers. */
  session(requests: ReflectionRequest[]): Promise<ReflectionResponse[]> {
    const call = (
      this.#client as unknown as {
        ServerReflectionInfo(): grpc.ClientDuplexStream<ReflectionRequest, ReflectionResponse>;
      }
    ).ServerReflectionInfo();
    const responses: ReflectionResponse[] = [];
    return new Promise((resolve, reject) => {
      call.on("data", (response: ReflectionResponse) => responses.push(response));
      call.on("error", reject);
      call.on("end", () => resolve(responses));
      for (const request of requests) call.write(request);
      call.end();
    });
  }

  /** One request, one answer. */
  async ask(request: ReflectionRequest): Promise<ReflectionResponse> {
    const [response] = await this.session([request]);
    if (!response) throw new Error("no reflection response");
    return response;
  }

  async listServices(): Promise<string[]> {
    const response = await this.ask({ list_services: "" });
    return (response.list_services_response?.service ?? []).map((s) => s.name);
  }

  close(): void {
    this.#client.close();
  }
}

/** The FileDescriptorProtos of a file_descriptor_response, decoded. */
export function descriptorsOf(response: ReflectionResponse): FileDescriptorProto[] {
  const files = response.file_descriptor_response?.file_descriptor_proto;
  if (!files) throw new Error(`expected file descriptors, got ${response.message_response}`);
  return files.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

/**
 * A proto-loader package definition built only from reflected descriptors,
 * as a reflection-based tool builds its client. protobufjs parses the set,
 * independently of the protobuf-es code that encoded it.
 */
export function packageFromDescriptors(
  files: FileDescriptorProto[],
): protoLoader.PackageDefinition {
  const set = toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
  return protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(set), LOADER_OPTIONS);
}

/**
 * A protobuf-es registry of reflected descriptors, resolving imports by name
 * as a reflection client does. The answer lists the file asked for first, so
 * the files are put in a FileDescriptorSet's dependencies-first order here
 * (createFileRegistry's resolver form mis-orders shared imports). Throws when
 * an import or a referenced type is missing.
 */
export function registryOf(files: FileDescriptorProto[]): FileRegistry {
  const byName = new Map(files.map((file) => [file.name, file]));
  const ordered = new Map<string, FileDescriptorProto>();
  const visit = (name: string, importer: string) => {
    const file = byName.get(name);
    if (!file) throw new Error(`${importer} imports ${name}, which was not sent`);
    if (ordered.has(name)) return;
    for (const dependency of file.dependency) visit(dependency, name);
    ordered.set(name, file);
  };
  for (const file of files) visit(file.name, "the answer");
  return createFileRegistry(create(FileDescriptorSetSchema, { file: [...ordered.values()] }));
}
