import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";
import {
  type KeyUsage,
  KeyUsageSchema,
  ReplicationService,
  type ReportUsageRequest,
} from "../gen/keyward/replication/v1/replication_pb.js";
import type { UsageEntry, UsageReport, UsageStore, UsageTally } from "../keys/usage.js";
import type { Logger } from "../lib/log.js";
import { tokenMatches } from "./token.js";

/** Entries one report carries at most; a larger tally goes in several reports. */
const MAX_REPORT_ENTRIES = 10_000;
/**
 * Encoded bytes of one report's entries at most: the primary's admin port
 * refuses a request body over 64 KiB (MAX_ADMIN_BODY_BYTES), which a report
 * of ~1,800 keys used to pass, to be refused and retried for ever.
 */
const MAX_REPORT_BYTES = 48 * 1024;

/** How many of `entries`, from the first, fit one report. */
function fitting(entries: readonly UsageEntry[]): number {
  let bytes = 0;
  for (let i = 0; i < entries.length && i < MAX_REPORT_ENTRIES; i++) {
    // The entry, its field tag and its length prefix.
    bytes += toBinary(KeyUsageSchema, entryToProto(entries[i] as UsageEntry)).length + 4;
    if (bytes > MAX_REPORT_BYTES) return Math.max(1, i);
  }
  return Math.min(entries.length, MAX_REPORT_ENTRIES);
}

export function entryToProto(entry: UsageEntry): KeyUsage {
  const denied: Record<string, bigint> = {};
  for (const [code, n] of Object.entries(entry.denied)) denied[code] = BigInt(n);
  return create(KeyUsageSchema, {
    keyId: entry.keyId,
    hour: BigInt(entry.hour),
    lastUsedAt: BigInt(entry.lastUsedAt),
    allowed: BigInt(entry.allowed),
    denied,
  });
}

export function protoToEntry(usage: KeyUsage): UsageEntry {
  const denied: Record<string, number> = {};
  for (const [code, n] of Object.entries(usage.denied)) denied[code] = Number(n);
  return {
    keyId: usage.keyId,
    hour: Number(usage.hour),
    lastUsedAt: Number(usage.lastUsedAt),
    allowed: Number(usage.allowed),
    denied,
  };
}

/** Counts of a {@link UsageReporter}, for the metrics. */
export interface ReporterStats {
  readonly sent: number;
  readonly failed: number;
  /** Uses not counted because the tally was full (the primary unreachable too long). */
  readonly dropped: number;
}

/**
 * A replica's side of usage: every `intervalMs` it takes the tally and sends
 * it to the primary's ReportUsage with the replication token. A report that
 * fails is kept, under the same batch number, and sent again next time (the
 * primary merges a batch once); what is tallied meanwhile waits in the
 * bounded tally. Check only ever touches the tally.
 */
export class UsageReporter {
  readonly #reporter = randomUUID();
  #batch = 0;
  /** The report not yet acknowledged, if any. */
  #pending: { batch: number; entries: UsageEntry[] } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> | undefined;
  #sent = 0;
  #failed = 0;

  constructor(
    private readonly options: {
      readonly transport: Transport;
      readonly token: string;
      readonly tally: UsageTally;
      readonly intervalMs: number;
      readonly logger: Logger;
    },
  ) {}

  /** The tally this reporter drains (Check, and the Check workers' reports, fill it). */
  get tally(): UsageTally {
    return this.options.tally;
  }

  stats(): ReporterStats {
    return { sent: this.#sent, failed: this.#failed, dropped: this.options.tally.dropped };
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#sending ??= this.report().finally(() => {
        this.#sending = undefined;
      });
    }, this.options.intervalMs);
    this.#timer.unref();
  }

  /** Sends the pending report, then what was tallied since; resolves when both are answered or failed. */
  async report(): Promise<void> {
    const client = createClient(ReplicationService, this.options.transport);
    for (;;) {
      if (!this.#pending) {
        const entries = this.options.tally.drain();
        if (entries.length === 0) return;
        // An oversized tally goes in several batches; the rest waits in the tally.
        const fit = fitting(entries);
        if (fit < entries.length) this.options.tally.merge(entries.splice(fit));
        this.#pending = { batch: ++this.#batch, entries };
      }
      const { batch, entries } = this.#pending;
      try {
        await client.reportUsage(
          { reporter: this.#reporter, batch: BigInt(batch), usage: entries.map(entryToProto) },
          {
            headers: { authorization: `Bearer ${this.options.token}` },
            timeoutMs: 10_000,
          },
        );
        this.#pending = undefined;
        this.#sent++;
      } catch (error) {
        this.#failed++;
        this.options.logger.warn(
          { err: error, batch, keys: entries.length },
          "usage report failed; it is sent again next interval",
        );
        return;
      }
    }
  }

  /** Stops the timer and makes a last attempt to report what is left. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#sending;
    await this.report();
  }
}

/**
 * Reports received within this long are merged in one transaction: with a
 * fleet of 1,000 replicas reporting every 10 s the primary commits ~10 times
 * a second instead of 100 (each commit an fsync that holds the event loop,
 * and with it the admin API).
 */
const MERGE_WINDOW_MS = 100;

/**
 * The primary's ReportUsage: authenticated with the replication token, each
 * batch merged once. A report is answered once it is committed (together
 * with the others of its {@link MERGE_WINDOW_MS}), or refused as Unavailable
 * when that commit failed, so the replica sends it again.
 */
export function reportUsageHandler(options: {
  readonly token: string;
  readonly store: UsageStore;
  readonly logger: Logger;
  readonly now?: (() => number) | undefined;
}) {
  let queued: { report: UsageReport; done: (merged: boolean) => void }[] = [];
  const flush = () => {
    const batch = queued;
    queued = [];
    let merged = true;
    try {
      options.store.mergeReports(
        batch.map((q) => q.report),
        (options.now ?? Date.now)(),
      );
    } catch (error) {
      merged = false;
      options.logger.warn({ err: error, reports: batch.length }, "could not merge usage reports");
    }
    for (const q of batch) q.done(merged);
  };
  return async (request: ReportUsageRequest, context: HandlerContext) => {
    if (!tokenMatches(context.requestHeader.get("authorization"), options.token))
      throw new ConnectError("replication token required", Code.Unauthenticated);
    if (request.usage.length > MAX_REPORT_ENTRIES || !request.reporter)
      throw new ConnectError("malformed usage report", Code.InvalidArgument);
    const report = {
      reporter: request.reporter,
      batch: Number(request.batch),
      entries: request.usage.map(protoToEntry),
    };
    const merged = await new Promise<boolean>((done) => {
      if (queued.length === 0) setTimeout(flush, MERGE_WINDOW_MS);
      queued.push({ report, done });
    });
    if (!merged) throw new ConnectError("usage report not merged; send it again", Code.Unavailable);
    return {};
  };
}
