import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
} from "node:http2";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../../src/gen/keyward/replication/v1/replication_pb.js";

/** One received WatchResponse: its exact bytes (inflated when it came compressed) and its decoded form. */
export interface Received {
  readonly bytes: Buffer;
  readonly message: WatchResponse;
  /** It came gzip-compressed (gRPC flag byte 1). */
  readonly compressed: boolean;
}

/** How a {@link WatchClient} talks to the primary. */
export interface WatchClientOptions {
  /** Sent as `grpc-accept-encoding` (a real replica's client sends "gzip, br"); default: none. */
  readonly acceptEncoding?: string;
  /** HTTP/2 stream and connection window to open; default: HTTP/2's 64 KiB. */
  readonly windowBytes?: number;
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
  /** The response headers, once they arrived. */
  headers: IncomingHttpHeaders | undefined;
  /** Bytes of stream data received (read or buffered by the client). */
  bytes = 0;
  readonly #session: ClientHttp2Session;
  readonly #stream: ClientHttp2Stream;
  #pending: Buffer = Buffer.alloc(0);

  constructor(url: string, token: string, fromSequence = 0, options: WatchClientOptions = {}) {
    const window = options.windowBytes;
    this.#session = connect(url, window ? { settings: { initialWindowSize: window } } : {});
    this.#session.on("error", () => undefined);
    if (window) this.#session.once("connect", () => this.#session.setLocalWindowSize(window));
    this.#stream = this.#session.request({
      ":method": "POST",
      ":path": "/keyward.replication.v1.ReplicationService/Watch",
      "content-type": "application/grpc+proto",
      te: "trailers",
      authorization: `Bearer ${token}`,
      ...(options.acceptEncoding && { "grpc-accept-encoding": options.acceptEncoding }),
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
    this.#stream.on("response", (headers) => {
      this.headers = headers;
      onStatus(headers);
    });
    this.#stream.on("trailers", onStatus);
    this.#stream.on("data", (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.#take(chunk);
    });
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

  /** Bytes that arrived but were not read (a paused client's buffer). */
  get unread(): number {
    return this.#stream.readableLength;
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
      const compressed = this.#pending[0] === 1;
      const wire = this.#pending.subarray(5, 5 + length);
      const bytes = compressed ? gunzipSync(wire) : Buffer.from(wire);
      this.received.push({ bytes, compressed, message: fromBinary(WatchResponseSchema, bytes) });
      this.#pending = this.#pending.subarray(5 + length);
    }
  }
}
