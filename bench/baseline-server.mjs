// The baseline: a Check server that does nothing. Same transport as keyward
// (@grpc/grpc-js), same codec (@bufbuild/protobuf with keyward's generated
// schemas): it decodes every CheckRequest and answers a constant OK
// CheckResponse, encoded per call as keyward encodes its own. Prints one JSON
// line `{"msg":"baseline started","ports":{"check":N}}` to stderr. It tunes
// V8's heap as keyward's bin does (src/lib/heap-tuning.ts), so that both run
// under the same V8 however they are started.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  CheckRequestSchema,
  CheckResponseSchema,
} from "../dist/gen/envoy/service/auth/v3/external_auth_pb.js";
import { tuneHeap } from "../dist/lib/heap-tuning.js";

tuneHeap();

const asBuffer = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const OK = create(CheckResponseSchema, {
  status: { code: 0 },
  httpResponse: { case: "okResponse", value: {} },
});

const check = {
  path: "/envoy.service.auth.v3.Authorization/Check",
  requestStream: false,
  responseStream: false,
  requestSerialize: (message) => asBuffer(toBinary(CheckRequestSchema, message)),
  requestDeserialize: (bytes) => fromBinary(CheckRequestSchema, bytes),
  responseSerialize: (message) => asBuffer(toBinary(CheckResponseSchema, message)),
  responseDeserialize: (bytes) => fromBinary(CheckResponseSchema, bytes),
};

const server = new grpc.Server();
server.addService({ Check: check }, { Check: (_call, callback) => callback(null, OK) });
const port = Number(process.env.BASELINE_PORT ?? 0);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
  if (error) {
    process.stderr.write(`${JSON.stringify({ msg: "baseline failed", error: error.message })}\n`);
    process.exit(1);
  }
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), msg: "baseline started", ports: { check: bound } })}\n`,
  );
});
const stop = () => server.tryShutdown(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
