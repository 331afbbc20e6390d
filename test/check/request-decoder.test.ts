import { create, fromBinary, type JsonValue, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type CheckRequestFields, decodeCheckRequest } from "../../src/check/request-decoder.js";
import { viewOfCheckRequest } from "../../src/check/request-view.js";
import {
  type CheckRequest,
  CheckRequestSchema,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";

// The fast decoder must read exactly what protobuf-es's fromBinary reads
// from the same bytes: every field the request view uses, under protobuf's
// merge rules. Fixed seed, so a failure reproduces (FC_SEED explores).
const SEED = Number(process.env.FC_SEED ?? 0x6b657977);
const RUNS = 2_000;
const NAMESPACE = "keyward";

/** Everything keyward reads from a request, as plain data. */
function facts(request: CheckRequestFields) {
  const a = request.attributes;
  const http = a?.request?.http;
  return {
    view: viewOfCheckRequest(request, "x-auth-", NAMESPACE),
    method: http?.method,
    path: http?.path,
    headers: http && { ...http.headers },
    headerMap: http?.headerMap?.headers.map((h) => [h.key, h.value, [...h.rawValue]]),
    contextExtensions: a && { ...a.contextExtensions },
    metadata: a?.metadataContext?.filterMetadata,
    routeMetadata: a?.routeMetadataContext?.filterMetadata,
    source: a?.source?.address?.socketAddress?.address,
    hasSource: a?.source !== undefined,
    hasRequest: a?.request !== undefined,
  };
}

const text = fc.oneof(
  fc.constantFrom("", "GET", "POST", "/api/v1/sources", "sources:read runs:read", "keyward"),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 8 }),
);
const headerName = fc.oneof(
  fc.constantFrom("authorization", "x-auth-tenant", "X-Auth-Role", "traceparent", "tracestate"),
  fc.string({ maxLength: 10 }),
);
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 10 }),
  fc.constant(new Uint8Array([0xff, 0xfe, 0x41])), // not UTF-8
);
const jsonValue: fc.Arbitrary<JsonValue> = fc.oneof(
  text,
  fc.array(text, { maxLength: 3 }),
  fc.integer({ min: -5, max: 5 }),
  fc.boolean(),
  fc.constant(null),
);
const metadata = fc.option(
  fc.record({
    filterMetadata: fc.dictionary(
      fc.constantFrom(NAMESPACE, "other"),
      fc.dictionary(fc.constantFrom("required_scopes", "x"), jsonValue, { maxKeys: 2 }),
      { maxKeys: 2 },
    ),
  }),
  { nil: undefined },
);

/** A CheckRequest with any of the fields keyward reads and several it skips. */
const requestArb: fc.Arbitrary<CheckRequest> = fc
  .record({
    source: fc.option(fc.record({ address: text, service: text }), { nil: undefined }),
    destination: fc.option(text, { nil: undefined }),
    http: fc.option(
      fc.record({
        id: text,
        method: text,
        path: text,
        host: text,
        body: text,
        rawBody: bytes,
        size: fc.bigInt({ min: -5n, max: 1n << 40n }),
        headers: fc.dictionary(headerName, text, { maxKeys: 5 }),
        headerMap: fc.option(
          fc.array(fc.record({ key: headerName, value: text, rawValue: bytes }), { maxLength: 5 }),
          { nil: undefined },
        ),
      }),
      { nil: undefined },
    ),
    time: fc.option(fc.integer({ min: 0, max: 2 ** 31 }), { nil: undefined }),
    contextExtensions: fc.dictionary(fc.constantFrom("required_scopes", "x", ""), text, {
      maxKeys: 2,
    }),
    metadataContext: metadata,
    routeMetadataContext: metadata,
    empty: fc.boolean(),
  })
  .map((r) =>
    create(CheckRequestSchema, {
      attributes: r.empty
        ? undefined
        : {
            source: r.source && {
              address: { socketAddress: { address: r.source.address, portValue: 8443 } },
              service: r.source.service,
              labels: { app: r.source.service },
            },
            destination: r.destination === undefined ? undefined : { principal: r.destination },
            request: {
              time: r.time === undefined ? undefined : { seconds: BigInt(r.time) },
              http: r.http && {
                ...r.http,
                headerMap: r.http.headerMap && { headers: r.http.headerMap },
              },
            },
            contextExtensions: r.contextExtensions,
            metadataContext: r.metadataContext,
            routeMetadataContext: r.routeMetadataContext,
          },
    }),
  );

/** Fields of numbers the schema does not know, with every wire type. */
const unknownFields = fc.constantFrom(
  new Uint8Array([]),
  new Uint8Array([0xf8, 0x06, 0x2a]), // field 111, varint 42
  new Uint8Array([0xfa, 0x06, 0x02, 0x68, 0x69]), // field 111, bytes "hi"
  new Uint8Array([0xfd, 0x06, 1, 2, 3, 4]), // field 111, fixed32
  new Uint8Array([0xf9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]), // field 111, fixed64
);

function bothWays(encoded: Uint8Array): void {
  const reference = fromBinary(CheckRequestSchema, encoded);
  expect(facts(decodeCheckRequest(encoded))).toEqual(facts(reference));
}

describe("the CheckRequest decoder", () => {
  it("reads what fromBinary reads from any request", () => {
    fc.assert(
      fc.property(requestArb, unknownFields, (request, unknown) => {
        bothWays(new Uint8Array([...toBinary(CheckRequestSchema, request), ...unknown]));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("merges a request sent in pieces as protobuf does (later scalars win, messages merge, maps and lists add up)", () => {
    // Concatenated encodings are one encoding of the merged message.
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 2, maxLength: 3 }), (requests) => {
        bothWays(new Uint8Array(requests.flatMap((r) => [...toBinary(CheckRequestSchema, r)])));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("refuses a truncated request wherever fromBinary refuses it, and agrees wherever both read it", () => {
    fc.assert(
      fc.property(requestArb, fc.nat(), (request, cut) => {
        const full = toBinary(CheckRequestSchema, request);
        const truncated = full.subarray(0, full.length === 0 ? 0 : cut % full.length);
        let reference: CheckRequest | undefined;
        try {
          reference = fromBinary(CheckRequestSchema, truncated);
        } catch {
          expect(() => decodeCheckRequest(truncated)).toThrow();
          return;
        }
        // fromBinary read it: the fast decoder, which skips more, reads it too.
        expect(facts(decodeCheckRequest(truncated))).toEqual(facts(reference));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
