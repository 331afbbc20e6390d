import { existsSync } from "node:fs";
import type { TokenVerifier } from "../auth/token.js";
import { ConfigError } from "../config/errors.js";
import type { Config } from "../config/schema.js";
import { createJwtVerifier, type JwtVerifier } from "../jwt/verifier.js";
import type { Logger } from "../lib/log.js";
import { EMPTY_POLICY, loadPolicyFile, type Policy } from "../policy/policy.js";

const NO_ISSUER: TokenVerifier = {
  verify: async () => ({ ok: false, code: "invalid_token", reason: "no JWT issuer is configured" }),
};

/** The JWT counters a process reports when it has no issuer. */
export const NO_JWT_STATS = {
  verifications: 0,
  cacheHits: 0,
  jwksFetches: 0,
  jwksFailures: 0,
  cacheInvalidations: 0,
};

/**
 * The parts of the configuration a decision reads that reload without a
 * restart: the route policy and the JWT issuers. The process that serves
 * Check holds one; with `workers`, each worker holds its own and the main
 * process hands it every new configuration it accepts.
 */
export class DecisionConfig {
  #current: { readonly policy: Policy; readonly jwt: JwtVerifier | undefined };
  /** The configuration whose issuers are in force. */
  #config: Config;
  /** The scopes the policy in force names, and the config's `scopes:`. */
  #knownScopes: ReadonlySet<string>;

  /** Reads what the pipeline calls for every JWT; follows reloads. */
  readonly jwt: TokenVerifier = {
    verify: (token) => (this.#current.jwt ?? NO_ISSUER).verify(token),
  };

  /**
   * Reads the policy file now, so that a bad one (a ConfigError) stops
   * start-up before any port opens; the issuers start with {@link start}.
   */
  constructor(
    config: Config,
    private readonly logger: Logger,
    private readonly now?: () => number,
  ) {
    this.#current = { policy: readPolicy(config), jwt: undefined };
    this.#config = config;
    this.#knownScopes = knownScopes(this.#current.policy, config);
  }

  /** Starts the configured issuers' verifier (first JWKS fetch included). */
  async start(): Promise<void> {
    this.#current = {
      policy: this.#current.policy,
      jwt: await this.#startVerifier(this.#config),
    };
  }

  get policy(): Policy {
    return this.#current.policy;
  }

  /** Every scope the policy in force names, and the config's `scopes:` (follows reloads). */
  get knownScopes(): ReadonlySet<string> {
    return this.#knownScopes;
  }

  /** The running JWT verifier, if any issuer is configured. */
  get verifier(): JwtVerifier | undefined {
    return this.#current.jwt;
  }

  /**
   * Puts `next`'s policy file and issuers in force together, or throws and
   * leaves the old pair in force. Resolves true when the issuers changed.
   */
  async reload(next: Config): Promise<boolean> {
    const policy = readPolicy(next);
    const issuersChanged = JSON.stringify(next.issuers) !== JSON.stringify(this.#config.issuers);
    const verifier = issuersChanged ? await this.#startVerifier(next) : this.#current.jwt;
    const previous = this.#current;
    // One assignment: the pipeline sees the old pair or the new pair, never a mix.
    this.#current = { policy, jwt: verifier };
    this.#knownScopes = knownScopes(policy, next);
    if (issuersChanged) {
      previous.jwt?.close();
      this.#config = next;
    }
    return issuersChanged;
  }

  close(): void {
    this.#current.jwt?.close();
  }

  async #startVerifier(config: Config): Promise<JwtVerifier | undefined> {
    if (config.issuers.length === 0) return undefined;
    const verifier = createJwtVerifier({
      issuers: config.issuers,
      logger: this.logger,
      cacheMaxEntries: config.cache.max_entries,
      ...(this.now && { now: this.now }),
    });
    try {
      await verifier.start();
    } catch (error) {
      verifier.close();
      throw error;
    }
    return verifier;
  }
}

function knownScopes(policy: Policy, config: Config): ReadonlySet<string> {
  return new Set([...policy.scopes, ...config.scopes]);
}

/** Reads the configured policy file; a missing or bad file is a one-line ConfigError. */
function readPolicy(config: Config): Policy {
  const policyFile = config.policy || undefined;
  if (!policyFile) return EMPTY_POLICY;
  if (!existsSync(policyFile)) {
    throw new ConfigError(
      `config: policy: file ${policyFile} does not exist (set policy: null for none)`,
    );
  }
  try {
    // A rule's jwt.issuers must name configured issuers: a typo there would
    // otherwise admit no JWT on that route, silently.
    return loadPolicyFile(policyFile, { issuers: config.issuers.map((entry) => entry.issuer) });
  } catch (error) {
    throw new ConfigError(`config: policy: ${(error as Error).message}`);
  }
}
