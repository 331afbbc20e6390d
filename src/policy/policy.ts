import { readFileSync } from "node:fs";
import type { MatchFunction } from "path-to-regexp";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { CredentialKind, RunBinding } from "../auth/identity.js";
import { formatZodError } from "../config/errors.js";
import { scopeList } from "../config/scopes.js";
import { compileTemplate, DEFAULT_WORKER_RUN_PATH } from "./template.js";

/** Every credential kind a rule's `kinds:` may name (DESIGN "Credentials"). */
export const CREDENTIAL_KINDS = [
  "live",
  "user",
  "agent",
  "worker",
  "jwt",
] as const satisfies readonly CredentialKind[];

/**
 * What a route does with a deny (DESIGN "Route policy"): `enforce` sends it,
 * `shadow` lets the request through and records the would-be deny.
 */
export const MODES = ["enforce", "shadow"] as const;
export type Mode = (typeof MODES)[number];

/** The roles an issuer may carry (the config's `issuers[].role`). */
export const JWT_ROLES = ["researcher", "admin"] as const;

const jwtConditionSchema = z
  .object({
    /** Only JWTs from these configured issuers (the `issuer` values of the config). */
    issuers: z.array(z.string().min(1)).min(1).optional(),
    /** Only JWTs whose issuer carries one of these roles. */
    roles: z.array(z.enum(JWT_ROLES)).min(1).optional(),
  })
  .strict();

const ruleSchema = z
  .object({
    method: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    path: z.string().startsWith("/"),
    scopes: scopeList,
    /** Only these credential kinds; absent, every kind. */
    kinds: z.array(z.enum(CREDENTIAL_KINDS)).min(1).optional(),
    /** Further conditions on a JWT; absent, any configured issuer. */
    jwt: jwtConditionSchema.optional(),
    /** This route's mode; absent, the file's top-level `mode`. */
    mode: z.enum(MODES).optional(),
  })
  .strict()
  .refine(
    (rule) => rule.jwt === undefined || rule.kinds === undefined || rule.kinds.includes("jwt"),
    {
      message: "a rule whose kinds leave out jwt admits no JWT to set conditions on",
      path: ["jwt"],
    },
  );

/** The policy file's shape (DESIGN "Route policy"). */
export const policySchema = z
  .object({
    default: z.enum(["deny", "authenticated"]).default("deny"),
    /** The mode of every rule without its own, and of requests no rule matches. */
    mode: z.enum(MODES).default("enforce"),
    worker_run_path: z.string().startsWith("/").default(DEFAULT_WORKER_RUN_PATH),
    rules: z.array(ruleSchema).default([]),
  })
  .strict();

export type PolicyDocument = z.output<typeof policySchema>;

/** Which JWTs a rule admits, beyond a valid signature from a configured issuer. */
export interface JwtCondition {
  readonly issuers?: readonly string[];
  readonly roles?: readonly (typeof JWT_ROLES)[number][];
}

/** What a route demands of a credential. */
export type Requirement =
  | {
      readonly type: "scopes";
      readonly scopes: readonly string[];
      /** The credential kinds the rule admits; absent, every kind. */
      readonly kinds?: readonly CredentialKind[];
      /** Conditions a JWT must meet; absent, none. */
      readonly jwt?: JwtCondition;
    }
  /** No rule grants this request and the default is deny. */
  | { readonly type: "deny" };

/** Options for {@link loadPolicyFile} and {@link compilePolicy}. */
export interface PolicyOptions {
  /**
   * The configured issuers; a rule's `jwt.issuers` must name only these
   * (a typo would otherwise admit no JWT, silently). Absent, not checked.
   */
  readonly issuers?: readonly string[];
}

interface CompiledRule {
  readonly methods: ReadonlySet<string> | "*";
  readonly match: MatchFunction<Record<string, string | string[]>>;
  readonly requirement: Requirement;
  readonly mode: Mode;
}

/** A loaded, compiled route policy. Immutable; reload by loading a new one. */
export interface Policy {
  /** The first matching rule's requirement, else the default's. */
  requirementFor(method: string, path: string): Requirement;
  /** True when `path` lies under the worker's own run. */
  withinRun(binding: RunBinding, path: string): boolean;
  /** Every scope a rule names (the admin API mints no scope outside these and the config's). */
  readonly scopes: ReadonlySet<string>;
  /** True when some rule limits credential kinds or JWTs (`kinds:` or `jwt:`). */
  readonly limitsCredentials: boolean;
  /**
   * The mode of the route `path` names: its first matching rule's, else the
   * file's top-level one; `path` undefined (a target keyward cannot read)
   * names no rule and gets the top-level mode.
   */
  modeFor(method: string, path: string | undefined): Mode;
  /** True when any request may be in shadow mode (the pipeline skips the lookup otherwise). */
  readonly shadows: boolean;
}

