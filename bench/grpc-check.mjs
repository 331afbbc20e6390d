// CheckRequest bodies and CheckResponse decoding for the bench, built with the
// same protobuf-es schemas keyward serves (compiled to dist/ by `npm run build`).
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  CheckRequestSchema,
  CheckResponseSchema,
} from "../dist/gen/envoy/service/auth/v3/external_auth_pb.js";

/** The ext_authz method every load run calls. */
export const CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check";

/** Wraps a protobuf message in one gRPC length-prefixed frame (uncompressed). */
export function grpcFrame(message) {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/**
 * The request a researcher's JWT makes: a Chronicle run route. The shipped
 * policy admits JWTs (of `role: researcher` issuers) there, and only
 * `sk_live_` keys on the Developer API's `GET /api/v1/sources`.
 */
export const JWT_REQUEST = { method: "GET", path: "/experiments/exp-1/variations/1/runs/1" };

/**
 * A gRPC-framed CheckRequest shaped like the one Envoy sends for
 * `GET /api/v1/sources` (a handful of ordinary headers, ~400 bytes), with the
 * given bearer token. Required scopes come from deploy/policy.yaml, or from
 * `contextExtensions.required_scopes` as an Envoy route's per-route
 * `check_settings.context_extensions` sends them.
 */
export function checkRequestBody(
  token,
  { method = "GET", path = "/api/v1/sources", contextExtensions = {} } = {},
) {
  const headers = {
    ":authority": "api.example.com",
    ":method": method,
    ":path": path,
    ":scheme": "https",
    accept: "application/json",
    "user-agent": "keyward-bench/1.0",
    "x-forwarded-proto": "https",
    "x-request-id": "8f0e6a52-5c1d-4b6e-9a43-2f1e7d0c9b11",
  };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const request = create(CheckRequestSchema, {
    attributes: {
      source: {
        address: {
          address: {
            case: "socketAddress",
            value: { address: "10.0.3.17", portSpecifier: { case: "portValue", value: 51512 } },
          },
        },
      },
      destination: {
        address: {
          address: {
            case: "socketAddress",
            value: { address: "10.0.0.5", portSpecifier: { case: "portValue", value: 8080 } },
          },
        },
      },
      request: {
        http: {
          id: "10829475631954807321",
          method,
          headers,
          path,
          host: "api.example.com",
          scheme: "https",
          protocol: "HTTP/1.1",
        },
      },
      contextExtensions,
    },
  });
  return grpcFrame(toBinary(CheckRequestSchema, request));
}

/**
 * Decodes a gRPC response body (one frame) into the decision it carries:
 * `allow`, or the deny's error code (keyward puts it in `status.message`).
 */
export function decisionOf(body) {
  if (body.length < 5) throw new Error(`gRPC response of ${body.length} bytes has no frame`);
  const length = body.readUInt32BE(1);
  const response = fromBinary(CheckResponseSchema, body.subarray(5, 5 + length));
  const code = response.status?.code ?? 0;
  if (code === 0 && response.httpResponse.case !== "deniedResponse") return "allow";
  let error = response.status?.message || `grpc_code_${code}`;
  if (response.httpResponse.case === "deniedResponse") {
    try {
      error = JSON.parse(response.httpResponse.value.body).error ?? error;
    } catch {
      // keep status.message
    }
  }
  return error;
}

/**
 * Sends one Check on an open HTTP/2 session and resolves with its decision;
 * rejects unless the gRPC status is 0 (a deny is still OK with a decision).
 */
export function checkOn(session, body) {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": CHECK_PATH,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks = [];
    let grpcStatus;
    stream.on("data", (chunk) => chunks.push(chunk));
    stream.on("trailers", (trailers) => {
      grpcStatus = trailers["grpc-status"];
    });
    stream.on("error", reject);
    stream.on("end", () => {
      if (grpcStatus !== "0") {
        reject(new Error(`gRPC status ${grpcStatus} (expected 0 with a decision in the body)`));
        return;
      }
      try {
        resolve(decisionOf(Buffer.concat(chunks)));
      } catch (error) {
        reject(error);
      }
    });
    stream.end(body);
  });
}

/** Sends one Check over a fresh HTTP/2 connection and returns its decision. */
export function checkOnce(port, body) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    session.on("error", reject);
    checkOn(session, body).then(resolve, reject);
  }).finally(() => session.close());
}
