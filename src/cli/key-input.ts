import { KEY_KINDS, type KeyKind, type RateLimit } from "../auth/identity.js";
import { DEFAULTS } from "../config/schema.js";
import {
  type CreateKeyInput,
  KeyInputError,
  type KeyInputField,
  validateKeyInput,
} from "../keys/input.js";
import { type KeyMetadata, metadataProblem } from "../keys/metadata.js";
import type { KeyUpdate } from "../keys/repository.js";
import { cidrProblem } from "../lib/cidr.js";
import { durationMs } from "../lib/duration.js";
import { UsageError } from "./errors.js";

/** Lifetime of user and agent keys created locally without --ttl or --expires-at (the server's default too). */
export const DEFAULT_KEY_TTL = DEFAULTS.keyTtl;
const TTL_DEFAULT_KINDS: ReadonlySet<KeyKind> = new Set(["user", "agent"]);

/** The flags of `keys create`. */
export interface CreateFlags {
  kind: string;
  name?: string;
  tenant?: string;
  owner?: string;
  scopes?: string;
  expiresAt?: string;
  ttl?: string;
  experiment?: string;
  variation?: string;
  run?: string;
  idempotencyKey?: string;
  /** JSON object text. */
  meta?: string;
  /** Comma-separated CIDRs. */
  cidrs?: string;
  /** REQUESTS/WINDOW[:BURST], e.g. 100/1s or 6000/1m:200. */
  rateLimit?: string;
  /** Set when the key is minted through the admin API, which applies its own default lifetime. */
  server?: string;
}

/**
 * The key `keys create` asks for, or a usage error naming the flag. Checked
 * with the rule the repository and the admin API apply, in both modes, so
 * that the message names the flag rather than the field.
 */
export function createInput(options: CreateFlags): CreateKeyInput {
  const kind = options.kind as KeyKind;
  if (!KEY_KINDS.includes(kind))
    throw new UsageError(`--kind: expected one of ${KEY_KINDS.join(", ")}`);
  if (options.expiresAt !== undefined && options.ttl !== undefined) {
    throw new UsageError("--expires-at and --ttl: give one, not both");
  }
  if (options.idempotencyKey !== undefined && !options.server) {
    throw new UsageError("--idempotency-key: only with --server");
  }
  let expiresAt: number | undefined;
  if (options.expiresAt !== undefined) {
    expiresAt = Date.parse(options.expiresAt);
    if (!/^\d{4}-\d{2}-\d{2}/.test(options.expiresAt) || Number.isNaN(expiresAt)) {
      throw new UsageError(`--expires-at: "${options.expiresAt}" is not an ISO 8601 time`);
    }
  } else if (options.ttl === "never") {
    if (options.server && TTL_DEFAULT_KINDS.has(kind)) {
      throw new UsageError(
        "--ttl never: the admin API gives user and agent keys its default lifetime",
      );
    }
  } else if (options.ttl !== undefined) {
    const ttl = durationMs(options.ttl);
    if (ttl === undefined)
      throw new UsageError(`--ttl: "${options.ttl}" is not a duration such as 90d or 12h`);
    expiresAt = Date.now() + ttl;
  } else if (!options.server && TTL_DEFAULT_KINDS.has(kind)) {
    expiresAt = Date.now() + (durationMs(DEFAULT_KEY_TTL) as number);
  }
  const bound = [options.experiment, options.variation, options.run];
  if (kind === "worker" && bound.some((part) => !part)) {
    throw new UsageError(
      "--experiment, --variation and --run: all three are required for a worker key",
    );
  }
  if (kind !== "worker" && bound.some((part) => part !== undefined)) {
    throw new UsageError(
      "--experiment, --variation and --run: only worker keys are bound to a run",
    );
  }
  const input: CreateKeyInput = {
    kind,
    name: options.name,
    tenant: options.tenant,
    owner: options.owner,
    scopes: (options.scopes ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    expiresAt,
    binding:
      kind === "worker"
        ? {
            experiment: options.experiment as string,
            variation: options.variation as string,
            run: options.run as string,
          }
        : undefined,
    metadata: metaFlag(options.meta),
    allowedCidrs: options.cidrs === undefined ? undefined : scopeList(options.cidrs),
    rateLimit: options.rateLimit === undefined ? undefined : rateLimitFlag(options.rateLimit),
  };
  try {
    validateKeyInput(input, Date.now());
  } catch (error) {
    if (!(error instanceof KeyInputError) || !error.field) throw error;
    const flag = error.field === "expiresAt" && options.ttl ? "--ttl" : FLAGS[error.field];
    throw new UsageError(`${flag}: ${error.problem}`);
  }
  return input;
}

/** The --meta value: JSON object text, parsed (the key rules check the rest). */
export function metaFlag(value: string | undefined): KeyMetadata | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as KeyMetadata;
  } catch {
    throw new UsageError('--meta: not valid JSON (expected an object such as \'{"plan":"pro"}\')');
  }
}

