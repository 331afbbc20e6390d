import { randomUUID } from "node:crypto";
import { type Client, Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type {
  AckAppliedRequest,
  ReplicationService,
} from "../gen/keyward/replication/v1/replication_pb.js";
import type { Logger } from "../lib/log.js";
import { tokenMatches } from "./token.js";

/** Replicas remembered at most (a restarted replica comes back under a new id). */
const MAX_REPLICAS = 10_000;

/**
 * What each replica confirmed it applied (AckApplied), so that an admin
 * write can wait until `replication.sync_replicas` replicas hold it before
 * it is acknowledged.
 */
export class AckTracker {
  readonly #applied = new Map<string, number>();
  readonly #waiters = new Set<() => void>();

  /** Notes that `replica` applied everything up to `sequence`. */
  record(replica: string, sequence: number): void {
    const before = this.#applied.get(replica) ?? 0;
    if (sequence <= before) return;
    this.#applied.delete(replica);
    this.#applied.set(replica, sequence);
    if (this.#applied.size > MAX_REPLICAS) {
      const oldest = this.#applied.keys().next().value as string;
      this.#applied.delete(oldest);
    }
    for (const wake of [...this.#waiters]) wake();
  }

  /** Replicas that applied `sequence` or later. */
  holding(sequence: number): number {
    let count = 0;
    for (const applied of this.#applied.values()) if (applied >= sequence) count++;
    return count;
  }

  /** Resolves true once `replicas` replicas applied `sequence`, false after `timeoutMs`. */
  waitFor(sequence: number, replicas: number, timeoutMs: number): Promise<boolean> {
    if (this.holding(sequence) >= replicas) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (held: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(held);
      };
      const check = () => {
        if (this.holding(sequence) >= replicas) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(check);
    });
  }
}

/** The primary's AckApplied: authenticated with the replication token. */
export function ackAppliedHandler(acks: AckTracker, token: string) {
  return (request: AckAppliedRequest, context: HandlerContext) => {
    if (!tokenMatches(context.requestHeader.get("authorization"), token))
      throw new ConnectError("replication token required", Code.Unauthenticated);
    if (!request.replica) throw new ConnectError("replica is required", Code.InvalidArgument);
    acks.record(request.replica, Number(request.sequence));
    return {};
  };
}

/**
 * A replica's side: confirms to the primary what it applied and committed
 * (the primary waits for that under replication.sync_replicas), one call in
 * flight at a time, each carrying the newest applied sequence.
 */
export class AckSender {
  /** This process's id in its acknowledgements. */
  readonly #replicaId = randomUUID();
  #wanted = 0;
  #sending = false;

  constructor(
    private readonly options: {
      readonly client: Client<typeof ReplicationService>;
      readonly token: string;
      readonly logger: Logger;
      readonly signal: AbortSignal;
    },
  ) {}

  ack(sequence: number): void {
    this.#wanted = Math.max(this.#wanted, sequence);
    if (this.#sending) return;
    this.#sending = true;
    void this.#send().finally(() => {
      this.#sending = false;
    });
  }

  async #send(): Promise<void> {
    const { client, token, signal, logger } = this.options;
    let sent = 0;
    try {
      while (this.#wanted > sent && !signal.aborted) {
        const wanted = this.#wanted;
        await client.ackApplied(
          { replica: this.#replicaId, sequence: BigInt(wanted) },
          { headers: { authorization: `Bearer ${token}` }, timeoutMs: 5000, signal },
        );
        sent = wanted;
      }
    } catch (error) {
      if (!signal.aborted)
        logger.warn({ err: error }, "could not confirm applied changes to the primary");
    }
  }
}
