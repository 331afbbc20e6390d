import fc from "fast-check";
import type { RunBinding } from "../../src/auth/identity.js";
import type { KeyRepository } from "../../src/keys/repository.js";
import { readCredential } from "../../src/pipeline/credential.js";
import { routePath } from "../../src/pipeline/path.js";
import type { Policy } from "../../src/policy/policy.js";
import { DATA_SCOPES } from "./admin.js";
import type { WireRequest } from "./hardening.js";

// The key table as the property tests model it, the outcome a request must
// get under that model, and the arbitraries the properties draw from.

/** Every data-plane scope of the seeds' table. */

/** A key the test minted, and what state the model says its secret is in. */
export interface Minted {
  readonly secret: string;
  readonly id: string;
  readonly kind: string;
  readonly scopes: readonly string[];
  readonly binding: RunBinding | undefined;
  readonly state: "valid" | "revoked" | "expired" | "rotated-out";
}

export const RUN: RunBinding = { experiment: "e1", variation: "v1", run: "r1" };

/**
 * Mints one key of each interesting shape through `store` (a connection of
 * its own, as an operator's CLI would have): valid keys of every kind, a
 * worker key bound to {@link RUN}, a revoked key, an expired key and the old
 * secret of a rotated key. These are the only credentials that exist.
 */
export function mintPool(store: KeyRepository, now = Date.now()): Minted[] {
  const pool: Minted[] = [];
  const add = (
    minted: { secret: string; key: { id: string; kind: string; scopes: readonly string[] } },
    state: Minted["state"],
    binding?: RunBinding,
  ) =>
    pool.push({
      secret: minted.secret,
      id: minted.key.id,
      kind: minted.key.kind,
      scopes: minted.key.scopes,
      binding,
      state,
    });
  add(
    store.create({ kind: "live", tenant: "acme", scopes: ["sources:read", "items:read"] }),
    "valid",
  );
  add(
    store.create({ kind: "user", owner: "alice", scopes: ["sources:read", "runs:read"] }),
    "valid",
  );
  add(store.create({ kind: "agent", scopes: DATA_SCOPES }), "valid");
  add(store.create({ kind: "live", scopes: [] }), "valid");
  add(store.create({ kind: "worker", binding: RUN, scopes: ["runs:read"] }), "valid", RUN);
  const revoked = store.create({ kind: "live", scopes: DATA_SCOPES });
  store.revoke(revoked.key.id);
  add(revoked, "revoked");
  add(store.create({ kind: "agent", scopes: DATA_SCOPES, expiresAt: now - 60_000 }), "expired");
  const rotated = store.create({ kind: "user", scopes: DATA_SCOPES });
  const fresh = store.rotate(rotated.key.id);
  if (!fresh) throw new Error("rotation failed");
  add(rotated, "rotated-out");
  add(fresh, "valid");
  return pool;
}

/** What a request must get: allow with a given key, or a deny code. */
export type Expected = { readonly allow: Minted } | { readonly code: string };

/**
 * The outcome DESIGN prescribes for a request, under the model of the key
 * table. The credential parser and path canonicalisation are the project's
 * own (property-tested on their own below); everything else is the table of
 * DESIGN "Decisions" and "Route policy", written out here.
 */
export function expectedOutcome(
  view: {
    method: string;
    path: string;
    authorization: string | undefined;
    requiredScopes: string | undefined;
  },
  bySecret: ReadonlyMap<string, Minted>,
  policy: Policy,
): Expected {
  const credential = readCredential(view.authorization);
  if (credential.type === "none") return { code: "missing_credential" };
  if (credential.type !== "key") return { code: "invalid_token" }; // malformed, or a JWT with no issuer
  const key = bySecret.get(credential.token);
  if (!key || key.state === "rotated-out") return { code: "invalid_token" };
  if (key.state === "revoked") return { code: "key_revoked" };
  if (key.state === "expired") return { code: "key_expired" };
  const path = routePath(view.path);
  let required: readonly string[] | undefined;
  if (view.requiredScopes !== undefined) {
    required = view.requiredScopes.split(/\s+/).filter((s) => s !== "");
  } else if (path !== undefined) {
    const requirement = policy.requirementFor(view.method.toUpperCase(), path);
    required = requirement.type === "scopes" ? requirement.scopes : undefined;
  }
  if (required === undefined) return { code: "insufficient_scope" };
  // A rule's kinds: apply whichever source set the scopes (DESIGN "Route policy").
  const rule =
    path === undefined ? undefined : policy.requirementFor(view.method.toUpperCase(), path);
  if (
    rule?.type === "scopes" &&
    rule.kinds !== undefined &&
    !rule.kinds.some((kind) => kind === key.kind)
  ) {
    return { code: "insufficient_scope" };
  }
  if (!required.every((scope) => key.scopes.includes(scope))) return { code: "insufficient_scope" };
  if (key.binding && (path === undefined || !policy.withinRun(key.binding, path))) {
    return { code: "insufficient_scope" };
  }
  return { allow: key };
}

