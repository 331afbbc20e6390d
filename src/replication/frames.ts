import { promisify } from "node:util";
import { constants, gzip } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  type KeyRow as KeyRowMessage,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/keyward/replication/v1/replication_pb.js";
import { type ReplicatedRow, rowToProto } from "./rows.js";

/**
 * One WatchResponse as a gRPC length-prefixed message (flag byte 0, 4-byte
 * big-endian length, the protobuf bytes): exactly what goes on the wire, so
 * the one Buffer is written to every replica's stream as it is.
 */
export function frame(message: WatchResponse): Buffer {
  const body = toBinary(WatchResponseSchema, message);
  const framed = Buffer.allocUnsafe(5 + body.length);
  framed[0] = 0;
  framed.writeUInt32BE(body.length, 1);
  framed.set(body, 5);
  return framed;
}

const gzipAsync = promisify(gzip);

/**
 * The same message as `framed`, gzip-compressed (flag byte 1): what a
 * replica that sent `grpc-accept-encoding: gzip` is given for a snapshot
 * chunk. Level 1: a snapshot chunk shrinks to ~36 % at level 1 and ~35 % at
 * level 6, at under half the cost; zlib runs on libuv's pool, off the event loop.
 */
export async function gzipFrame(framed: Buffer): Promise<Buffer> {
  const body = await gzipAsync(framed.subarray(5), { level: constants.Z_BEST_SPEED });
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 1;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

/** One committed change: the key's row after it, or its deletion when the row is gone. */
export function changeFrame(
  sequence: number,
  keyId: string,
  row: ReplicatedRow | undefined,
  ackRequested = false,
): Buffer {
  return frame(
    create(WatchResponseSchema, {
      event: {
        case: "change",
        value: {
          sequence: BigInt(sequence),
          keyId,
          row: row ? rowToProto(row) : undefined,
          deleted: row === undefined,
          ackRequested,
        },
      },
    }),
  );
}

/** A chunk of a snapshot as of `sequence`. */
export function snapshotFrame(
  sequence: number,
  rows: KeyRowMessage[],
  first: boolean,
  last: boolean,
): Buffer {
  return frame(
    create(WatchResponseSchema, {
      event: { case: "snapshot", value: { sequence: BigInt(sequence), rows, first, last } },
    }),
  );
}

/** "Nothing changed; the newest sequence is `sequence`", stamped now. */
export function heartbeatFrame(sequence: number): Buffer {
  return frame(
    create(WatchResponseSchema, {
      event: { case: "heartbeat", value: { sequence: BigInt(sequence), at: timestampNow() } },
    }),
  );
}

/**
 * Reads one length-prefixed message from the start of `data` (an unary
 * request body); undefined when it is incomplete, compressed or longer than
 * `maxBytes`.
 */
export function unframe(data: Buffer, maxBytes: number): Uint8Array | undefined {
  if (data.length < 5 || data[0] !== 0) return undefined;
  const length = data.readUInt32BE(1);
  if (length > maxBytes || data.length < 5 + length) return undefined;
  return data.subarray(5, 5 + length);
}
