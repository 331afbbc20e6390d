import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { identityHeaders } from "../../src/auth/identity-headers.js";
import { DEFAULTS } from "../../src/config/schema.js";
import { policySchema } from "../../src/policy/policy.js";

/** The facts deploy/ must agree with, taken from keyward's own source. */
export const PORTS = {
  check: DEFAULTS.checkPort,
  admin: DEFAULTS.adminPort,
  http: DEFAULTS.httpPort,
} as const;

/** x-auth-kind, x-auth-subject, x-auth-key-id, x-auth-tenant, x-auth-scopes, as keyward sends them. */
export const IDENTITY_HEADERS: readonly string[] = identityHeaders({
  kind: "live",
  subject: "s",
  keyId: "k",
  tenant: "t",
  scopes: ["a"],
  expiresAt: undefined,
  binding: undefined,
}).map(([name]) => name);

/** Every file under deploy/, as repository-relative paths. */
export function deployFiles(dir = "deploy"): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? deployFiles(path) : [relative(".", path)];
  });
}

/** A YAML value as a loose tree, for reading manifests. */
// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped trees, read by tests only
export type Tree = any;

/** All documents of a YAML file; throws on any parse error or warning (duplicate keys included). */
export function readYamlDocuments(file: string): Tree[] {
  const documents = parseAllDocuments(readFileSync(file, "utf8"));
  if (!Array.isArray(documents)) return [];
  return documents.map((document, index) => {
    const problems = [...document.errors, ...document.warnings];
    if (problems.length > 0) {
      throw new Error(
        `${file} document ${index + 1}: ${problems.map((p) => p.message).join("; ")}`,
      );
    }
    return document.toJS();
  });
}

/** The one document of a given kind (and name); throws when there is not exactly one. */
export function findDocument(
  documents: readonly Tree[],
  kind: string,
  name?: string,
  namespace?: string,
): Tree {
  const found = documents.filter(
    (d) =>
      d?.kind === kind &&
      (name === undefined || d.metadata?.name === name) &&
      (namespace === undefined || d.metadata?.namespace === namespace),
  );
  if (found.length !== 1) {
    throw new Error(`expected one ${kind} ${name ?? ""} ${namespace ?? ""}, found ${found.length}`);
  }
  return found[0];
}

/** The parsed deploy/policy.yaml. */
export function shippedPolicy(): Tree {
  return parse(readFileSync("deploy/policy.yaml", "utf8"));
}

/** Every scope any rule of deploy/policy.yaml names: the scope vocabulary. */
export function policyScopes(): Set<string> {
  const policy = policySchema.parse(shippedPolicy());
  return new Set(policy.rules.flatMap((rule) => rule.scopes));
}

/** Envoy's type.matcher.v3.StringMatcher, evaluated on a header name. */
export function stringMatcherMatches(matcher: Tree, value: string): boolean {
  const fold = (s: string) => (matcher.ignore_case ? s.toLowerCase() : s);
  const v = fold(value);
  if (matcher.exact !== undefined) return v === fold(matcher.exact);
  if (matcher.prefix !== undefined) return v.startsWith(fold(matcher.prefix));
  if (matcher.suffix !== undefined) return v.endsWith(fold(matcher.suffix));
  if (matcher.contains !== undefined) return v.includes(fold(matcher.contains));
  if (matcher.safe_regex !== undefined)
    return new RegExp(`^(?:${matcher.safe_regex.regex})$`).test(value);
  throw new Error(`unsupported StringMatcher ${JSON.stringify(matcher)}`);
}

/** True when any pattern of a ListStringMatcher matches. */
export function listMatcherMatches(list: Tree, value: string): boolean {
  return (list?.patterns ?? []).some((pattern: Tree) => stringMatcherMatches(pattern, value));
}