const DENY: Requirement = { type: "deny" };
const ANY: Requirement = { type: "scopes", scopes: [] };

/**
 * Compiles a validated policy document. Throws naming the rule and field on a
 * bad template or, with `options.issuers`, a `jwt.issuers` entry that names no
 * configured issuer.
 */
export function compilePolicy(doc: PolicyDocument, options: PolicyOptions = {}): Policy {
  const rules: CompiledRule[] = doc.rules.map((rule, index) => {
    const unknown = rule.jwt?.issuers?.findIndex((issuer) => !options.issuers?.includes(issuer));
    if (options.issuers !== undefined && unknown !== undefined && unknown >= 0) {
      throw new Error(
        `rules.${index}.jwt.issuers.${unknown}: ${rule.jwt?.issuers?.[unknown]} is not a configured issuer`,
      );
    }
    let match: CompiledRule["match"];
    try {
      match = compileTemplate(rule.path);
    } catch (error) {
      throw new Error(`rules.${index}.path: ${(error as Error).message}`);
    }
    const methods = [rule.method].flat().map((m) => m.toUpperCase());
    return {
      methods: methods.includes("*") ? "*" : new Set(methods),
      match,
      mode: rule.mode ?? doc.mode,
      requirement: {
        type: "scopes",
        scopes: rule.scopes,
        ...(rule.kinds !== undefined && { kinds: [...new Set(rule.kinds)] }),
        ...(rule.jwt !== undefined && { jwt: rule.jwt }),
      },
    };
  });
  let runMatch: MatchFunction<Record<string, string | string[]>>;
  try {
    runMatch = compileTemplate(doc.worker_run_path, { prefix: true });
  } catch (error) {
    throw new Error(`worker_run_path: ${(error as Error).message}`);
  }
  const fallback = doc.default === "authenticated" ? ANY : DENY;
  const ruleFor = (method: string, path: string): CompiledRule | undefined => {
    for (const rule of rules) {
      if (rule.methods !== "*" && !rule.methods.has(method)) continue;
      if (rule.match(path)) return rule;
    }
    return undefined;
  };

  return {
    scopes: new Set(doc.rules.flatMap((rule) => rule.scopes)),
    limitsCredentials: doc.rules.some((rule) => rule.kinds !== undefined || rule.jwt !== undefined),
    shadows: doc.mode === "shadow" || rules.some((rule) => rule.mode === "shadow"),
    requirementFor: (method, path) => ruleFor(method, path)?.requirement ?? fallback,
    modeFor: (method, path) =>
      (path === undefined ? undefined : ruleFor(method, path)?.mode) ?? doc.mode,
    withinRun(binding, path) {
      const found = runMatch(path);
      if (!found) return false;
      const { experiment, variation, run } = found.params;
      return (
        experiment === binding.experiment && variation === binding.variation && run === binding.run
      );
    },
  };
}

/** The policy in force when no file is configured: the default (deny) for every route. */
export const EMPTY_POLICY: Policy = compilePolicy(policySchema.parse({}));

/** Reads, validates and compiles a policy file; errors name the file and field. */
export function loadPolicyFile(file: string, options: PolicyOptions = {}): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`policy ${file}: ${(error as Error).message.split("\n")[0]}`);
  }
  const parsed = policySchema.safeParse(raw ?? {});
  if (!parsed.success) throw new Error(`policy ${file}: ${formatZodError(parsed.error)}`);
  try {
    return compilePolicy(parsed.data, options);
  } catch (error) {
    throw new Error(`policy ${file}: ${(error as Error).message}`);
  }
}

/**
 * Why a rule does not admit this credential, or undefined when it does: the
 * rule's `kinds:`, then for a JWT its `jwt:` issuers and roles. For the deny log.
 */
export function notAdmitted(
  requirement: Requirement,
  identity: { readonly kind: CredentialKind; readonly issuer?: string; readonly role?: string },
): string | undefined {
  if (requirement.type !== "scopes") return undefined;
  if (requirement.kinds !== undefined && !requirement.kinds.includes(identity.kind)) {
    return `the route does not admit ${identity.kind} credentials`;
  }
  const jwt = requirement.jwt;
  if (jwt === undefined || identity.kind !== "jwt") return undefined;
  if (jwt.issuers !== undefined && !jwt.issuers.includes(identity.issuer ?? "")) {
    return "the route does not admit JWTs of this issuer";
  }
  if (jwt.roles !== undefined && !jwt.roles.some((role) => role === identity.role)) {
    return `the route does not admit JWTs of role ${identity.role ?? "none"}`;
  }
  return undefined;
}