// --- arbitraries --------------------------------------------------------------

const HEX = [..."0123456789abcdef"];
const B64URL = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"];
const hex = (length: number) =>
  fc.string({ unit: fc.constantFrom(...HEX), minLength: length, maxLength: length });
const hexish = (length: number) =>
  fc.oneof(
    { arbitrary: hex(length), weight: 3 },
    fc.string({
      unit: fc.constantFrom(...HEX, "A", "F", "g", "_", "-", "0"),
      minLength: Math.max(0, length - 2),
      maxLength: length + 2,
    }),
  );

/** A secret of the pool, changed just enough to be wrong (or, rarely, not at all). */
function nearMiss(secrets: readonly string[]): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.constantFrom(...secrets),
      fc.nat(),
      fc.constantFrom(...HEX, "G", "_", "x", " ", "="),
      fc.constantFrom("replace", "truncate", "append", "upper", "insert"),
    )
    .map(([secret, at, char, how]) => {
      const i = at % secret.length;
      switch (how) {
        case "replace":
          return secret.slice(0, i) + char + secret.slice(i + 1);
        case "truncate":
          return secret.slice(0, i);
        case "append":
          return secret + char;
        case "upper":
          return secret.toUpperCase();
        default:
          return secret.slice(0, i) + char + secret.slice(i);
      }
    });
}

/** Anything that might sit after "Bearer ": real secrets, near misses, key- and JWT-shaped junk, any text. */
export function tokenArb(pool: readonly Minted[]): fc.Arbitrary<string> {
  const secrets = pool.map((m) => m.secret);
  const segment = fc.oneof(
    fc.string({ unit: fc.constantFrom(...B64URL), maxLength: 40 }),
    fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v)).toString("base64url")),
  );
  return fc.oneof(
    { arbitrary: fc.constantFrom(...secrets), weight: 8 },
    { arbitrary: nearMiss(secrets), weight: 3 },
    {
      arbitrary: fc
        .tuple(
          fc.constantFrom("live", "user", "agent", "worker", "test", "LIVE", ""),
          hexish(16),
          hexish(48),
        )
        .map(([kind, id, secret]) => `sk_${kind}_${id}_${secret}`),
      weight: 3,
    },
    { arbitrary: fc.tuple(segment, segment, segment).map((s) => s.join(".")), weight: 2 },
    {
      arbitrary: segment.map(
        (payload) =>
          `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${payload}.`,
      ),
      weight: 1,
    },
    { arbitrary: fc.string({ unit: "grapheme", maxLength: 60 }), weight: 1 },
    { arbitrary: fc.string({ unit: "binary", maxLength: 60 }), weight: 1 },
  );
}

/** An `authorization` header value: mostly Bearer, in every spelling, and junk. */
export function authorizationArb(pool: readonly Minted[]): fc.Arbitrary<string> {
  const token = tokenArb(pool);
  return fc.oneof(
    { arbitrary: token.map((t) => `Bearer ${t}`), weight: 8 },
    {
      arbitrary: fc
        .tuple(
          fc.constantFrom("Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Token", "Bearer:", ""),
          fc.constantFrom(" ", "  ", "\t", " \t", "", "\u00a0"),
          token,
          fc.constantFrom("", " ", "   ", "\t", ",", ", Bearer x", "\r\n", "\u200b"),
        )
        .map(([scheme, gap, t, tail]) => `${scheme}${gap}${t}${tail}`),
      weight: 4,
    },
    { arbitrary: fc.string({ unit: "binary", maxLength: 100 }), weight: 1 },
    { arbitrary: fc.constantFrom("", " ", "\t", "Bearer", "Bearer "), weight: 1 },
  );
}

const SEGMENTS = [
  "api",
  "v1",
  "sources",
  "items",
  "runs",
  "apply",
  "batch",
  "experiments",
  "variations",
  "e1",
  "v1",
  "r1",
  "r2",
  "s1",
  "..",
  ".",
  "%2e%2e",
  "%2F",
  "%5c",
  "",
  "a\\b",
];
const KNOWN_PATHS = [
  "/api/v1/sources",
  "/api/v1/sources/s1",
  "/api/v1/sources/s1/items",
  "/api/v1/sources/s1/runs",
  "/api/v1/sources/s1/runs/r1/apply",
  "/experiments/e1/variations/v1/runs/r1",
  "/experiments/e1/variations/v1/runs/r1/steps/3",
  "/experiments/e1/variations/v1/runs/r2",
  "/experiments/e1/variations/v1/runs/r1/../../../../../api/v1/sources",
];

