import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { createLogger } from "../../src/lib/log.js";
import { ChangeFeed } from "../../src/replication/feed.js";
import { CommitNotifier } from "../../src/replication/notifier.js";
import { SnapshotCache } from "../../src/replication/snapshots.js";
import { createWatchHandler } from "../../src/replication/watch.js";
import { WATCH_WINDOW_BYTES } from "../../src/replication/window.js";
import { waitUntil } from "../helpers/cluster.js";
import { WatchClient } from "../helpers/watch-client.js";

const TOKEN = "stall-test-token-0123456789abcdef";

/**
 * The primary's Watch side in this process (feed, shared snapshots with one
 * slot, the handler) on a real HTTP/2 server, so the stall cut-off can be
 * short; `keyward serve` uses the 30 s default.
 */
describe("a replica with the wide HTTP/2 window that stops reading mid-snapshot", () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-stall-"));
  const file = join(dir, "primary.db");
  let db: Db;
  let notifier: CommitNotifier;
  let feed: ChangeFeed;
  let snapshots: SnapshotCache;
  let server: Http2Server;
  let url: string;
  const clients: WatchClient[] = [];

  beforeAll(async () => {
    db = openDatabase(file);
    const store = new KeyRepository(db);
    // ~1.8 MB of snapshot: more than the window the replica opens.
    db.transaction(() => {
      for (let i = 0; i < 10_000; i++)
        store.create({ kind: "live", name: `k${i}`, scopes: ["sources:read"] });
    })();
    const logger = createLogger({ level: "warn" });
    notifier = new CommitNotifier(db);
    feed = new ChangeFeed({ database: file, notifier, logger });
    snapshots = new SnapshotCache({ database: file, logger, maxConcurrent: 1 });
    const watch = createWatchHandler({ feed, snapshots, token: TOKEN, logger, stallMs: 300 });
    server = createServer((req, res) => {
      if (!watch(req, res)) res.writeHead(404).end();
    });
    feed.start();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.close();
    await new Promise((resolve) => server?.close(resolve));
    snapshots?.close();
    await feed?.close();
    notifier?.close();
    db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is cut off, having taken no more than its window, and its slot goes to the next replica", async () => {
    const stalled = new WatchClient(url, TOKEN, 0, { windowBytes: WATCH_WINDOW_BYTES });
    stalled.pause(); // before the first byte: it reads nothing, ever
    clients.push(stalled);
    await waitUntil("the stalled replica's snapshot to start", () => stalled.unread > 0);
    const reader = new WatchClient(url, TOKEN, 0, { windowBytes: WATCH_WINDOW_BYTES });
    clients.push(reader);

    // The only snapshot slot is the stalled replica's until the primary cuts it off.
    await waitUntil("the reader's snapshot", () => reader.snapshotSequence !== undefined, 60_000);
    await waitUntil("the stalled stream to be closed", () => stalled.closed);
    expect(stalled.snapshotSequence).toBeUndefined();
    const snapshotBytes = reader.bytes;
    const taken = stalled.bytes + stalled.unread;
    expect(snapshotBytes).toBeGreaterThan(WATCH_WINDOW_BYTES);
    // What the primary pushed at it was bounded by the window it opened, not the snapshot.
    expect(taken).toBeLessThanOrEqual(WATCH_WINDOW_BYTES);
    expect(snapshots.built).toBe(1);
  }, 90_000);
});
