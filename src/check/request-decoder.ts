import { fromBinary, type JsonObject } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { MetadataSchema } from "../gen/envoy/config/core/v3/base_pb.js";

/** One `header_map` entry (Envoy's `encode_raw_headers`). */
export interface HeaderEntry {
  readonly key: string;
  readonly value: string;
  readonly rawValue: Uint8Array;
}

/**
 * The parts of a CheckRequest that keyward reads, shaped like the generated
 * message (a decoded `CheckRequest` is one), so the request view is built
 * the same way from either.
 */
export interface CheckRequestFields {
  readonly attributes?: {
    readonly source?: {
      readonly address?: { readonly socketAddress?: { readonly address: string } };
    };
    readonly request?: {
      readonly http?: {
        readonly method: string;
        readonly path: string;
        readonly headers: { readonly [name: string]: string };
        readonly headerMap?: { readonly headers: readonly HeaderEntry[] };
      };
    };
    readonly contextExtensions: { readonly [key: string]: string };
    readonly metadataContext?: { readonly filterMetadata: { [namespace: string]: JsonObject } };
    readonly routeMetadataContext?: {
      readonly filterMetadata: { [namespace: string]: JsonObject };
    };
  };
}

// The same shapes, mutable while decoding.
type Socket = { address: string };
type Peer = { address?: { socketAddress?: Socket } };
type Http = {
  method: string;
  path: string;
  headers: { [name: string]: string };
  headerMap?: { headers: HeaderEntry[] };
};
type Metadata = { filterMetadata: { [namespace: string]: JsonObject } };
type Attributes = {
  source?: Peer;
  request?: { http?: Http };
  contextExtensions: { [key: string]: string };
  metadataContext?: Metadata;
  routeMetadataContext?: Metadata;
};

const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/**
 * Decodes a CheckRequest's bytes into the fields keyward reads, skipping the
 * rest without building it (the destination peer, timestamps, host, scheme,
 * body...). Decoding every field by reflection was the largest part of a
 * Check's own work (bench/NOTES.md, eighth round).
 *
 * It follows protobuf's rules exactly as `fromBinary(CheckRequestSchema)`
 * applies them to keyward's schema (proto/envoy/..., test/check/
 * request-decoder.test.ts compares the two on generated and concatenated
 * encodings): a message field seen twice is merged, a scalar's last value
 * wins, a map entry's last value wins per key, missing map keys and values
 * are their zero values, strings are decoded leniently (utf8_validation NONE),
 * and a known field is read by its declared type whatever the wire type.
 * Route and filter metadata (Struct values) are decoded by protobuf-es
 * itself. Truncated input throws, as fromBinary does.
 */
export function decodeCheckRequest(bytes: Uint8Array): CheckRequestFields {
  const reader = new BinaryReader(bytes);
  let attributes: Attributes | undefined;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      attributes ??= { contextExtensions: {} };
      readAttributes(reader, attributes, end(reader));
    } else reader.skip(wireType, field);
  }
  return attributes === undefined ? {} : { attributes };
}

/** Reads a length prefix; the position where the message it announces ends. */
function end(reader: BinaryReader): number {
  const length = reader.uint32();
  return reader.pos + length;
}

function readAttributes(reader: BinaryReader, into: Attributes, until: number): void {
  while (reader.pos < until) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
        into.source ??= {};
        readPeer(reader, into.source, end(reader));
        break;
      case 4:
        into.request ??= {};
        readRequest(reader, into.request, end(reader));
        break;
      case 10:
        readStringMapEntry(reader, into.contextExtensions);
        break;
      case 11:
        into.metadataContext = readMetadata(reader, into.metadataContext);
        break;
      case 13:
        into.routeMetadataContext = readMetadata(reader, into.routeMetadataContext);
        break;
      default:
        reader.skip(wireType, field);
    }
  }
}

/** Peer { address = 1: Address { socket_address = 1: SocketAddress { address = 2 } } } */
function readPeer(reader: BinaryReader, peer: Peer, until: number): void {
  while (reader.pos < until) {
    const [field, wireType] = reader.tag();
    if (field !== 1) {
      reader.skip(wireType, field);
      continue;
    }
    peer.address ??= {};
    const address = peer.address;
    const addressEnd = end(reader);
    while (reader.pos < addressEnd) {
      const [inner, innerWireType] = reader.tag();
      if (inner !== 1) {
        reader.skip(innerWireType, inner);
        continue;
      }
      address.socketAddress ??= { address: "" };
      const socket = address.socketAddress;
      const socketEnd = end(reader);
      while (reader.pos < socketEnd) {
        const [leaf, leafWireType] = reader.tag();
        if (leaf === 2) socket.address = reader.string();
        else reader.skip(leafWireType, leaf);
      }
    }
  }
}

function readRequest(reader: BinaryReader, request: { http?: Http }, until: number): void {
  while (reader.pos < until) {
    const [field, wireType] = reader.tag();
    if (field !== 2) {
      reader.skip(wireType, field);
      continue;
    }
    request.http ??= { method: "", path: "", headers: {} };
    const http = request.http;
    const httpEnd = end(reader);
    while (reader.pos < httpEnd) {
      const [inner, innerWireType] = reader.tag();
      switch (inner) {
        case 2:
          http.method = reader.string();
          break;
        case 3:
          readStringMapEntry(reader, http.headers);
          break;
        case 4:
          http.path = reader.string();
          break;
        case 13:
          http.headerMap ??= { headers: [] };
          readHeaderMap(reader, http.headerMap.headers, end(reader));
          break;
        default:
          reader.skip(innerWireType, inner);
      }
    }
  }
}

function readHeaderMap(reader: BinaryReader, headers: HeaderEntry[], until: number): void {
  while (reader.pos < until) {
    const [field, wireType] = reader.tag();
    if (field !== 1) {
      reader.skip(wireType, field);
      continue;
    }
    const entry = { key: "", value: "", rawValue: EMPTY_BYTES };
    const entryEnd = end(reader);
    while (reader.pos < entryEnd) {
      const [inner, innerWireType] = reader.tag();
      if (inner === 1) entry.key = reader.string();
      else if (inner === 2) entry.value = reader.string();
      else if (inner === 3) entry.rawValue = reader.bytes();
      else reader.skip(innerWireType, inner);
    }
    headers.push(entry);
  }
}

/**
 * One map<string, string> entry. As protobuf-es reads map entries, a field
 * other than the key (1) and the value (2) is not skipped: only its tag is
 * consumed.
 */
function readStringMapEntry(reader: BinaryReader, map: { [key: string]: string }): void {
  const entryEnd = end(reader);
  let key = "";
  let value = "";
  while (reader.pos < entryEnd) {
    const [field] = reader.tag();
    if (field === 1) key = reader.string();
    else if (field === 2) value = reader.string();
  }
  map[key] = value;
}

/** A Metadata message, merged into what an earlier occurrence held. */
function readMetadata(reader: BinaryReader, into: Metadata | undefined): Metadata {
  const decoded = fromBinary(MetadataSchema, reader.bytes());
  if (into === undefined) return { filterMetadata: decoded.filterMetadata };
  Object.assign(into.filterMetadata, decoded.filterMetadata);
  return into;
}
