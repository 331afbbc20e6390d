import type { KeyKind, RunBinding } from "../auth/identity.js";
import { SCOPE_TOKEN } from "../auth/scope.js";

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
}

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

/** The longest name, owner or tenant, in characters (Unicode code points). */
export const MAX_IDENTITY_CHARS = 256;

/**
 * The identity rule: `name`, `owner` and `tenant` are Unicode text without
 * control characters (Cc: U+0000–U+001F, U+007F–U+009F), line or paragraph
 * separators (U+2028/U+2029) or unpaired surrogates, and at most
 * {@link MAX_IDENTITY_CHARS} characters. Any other text (CJK, emoji,
 * accents) is allowed: these values end up in upstream headers, logs and
 * terminals, where a control character could split a header, forge a log
 * line or rewrite a terminal, while the transports encode everything else.
 * Returns what is wrong, or undefined when the value is fine.
 */
export function identityTextProblem(value: string): string | undefined {
  // In a `u` regex \p{Cs} matches only a surrogate that is not half of a pair.
  const bad = /[\p{Cc}\p{Cs}\u2028\u2029]/u.exec(value)?.[0];
  if (bad !== undefined) {
    const code = bad.codePointAt(0) as number;
    const at = `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
    if (code === 0x2028 || code === 0x2029) return `contains a line or paragraph separator (${at})`;
    if (code >= 0xd800 && code <= 0xdfff) return `contains an unpaired surrogate (${at})`;
    return `contains a control character (${at})`;
  }
  // UTF-16 units never number fewer than code points: count only when it could matter.
  if (value.length > MAX_IDENTITY_CHARS && [...value].length > MAX_IDENTITY_CHARS) {
    return `is longer than ${MAX_IDENTITY_CHARS} characters`;
  }
  return undefined;
}

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
