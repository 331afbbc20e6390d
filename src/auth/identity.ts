/** The kinds of credential keyward understands (DESIGN "Credentials"). */
export type KeyKind = "live" | "user" | "agent" | "worker";
export type CredentialKind = KeyKind | "jwt";

/** Every API-key kind, in the order DESIGN lists them. */
export const KEY_KINDS: readonly KeyKind[] = ["live", "user", "agent", "worker"];

/** A key's native rate limit: `requests` per `perSeconds`, bursting to `burst` (0: `requests`). */
export interface RateLimit {
  readonly requests: number;
  readonly perSeconds: number;
  readonly burst: number;
}

/** The run a `worker` key is bound to; it may only act under that run's path. */
export interface RunBinding {
  readonly experiment: string;
  readonly variation: string;
  readonly run: string;
}

/**
 * Who a verified credential belongs to. Produced by the key store or the JWT
 * verifier, consumed by authorization and the response builders. Never holds
 * a secret or a whole token.
 */
export interface Identity {
  readonly kind: CredentialKind;
  readonly subject: string;
  /** The key's id; for a JWT its `jti`, or "" when it has none. */
  readonly keyId: string;
  readonly tenant: string;
  readonly scopes: readonly string[];
  /** Epoch milliseconds, or undefined when the credential never expires. */
  readonly expiresAt: number | undefined;
  readonly binding: RunBinding | undefined;
  /** For a JWT: the configured role of its issuer (researcher | admin). */
  readonly role?: "researcher" | "admin";
  /** For a JWT: the issuer that vouched for it (subjects are unique per issuer only). */
  readonly issuer?: string;
  /**
   * True when an API key was presented with its previous secret during a
   * rotation grace (dynamic metadata `secret: "previous"`): who has not
   * switched yet.
   */
  readonly previousSecret?: boolean;
  /** An API key's metadata object (dynamic metadata `meta`), when it has one. */
  readonly meta?: { readonly [key: string]: unknown };
  /** An API key's allowed networks, when it lists any: the client address must be in one. */
  readonly network?: { allows(address: string | undefined): boolean };
  /** An API key's own rate limit, when it has one (enforced per process). */
  readonly rateLimit?: RateLimit;
}