/** Request targets: the policy's routes, compositions of their segments, any text. */
export const pathArb: fc.Arbitrary<string> = fc
  .tuple(
    fc.oneof(
      { arbitrary: fc.constantFrom(...KNOWN_PATHS), weight: 4 },
      {
        arbitrary: fc
          .array(
            fc.oneof(
              { arbitrary: fc.constantFrom(...SEGMENTS), weight: 4 },
              fc.string({ unit: "grapheme-ascii", maxLength: 8 }),
              fc.string({ unit: "grapheme", maxLength: 3 }),
            ),
            { maxLength: 8 },
          )
          .map((segments) => `/${segments.join("/")}`),
        weight: 3,
      },
      { arbitrary: fc.string({ unit: "binary", maxLength: 60 }), weight: 1 },
    ),
    fc.constantFrom("", "", "", "?x=1", "?", "#frag", "?a=/api/v1/sources", "/"),
  )
  .map(([path, suffix]) => path + suffix);

export const methodArb: fc.Arbitrary<string> = fc.oneof(
  {
    arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "get", "Post", "HEAD", ""),
    weight: 5,
  },
  fc.string({ maxLength: 10 }),
);

const SCOPE_CHARS = Array.from({ length: 0x7e - 0x20 }, (_, i) =>
  String.fromCharCode(0x21 + i),
).filter((c) => c !== '"' && c !== "\\");

/** Envoy's per-route `required_scopes`, or none (the policy decides). */
export const requiredScopesArb: fc.Arbitrary<string | undefined> = fc.option(
  fc.oneof(
    fc.constant(""),
    fc.subarray(DATA_SCOPES).map((s) => s.join(" ")),
    fc.subarray(DATA_SCOPES).map((s) => ` ${s.join(" \t ")}  `),
    // Envoy route configuration is the operator's: scope-token characters and
    // whitespace. A quote in it is covered by test/hardening/limits.test.ts.
    fc.string({ unit: fc.constantFrom(...SCOPE_CHARS, " ", "\t"), maxLength: 30 }),
  ),
  { nil: undefined, freq: 2 },
);

const headerNameArb = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      "host",
      "user-agent",
      "content-type",
      "x-auth-kind",
      "x-auth-subject",
      "x-auth-key-id",
      "x-auth-tenant",
      "x-auth-scopes",
      "x-auth-evil",
      "X-Auth-Tenant",
      "x-authz",
      "x-forwarded-for",
      "Authorization",
    ),
    weight: 4,
  },
  fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 12 }),
);
const headerValueArb = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** A whole CheckRequest as Envoy could send it, and what the server will see of it. */
export interface WireCase {
  readonly request: WireRequest;
  /** The `authorization` value the server must read (joined as Envoy joins repeats). */
  readonly authorization: string | undefined;
  /** Lower-case names of every client-sent header. */
  readonly headerNames: readonly string[];
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * CheckRequests with arbitrary methods, paths, header maps or raw header
 * lists (raw_value bytes, valid UTF-8 or not), repeated or re-cased
 * authorization headers, spoofed identity headers and context extensions.
 */
export function wireCaseArb(pool: readonly Minted[]): fc.Arbitrary<WireCase> {
  return fc
    .record({
      method: methodArb,
      path: pathArb,
      auth: fc.option(fc.array(authorizationArb(pool), { minLength: 1, maxLength: 2 }), {
        nil: undefined,
        freq: 6,
      }),
      authName: fc.constantFrom("authorization", "authorization", "Authorization", "AUTHORIZATION"),
      others: fc.array(fc.tuple(headerNameArb, headerValueArb), { maxLength: 10 }),
      raw: fc.boolean(),
      rawJunk: fc.array(fc.tuple(headerNameArb, fc.uint8Array({ maxLength: 40 })), {
        maxLength: 3,
      }),
      requiredScopes: requiredScopesArb,
      extensions: fc.dictionary(
        fc.string({ maxLength: 10 }).filter((k) => k !== "required_scopes"),
        fc.string({ maxLength: 10 }),
        { maxKeys: 2 },
      ),
    })
    .map(({ method, path, auth, authName, others, raw, rawJunk, requiredScopes, extensions }) => {
      const entries: [string, string][] = [...others];
      for (const value of auth ?? []) entries.push([authName, value]);
      const contextExtensions: Record<string, string> = { ...extensions };
      if (requiredScopes !== undefined) contextExtensions.required_scopes = requiredScopes;
      let seen: [string, string][];
      let request: WireRequest;
      if (raw) {
        const rawHeaders: [string, Uint8Array][] = entries.map(([k, v]) => [k, Buffer.from(v)]);
        rawHeaders.push(...rawJunk);
        request = { method, path, rawHeaders, contextExtensions };
        // An empty raw_value falls back to `value`, which is "" here.
        seen = rawHeaders.map(([k, v]) => [k, utf8.decode(v)]);
      } else {
        const headers: Record<string, string> = {};
        for (const [k, v] of entries) headers[k] = v;
        request = { method, path, headers, contextExtensions };
        seen = Object.entries(headers);
      }
      let authorization: string | undefined;
      for (const [k, v] of seen) {
        if (k.toLowerCase() !== "authorization") continue;
        authorization = authorization === undefined ? v : `${authorization}, ${v}`;
      }
      return { request, authorization, headerNames: seen.map(([k]) => k.toLowerCase()) };
    });
}
