import {
  constants,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Stream,
} from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { WatchRequestSchema } from "../gen/keyward/replication/v1/replication_pb.js";
import { grpcMessage } from "../lib/grpc-message.js";
import type { Logger } from "../lib/log.js";
import type { ChangeFeed, FeedListener } from "./feed.js";
import { unframe } from "./frames.js";
import type { SnapshotCache } from "./snapshots.js";
import { tokenMatches } from "./token.js";

/** The path gRPC clients call Watch on. */
export const WATCH_PATH = "/keyward.replication.v1.ReplicationService/Watch";

/** Options for {@link createWatchHandler}. */
export interface WatchHandlerOptions {
  readonly feed: ChangeFeed;
  readonly snapshots: SnapshotCache;
  readonly token: string;
  readonly logger: Logger;
  /** A stream that takes nothing for this long while it is sent a snapshot or catch-up is reset; default 30 s. */
  readonly stallMs?: number;
}

const GRPC = { UNAUTHENTICATED: 16, INVALID_ARGUMENT: 3, UNAVAILABLE: 14 } as const;

/**
 * Watch served straight on the HTTP/2 stream rather than through
 * connect-node: the shared frames of the change feed and snapshot cache are
 * written to each replica's stream as they are (the same Buffer for every
 * replica), which a Connect handler (it encodes each message it yields)
 * cannot do. Only gRPC over HTTP/2 is served, which is what replicas speak.
 * Returns whether it took the request.
 */
export function createWatchHandler(options: WatchHandlerOptions) {
  const { feed, snapshots, logger: log } = options;
  const stallMs = options.stallMs ?? STALL_MS;

  return (req: Http2ServerRequest, res: Http2ServerResponse): boolean => {
    const headers = req.headers;
    if (headers[":path"] !== WATCH_PATH) return false;
    if (!String(headers["content-type"] ?? "").startsWith("application/grpc")) return false;
    // An unauthenticated client receives nothing: refuse before the first message.
    if (!tokenMatches(headers.authorization ?? null, options.token)) {
      log.warn({ peer: req.socket?.remoteAddress }, "replication watch refused: bad token");
      refuse(res, GRPC.UNAUTHENTICATED, "replication token required");
      return true;
    }
    const body: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 1024) body.push(chunk);
    });
    req.once("end", () => {
      const message = unframe(Buffer.concat(body), 1024);
      let from: number;
      try {
        if (!message) throw new Error("bad frame");
        from = Number(fromBinary(WatchRequestSchema, message).fromSequence);
      } catch {
        refuse(res, GRPC.INVALID_ARGUMENT, "malformed WatchRequest");
        return;
      }
      serve(res, from, acceptsGzip(headers["grpc-accept-encoding"])).catch((error: unknown) => {
        log.warn({ err: error }, "replication stream failed");
        finish(res, GRPC.UNAVAILABLE, "replication stream failed");
      });
    });
    req.on("error", () => undefined);
    return true;
  };

  async function serve(res: Http2ServerResponse, from: number, gzip: boolean): Promise<void> {
    const closed = new AbortController();
    const stream = res.stream;
    stream.once("close", () => closed.abort());
    // Headers straight on the stream; the trailers go through the response
    // object (finish), whose own listener sends them when the stream ends.
    // gRPC message compression: to a replica that accepts gzip the snapshot
    // chunks go compressed (flag 1); changes and heartbeats stay plain (flag 0).
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc+proto",
        ...(gzip && { "grpc-encoding": "gzip" }),
      },
      { waitForTrailers: true },
    );
    const listener: FeedListener = {
      heartbeat(frame) {
        // A stream with data still queued hears from the primary soon enough.
        if (stream.writableLength === 0) stream.write(frame);
      },
    };
    const detach = feed.attach(listener);
    closed.signal.addEventListener("abort", detach, { once: true });

    let sent = from;
    const oldest = feed.oldest();
    const newest = feed.newest();
    const behindLog = oldest !== undefined && sent < oldest - 1;
    const emptyLogGap = oldest === undefined && sent < newest;
    let needSnapshot = sent <= 0 || behindLog || emptyLogGap || sent > feed.sequence;
    if (needSnapshot) log.info({ from, oldest, newest }, "replica needs a snapshot");
    else log.info({ from, newest }, "replica resumes from its sequence");
    for (;;) {
      if (closed.signal.aborted) return;
      if (needSnapshot) {
        const release = await snapshots.slot(closed.signal);
        if (!release) return;
        try {
          const snapshot = await snapshots.get(feed.sequence, feed.oldest());
          const frames = gzip ? snapshot.gzipFrames : snapshot.frames;
          for (const frame of frames) await write(stream, frame, closed.signal, stallMs);
          sent = snapshot.sequence;
        } finally {
          release();
        }
        needSnapshot = false;
        continue;
      }
      // Pull the next batch of shared frames at this replica's own pace: the
      // next is taken only once the previous drained into its connection.
      if (sent >= feed.sequence) {
        await feed.next(sent, closed.signal);
        continue;
      }
      const batch = feed.changesAfter(sent);
      if (!batch) {
        log.info({ at: sent }, "change log compacted under a replica; sending a snapshot");
        needSnapshot = true;
        continue;
      }
      for (const frame of batch.frames) await write(stream, frame, closed.signal, stallMs);
      sent = batch.through;
    }
  }
}

/** Whether a `grpc-accept-encoding` header lists gzip. */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  const list = Array.isArray(header) ? header.join(",") : (header ?? "");
  return list.split(",").some((name) => name.trim().toLowerCase() === "gzip");
}

/** The default of {@link WatchHandlerOptions.stallMs}. */
const STALL_MS = 30_000;

/**
 * Writes one frame, waiting for the stream to drain when its buffer is full;
 * a replica that stops reading for `stallMs` is reset, so it cannot hold a
 * snapshot slot for ever.
 */
async function write(
  stream: ServerHttp2Stream,
  frame: Buffer,
  signal: AbortSignal,
  stallMs: number,
): Promise<void> {
  if (signal.aborted || stream.write(frame)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(stall);
      stream.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const stall = setTimeout(() => {
      stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      done();
    }, stallMs);
    stream.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

function status(code: number, message: string) {
  return { "grpc-status": String(code), "grpc-message": grpcMessage(message) };
}

/** A trailers-only answer: the call fails before any message. */
function refuse(res: Http2ServerResponse, code: number, message: string): void {
  if (res.stream.destroyed || res.headersSent) return;
  res.writeHead(200, { "content-type": "application/grpc+proto", ...status(code, message) });
  res.end();
}

/** Ends a stream whose headers went out, with its status in the trailers. */
function finish(res: Http2ServerResponse, code: number, message: string): void {
  if (res.stream.destroyed || res.stream.closed) return;
  if (!res.headersSent) {
    refuse(res, code, message);
    return;
  }
  res.addTrailers(status(code, message));
  res.end();
}
