import type { KeyKind, RateLimit, RunBinding } from "../auth/identity.js";
import { SCOPE_TOKEN } from "../auth/scope.js";
import { cidrProblem } from "../lib/cidr.js";
import { type KeyMetadata, metadataProblem } from "./metadata.js";
import { identityTextProblem } from "./text.js";

/** What a new key is made of (see KeyStore.create). */
export interface CreateKeyInput {
  readonly kind: KeyKind;
  readonly name?: string | undefined;
  readonly tenant?: string | undefined;
  readonly owner?: string | undefined;
  readonly scopes?: readonly string[] | undefined;
  /** Epoch ms; undefined: never expires. */
  readonly expiresAt?: number | undefined;
  /** Required for worker keys, forbidden for others. */
  readonly binding?: RunBinding | undefined;
  /** A JSON object of at most 4 KiB (metadata.ts); undefined or {}: none. */
  readonly metadata?: KeyMetadata | undefined;
  /** IPv4/IPv6 CIDRs the key may be used from; undefined or []: anywhere. */
  readonly allowedCidrs?: readonly string[] | undefined;
  /** The key's native rate limit; undefined: none. */
  readonly rateLimit?: RateLimit | undefined;
}

/** Bounds of a rate limit: requests and burst 1..1e9, a window of 1 s to 1 day. */
const MAX_RATE_REQUESTS = 1_000_000_000;
const MAX_RATE_WINDOW_SECONDS = 86_400;

/** Most networks one key may list. */
export const MAX_ALLOWED_CIDRS = 64;

/** The fields of {@link CreateKeyInput} an input error can name. */
export type KeyInputField = keyof CreateKeyInput;

/**
 * A key input no key may have (a control character in its owner, a worker
 * key holding keys:*, ...). Its message is `<field>: <problem>`, so each
 * surface can say which of its own fields (a REST body field, a CLI flag)
 * is wrong.
 */
export class KeyInputError extends Error {
  constructor(
    /** The field at fault; undefined when the input as a whole is (e.g. a revoked key). */
    readonly field: KeyInputField | undefined,
    /** What is wrong with it, without the field's name. */
    readonly problem: string,
  ) {
    super(field ? `${field}: ${problem}` : problem);
  }
}

export { identityTextProblem, MAX_IDENTITY_CHARS } from "./text.js";

/** The scopes prefix only administrators' credentials carry. */
const ADMIN_SCOPE_PREFIX = "keys:";

/**
 * Throws a {@link KeyInputError} for an input no key may have. The key store
 * applies it to every row it writes; the admin API and the CLI apply it
 * before anything else, with `now`, so that a request for a key that would
 * be born expired is refused too (a stored key past its expiry is an
 * ordinary state; asking to mint one is a mistake).
 */
export function validateKeyInput(input: CreateKeyInput, now?: number): void {
  for (const field of ["name", "owner", "tenant"] as const) {
    const problem = identityTextProblem(input[field] ?? "");
    if (problem) throw new KeyInputError(field, problem);
  }
  for (const scope of input.scopes ?? []) {
    if (!SCOPE_TOKEN.test(scope))
      throw new KeyInputError("scopes", `invalid scope ${JSON.stringify(scope)}`);
    // A worker key lives on a provisioned machine for one run: if it could
    // administer keys, one leaked run would be a leaked tenant.
    if (input.kind === "worker" && scope.startsWith(ADMIN_SCOPE_PREFIX)) {
      throw new KeyInputError(
        "scopes",
        `a worker key cannot hold ${JSON.stringify(scope)} (worker keys never hold keys:* scopes)`,
      );
    }
  }
  if (input.kind === "worker") {
    const b = input.binding;
    if (!b?.experiment || !b.variation || !b.run) {
      throw new KeyInputError("binding", "a worker key needs an experiment, a variation and a run");
    }
    for (const part of [b.experiment, b.variation, b.run]) {
      if (part.includes("/"))
        throw new KeyInputError("binding", `run binding part ${JSON.stringify(part)} contains "/"`);
    }
  } else if (input.binding) {
    throw new KeyInputError(
      "binding",
      `only worker keys are bound to a run, not ${input.kind} keys`,
    );
  }
  const cidrs = input.allowedCidrs ?? [];
  if (cidrs.length > MAX_ALLOWED_CIDRS)
    throw new KeyInputError("allowedCidrs", `at most ${MAX_ALLOWED_CIDRS} networks`);
  for (const cidr of cidrs) {
    const problem = cidrProblem(cidr);
    if (problem) throw new KeyInputError("allowedCidrs", problem);
  }
  const limit = input.rateLimit;
  if (limit !== undefined) {
    const whole = (n: number, max: number, min: number) =>
      Number.isInteger(n) && n >= min && n <= max;
    if (
      !whole(limit.requests, MAX_RATE_REQUESTS, 1) ||
      !whole(limit.perSeconds, MAX_RATE_WINDOW_SECONDS, 1) ||
      !whole(limit.burst, MAX_RATE_REQUESTS, 0)
    ) {
      throw new KeyInputError(
        "rateLimit",
        `requests and burst must be whole numbers up to ${MAX_RATE_REQUESTS} (requests at least 1, burst 0 for requests), perSeconds 1 to ${MAX_RATE_WINDOW_SECONDS}`,
      );
    }
  }
  if (input.metadata !== undefined) {
    const problem = metadataProblem(input.metadata);
    if (problem) throw new KeyInputError("metadata", problem);
  }
  if (input.expiresAt !== undefined) {
    if (!Number.isFinite(input.expiresAt))
      throw new KeyInputError("expiresAt", "is not a valid time");
    if (now !== undefined && input.expiresAt <= now) {
      throw new KeyInputError(
        "expiresAt",
        `${new Date(input.expiresAt).toISOString()} is already past (a key would be born expired)`,
      );
    }
  }
}
