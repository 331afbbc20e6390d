// The simulated replicas of bench/fleet.mjs: each its own HTTP/2 connection
// running the real Watch protocol as a real replica does (the same wide
// HTTP/2 windows, gzip accepted), recording when its snapshot completes and
// when each change arrives. Rows are neither inflated nor applied.
import http2 from "node:http2";
import { gunzip } from "node:zlib";
import { WATCH_WINDOW_BYTES } from "../dist/replication/window.js";

const WATCH_PATH = "/keyward.replication.v1.ReplicationService/Watch";
// To measure what each change is worth: FLEET_SIM_WINDOW=65535 (HTTP/2's
// default window) and FLEET_SIM_GZIP=0 (no grpc-accept-encoding).
const WINDOW = Number(process.env.FLEET_SIM_WINDOW ?? WATCH_WINDOW_BYTES);
const GZIP = process.env.FLEET_SIM_GZIP !== "0";

/**
 * Calls `onMessage(flag, message)` for each gRPC length-prefixed message of a
 * stream's data, copying each byte once (chunks are joined only when a
 * message is complete).
 */
export function messageReader(onMessage) {
  let chunks = [];
  let buffered = 0;
  const joined = () => {
    const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, buffered);
    chunks = [all];
    return all;
  };
  return (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    while (buffered >= 5) {
      const head = chunks[0].length >= 5 ? chunks[0] : joined();
      const length = head.readUInt32BE(1);
      if (buffered < 5 + length) return;
      const all = joined();
      onMessage(all[0], all.subarray(5, 5 + length));
      const rest = all.subarray(5 + length);
      chunks = rest.length ? [rest] : [];
      buffered = rest.length;
    }
  };
}

/** A snapshot chunk (WatchResponse field 1) ends with `last: true`, bytes 0x20 0x01, when it is the last. */
function isLastSnapshotChunk(message) {
  const n = message.length;
  return message[0] === 0x0a && message[n - 2] === 0x20 && message[n - 1] === 0x01;
}

/** The key id of a Change (WatchResponse field 2: sequence varint, then key_id). */
function changedKeyId(message) {
  let at = 1;
  while (message[at] & 0x80) at++; // length varint of the Change
  at++;
  if (message[at] === 0x08) {
    at++;
    while (message[at] & 0x80) at++;
    at++;
  }
  if (message[at] !== 0x12) return undefined;
  return message.subarray(at + 2, at + 2 + message[at + 1]).toString("latin1");
}

/**
 * One simulated replica. `arrivals` maps a key id to the list its change's
 * arrival times are pushed on. Compressed messages are snapshot chunks (only
 * those are compressed); the snapshot was complete when its last chunk
 * arrived, which the first plain message after the chunks (the catch-up
 * change or a heartbeat) confirms: that chunk alone is inflated, on libuv's
 * pool, to check it carries `last: true`. The simulated replicas stand in for
 * a fleet of machines; inflating every chunk of 1,000 snapshots on the
 * bench's one core would time the bench, not the primary.
 */
export function simulatedReplica(url, token, arrivals) {
  const session = http2.connect(url, { settings: { initialWindowSize: WINDOW } });
  session.on("error", () => undefined);
  session.once("connect", () => session.setLocalWindowSize(WINDOW));
  const stream = session.request({
    ":method": "POST",
    ":path": WATCH_PATH,
    "content-type": "application/grpc+proto",
    ...(GZIP && { "grpc-accept-encoding": "gzip" }),
    te: "trailers",
    authorization: `Bearer ${token}`,
  });
  stream.on("error", () => undefined);
  stream.end(Buffer.from([0, 0, 0, 0, 0])); // WatchRequest{from_sequence: 0}
  const replica = {
    snapshotAt: undefined,
    /** Set when the chunk taken for the last one was not (the bench then fails). */
    misread: false,
    bytes: 0,
    snapshotBytes: 0,
    session,
    close: () => session.destroy(),
  };
  let lastChunk;
  const read = messageReader((flag, message) => {
    if (flag === 1) {
      replica.snapshotBytes += 5 + message.length;
      lastChunk = { at: performance.now(), message: Buffer.from(message) };
      return;
    }
    if (lastChunk && replica.snapshotAt === undefined) {
      const { at, message: chunk } = lastChunk;
      gunzip(chunk, (error, plain) => {
        if (!error && isLastSnapshotChunk(plain)) replica.snapshotAt = at;
        else replica.misread = true;
      });
      lastChunk = undefined;
    }
    if (message[0] === 0x0a) {
      // A plain snapshot chunk (the primary did not compress).
      replica.snapshotBytes += 5 + message.length;
      if (isLastSnapshotChunk(message)) replica.snapshotAt = performance.now();
    } else if (message[0] === 0x12) {
      const keyId = changedKeyId(message);
      if (keyId) arrivals.get(keyId)?.push(performance.now());
    }
  });
  stream.on("data", (chunk) => {
    replica.bytes += chunk.length;
    read(chunk);
  });
  return replica;
}
