import { z } from "zod";
import { SCOPE_TOKEN } from "../auth/scope.js";

/**
 * The JWS algorithms an issuer may be configured with: asymmetric ones only.
 * `none` (unsigned) and the HMAC family (`HS*`) are absent on purpose: with a
 * shared secret, anyone who can read the JWKS could mint tokens, which is the
 * algorithm-confusion attack.
 */
export const JWT_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

/** One allowed JWS algorithm (an element of {@link JWT_ALGORITHMS}). */
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Default `algorithms`: Auth0 signs access tokens with RS256. */
export const DEFAULT_ALGORITHMS: readonly JwtAlgorithm[] = ["RS256"];
/** Default `scopes_claim`: the OAuth 2.0 space-separated `scope` string. */
export const DEFAULT_SCOPES_CLAIM = "scope";
/** Default `subject_claim`. */
export const DEFAULT_SUBJECT_CLAIM = "sub";
/**
 * Default `clock_tolerance`, in seconds. Small on purpose: it only absorbs
 * clock drift between the IdP and this host (NTP keeps that well under a
 * second); a large value would extend the life of every token.
 */
export const DEFAULT_CLOCK_TOLERANCE_S = 5;

function algorithmMessage(input: unknown): string {
  if (typeof input === "string" && input.toLowerCase() === "none") {
    return '"none" accepts unsigned tokens and is never allowed';
  }
  if (typeof input === "string" && /^hs\d+$/i.test(input)) {
    return `${input} is a shared-secret (HMAC) algorithm and is not allowed; use an asymmetric one such as RS256`;
  }
  return `unsupported algorithm ${JSON.stringify(input)}; expected one of ${JWT_ALGORITHMS.join(", ")}`;
}

const nonEmpty = z.string().min(1, "must not be empty");

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * An endpoint the browser is sent to or posts to: https, or http on a
 * loopback host (a local IdP while developing). No fragment, no credentials
 * in the URL: it is published to every visitor of the console.
 */
const consoleEndpoint = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: "custom", message: "must be an absolute URL" });
    return;
  }
  if (
    url.protocol !== "https:" &&
    !(url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname))
  ) {
    ctx.addIssue({
      code: "custom",
      message: "must be an https URL (http only on a loopback host)",
    });
  } else if (url.hash || url.username || url.password) {
    ctx.addIssue({ code: "custom", message: "must have no fragment and no user or password" });
  }
});

/**
 * An issuer's `console:` block: the public OAuth 2.0 client the key console
 * signs in with (authorization code + PKCE, RFC 7636). A browser page cannot
 * keep a secret, so there is no client secret; everything here is shown to
 * every visitor of /console/.
 */
export const consoleClientSchema = z.strictObject({
  /** The client id registered at the IdP for the console (a public client). */
  client_id: z
    .string()
    .regex(/^[\x21-\x7e]{1,200}$/, "1 to 200 printable ASCII characters without spaces"),
  authorization_endpoint: consoleEndpoint,
  token_endpoint: consoleEndpoint,
  /** Space-separated scopes to ask for (Auth0 puts only requested scopes in `scope`). Default: none. */
  scope: z
    .string()
    .refine(
      (value) => value.split(" ").every((token) => SCOPE_TOKEN.test(token)),
      "space-separated scope tokens (RFC 6749), one space apart",
    )
    .optional(),
  client_secret: z
    .never({ error: "the console is a public client (PKCE): no client secret belongs here" })
    .optional(),
});

/**
 * One entry of the config file's `issuers:` list (snake_case, unknown fields
 * rejected). Exactly one of `jwks_uri` (fetched over HTTP(S)) and `jwks_file`
 * (read from disk and watched) names where the issuer's public keys live.
 *
 * Defaults: `algorithms` [RS256], `scopes_claim` "scope", `subject_claim`
 * "sub", `role` "researcher", `clock_tolerance` 5 (seconds); `tenant_claim`
 * unset means every identity from this issuer has tenant "".
 */
export const issuerSchema = z
  .strictObject({
    /** Must equal the token's `iss` exactly (Auth0 issuers end with "/"). */
    issuer: nonEmpty,
    /** The token's `aud` must contain (one of) these. */
    audience: z.union([nonEmpty, z.array(nonEmpty).min(1, "must list at least one audience")], {
      error: "must be a string or a list of strings",
    }),
    jwks_uri: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
    jwks_file: nonEmpty.optional(),
    algorithms: z
      .array(z.enum(JWT_ALGORITHMS, { error: (issue) => algorithmMessage(issue.input) }))
      .min(1, "must list at least one algorithm")
      .default([...DEFAULT_ALGORITHMS]),
    /**
     * "scope" is read as a space-separated string, other names (Auth0 RBAC's
     * "permissions") as a list; either shape is accepted from either claim.
     */
    scopes_claim: nonEmpty.default(DEFAULT_SCOPES_CLAIM),
    tenant_claim: nonEmpty.optional(),
    subject_claim: nonEmpty.default(DEFAULT_SUBJECT_CLAIM),
    role: z.enum(["researcher", "admin"]).default("researcher"),
    clock_tolerance: z.number().min(0, "must be >= 0 seconds").default(DEFAULT_CLOCK_TOLERANCE_S),
    /** Lets the key console sign in against this issuer (DESIGN "Key console"). */
    console: consoleClientSchema.optional(),
  })
  .superRefine((entry, ctx) => {
    const hasUri = entry.jwks_uri !== undefined;
    const hasFile = entry.jwks_file !== undefined;
    if (hasUri === hasFile) {
      ctx.addIssue({
        code: "custom",
        path: hasUri ? ["jwks_file"] : ["jwks_uri"],
        message: hasUri
          ? "set either jwks_uri or jwks_file, not both"
          : "one of jwks_uri or jwks_file is required",
      });
    }
  });

/**
 * The whole `issuers:` list. Issuers are told apart by the token's `iss`, so
 * two entries with the same `issuer` would be ambiguous and are rejected.
 */
export const issuersSchema = z.array(issuerSchema).superRefine((entries, ctx) => {
  const seen = new Set<string>();
  entries.forEach((entry, index) => {
    if (seen.has(entry.issuer)) {
      ctx.addIssue({
        code: "custom",
        path: [index, "issuer"],
        message: `duplicate issuer ${JSON.stringify(entry.issuer)}`,
      });
    }
    seen.add(entry.issuer);
  });
});

/** An issuer's validated `console:` block. */
export type ConsoleClientConfig = z.output<typeof consoleClientSchema>;

/** One validated issuer entry, defaults applied. */
export type IssuerConfig = z.output<typeof issuerSchema>;