/** The flags of `keys update`. */
export interface UpdateFlags {
  name?: string;
  scopes?: string;
  expiresAt?: string;
  meta?: string;
  cidrs?: string;
  /** As for create, or "none" to remove the limit. */
  rateLimit?: string;
}

/** The change `keys update` asks for, or a usage error naming the flag. */
export function updateInput(options: UpdateFlags): KeyUpdate {
  const changes: KeyUpdate = {
    ...(options.name !== undefined && { name: options.name }),
    ...(options.scopes !== undefined && { scopes: scopeList(options.scopes) }),
    ...(options.expiresAt !== undefined && { expiresAt: isoFlag(options.expiresAt) }),
    ...(options.meta !== undefined && { metadata: metaFlag(options.meta) as KeyMetadata }),
    ...(options.cidrs !== undefined && { allowedCidrs: scopeList(options.cidrs) }),
    ...(options.rateLimit !== undefined && {
      rateLimit: options.rateLimit === "none" ? null : rateLimitFlag(options.rateLimit),
    }),
  };
  if (Object.keys(changes).length === 0) {
    throw new UsageError(
      "keys update: give at least one of --name, --scopes, --expires-at, --meta, --cidrs, --rate-limit",
    );
  }
  const problem = metadataProblem(changes.metadata ?? {});
  if (problem) throw new UsageError(`--meta: ${problem}`);
  for (const cidr of changes.allowedCidrs ?? []) {
    const wrong = cidrProblem(cidr);
    if (wrong) throw new UsageError(`--cidrs: ${wrong}`);
  }
  if (changes.expiresAt !== undefined && changes.expiresAt <= Date.now()) {
    throw new UsageError(`--expires-at: ${options.expiresAt} is already past`);
  }
  return changes;
}

const WINDOW_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** --rate-limit REQUESTS/WINDOW[:BURST] (100/1s, 6000/1m:200, 10/s) as a limit. */
export function rateLimitFlag(value: string): RateLimit {
  const match = /^(\d+)\/(\d*)([smhd])(?::(\d+))?$/.exec(value);
  if (!match) {
    throw new UsageError(
      `--rate-limit: "${value}" is not REQUESTS/WINDOW[:BURST], e.g. 100/1s or 6000/1m:200`,
    );
  }
  const [, requests, count, unit, burst] = match;
  return {
    requests: Number(requests),
    perSeconds: Number(count || "1") * (WINDOW_SECONDS[unit as string] as number),
    burst: Number(burst ?? "0"),
  };
}

/** A comma-separated flag value as a list ("" is the empty list). */
function scopeList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function isoFlag(value: string): number {
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at)) {
    throw new UsageError(`--expires-at: "${value}" is not an ISO 8601 time`);
  }
  return at;
}

/** The `keys create` flag behind each field of a key's input. */
const FLAGS: Record<KeyInputField, string> = {
  kind: "--kind",
  name: "--name",
  tenant: "--tenant",
  owner: "--owner",
  scopes: "--scopes",
  expiresAt: "--expires-at",
  binding: "--experiment, --variation and --run",
  metadata: "--meta",
  allowedCidrs: "--cidrs",
  rateLimit: "--rate-limit",
};
