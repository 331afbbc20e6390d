import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
} from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../../src/gen/keyward/replication/v1/replication_pb.js";

/** One received WatchResponse: its exact bytes on the wire and its decoded form. */
export interface Received {
  readonly bytes: Buffer;
  readonly message: WatchResponse;
}

/**
 * A simulated replica: its own HTTP/2 connection running the real Watch
 * protocol (gRPC framing, the bearer token), recording every message exactly
 * as it arrived. It applies nothing; `pause()` stops reading, as a replica
 * whose disk or CPU cannot keep up would.
 */
export class WatchClient {
  readonly received: Received[] = [];
  /** The gRPC status and message from the trailers (or trailers-only headers), once the call ended. */
  status: { code: number; message: string } | undefined;
  readonly #session: ClientHttp2Session;
  readonly #stream: ClientHttp2Stream;
  #pending: Buffer = Buffer.alloc(0);

  constructor(url: string, token: string, fromSequence = 0) {
    this.#session = connect(url);
    this.#session.on("error", () => undefined);
    this.#stream = this.#session.request({
      ":method": "POST",
      ":path": "/keyward.replication.v1.ReplicationService/Watch",
      "content-type": "application/grpc+proto",
      te: "trailers",
      authorization: `Bearer ${token}`,
    });
    this.#stream.on("error", () => undefined);
    const body = toBinary(
      WatchRequestSchema,
      create(WatchRequestSchema, { fromSequence: BigInt(fromSequence) }),
    );
    const framed = Buffer.alloc(5 + body.length);
    framed.writeUInt32BE(body.length, 1);
    framed.set(body, 5);
    this.#stream.end(framed);
    const onStatus = (headers: IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) {
        this.status = {
          code: Number(headers["grpc-status"]),
          message: decodeURIComponent(String(headers["grpc-message"] ?? "")),
        };
      }
    };
    this.#stream.on("response", onStatus);
    this.#stream.on("trailers", onStatus);
    this.#stream.on("data", (chunk: Buffer) => this.#take(chunk));
  }

  /** The sequence of the last complete snapshot received, or undefined. */
  get snapshotSequence(): number | undefined {
    for (let i = this.received.length - 1; i >= 0; i--) {
      const event = this.received[i]?.message.event;
      if (event?.case === "snapshot" && event.value.last) return Number(event.value.sequence);
    }
    return undefined;
  }

  /** Every change received, in arrival order. */
  changes(): Received[] {
    return this.received.filter((r) => r.message.event.case === "change");
  }

  /** The newest change sequence received (0 before any). */
  get lastChange(): number {
    const changes = this.changes();
    const last = changes[changes.length - 1]?.message.event;
    return last?.case === "change" ? Number(last.value.sequence) : 0;
  }

  get closed(): boolean {
    return this.#stream.closed;
  }

  /** Stops reading: the primary's writes fill this stream's HTTP/2 window, then wait. */
  pause(): void {
    this.#stream.pause();
  }

  resume(): void {
    this.#stream.resume();
  }

  close(): void {
    this.#stream.close();
    this.#session.close();
  }

  #take(chunk: Buffer): void {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (this.#pending.length >= 5) {
      const length = this.#pending.readUInt32BE(1);
      if (this.#pending.length < 5 + length) break;
      const bytes = Buffer.from(this.#pending.subarray(5, 5 + length));
      this.received.push({ bytes, message: fromBinary(WatchResponseSchema, bytes) });
      this.#pending = this.#pending.subarray(5 + length);
    }
  }
}
