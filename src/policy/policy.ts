import { readFileSync } from "node:fs";
import type { MatchFunction } from "path-to-regexp";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { RunBinding } from "../auth/identity.js";
import { formatZodError } from "../config/errors.js";
import { scopeList } from "../config/scopes.js";
import { compileTemplate, DEFAULT_WORKER_RUN_PATH } from "./template.js";

const ruleSchema = z
  .object({
    method: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    path: z.string().startsWith("/"),
    scopes: scopeList,
  })
  .strict();

/** The policy file's shape (DESIGN "Route policy"). */
export const policySchema = z
  .object({
    default: z.enum(["deny", "authenticated"]).default("deny"),
    worker_run_path: z.string().startsWith("/").default(DEFAULT_WORKER_RUN_PATH),
    rules: z.array(ruleSchema).default([]),
  })
  .strict();

export type PolicyDocument = z.output<typeof policySchema>;

/** What a route demands of a credential. */
export type Requirement =
  | { readonly type: "scopes"; readonly scopes: readonly string[] }
  /** No rule grants this request and the default is deny. */
  | { readonly type: "deny" };

interface CompiledRule {
  readonly methods: ReadonlySet<string> | "*";
  readonly match: MatchFunction<Record<string, string | string[]>>;
  readonly requirement: Requirement;
}

/** A loaded, compiled route policy. Immutable; reload by loading a new one. */
export interface Policy {
  /** The first matching rule's requirement, else the default's. */
  requirementFor(method: string, path: string): Requirement;
  /** True when `path` lies under the worker's own run. */
  withinRun(binding: RunBinding, path: string): boolean;
  /** Every scope a rule names (the admin API mints no scope outside these and the config's). */
  readonly scopes: ReadonlySet<string>;
}

const DENY: Requirement = { type: "deny" };
const ANY: Requirement = { type: "scopes", scopes: [] };

/** Compiles a validated policy document. Throws naming the rule on a bad template. */
export function compilePolicy(doc: PolicyDocument): Policy {
  const rules: CompiledRule[] = doc.rules.map((rule, index) => {
    try {
      const methods = [rule.method].flat().map((m) => m.toUpperCase());
      return {
        methods: methods.includes("*") ? "*" : new Set(methods),
        match: compileTemplate(rule.path),
        requirement: { type: "scopes", scopes: rule.scopes },
      };
    } catch (error) {
      throw new Error(`rules.${index}.path: ${(error as Error).message}`);
    }
  });
  let runMatch: MatchFunction<Record<string, string | string[]>>;
  try {
    runMatch = compileTemplate(doc.worker_run_path, { prefix: true });
  } catch (error) {
    throw new Error(`worker_run_path: ${(error as Error).message}`);
  }
  const fallback = doc.default === "authenticated" ? ANY : DENY;

  return {
    scopes: new Set(doc.rules.flatMap((rule) => rule.scopes)),
    requirementFor(method, path) {
      for (const rule of rules) {
        if (rule.methods !== "*" && !rule.methods.has(method)) continue;
        if (rule.match(path)) return rule.requirement;
      }
      return fallback;
    },
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
export function loadPolicyFile(file: string): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`policy ${file}: ${(error as Error).message.split("\n")[0]}`);
  }
  const parsed = policySchema.safeParse(raw ?? {});
  if (!parsed.success) throw new Error(`policy ${file}: ${formatZodError(parsed.error)}`);
  try {
    return compilePolicy(parsed.data);
  } catch (error) {
    throw new Error(`policy ${file}: ${(error as Error).message}`);
  }
}
