import { describe, expect, it } from "vitest";
import { issuerSchema, issuersSchema } from "../../src/config/issuers.js";

const base = { issuer: "https://tenant.eu.auth0.com/", audience: "https://api.example.com" };
const withUri = { ...base, jwks_uri: "https://tenant.eu.auth0.com/.well-known/jwks.json" };

/** The issues of a failed parse as "path: message" lines. */
function problems(
  input: unknown,
  schema: typeof issuerSchema | typeof issuersSchema = issuerSchema,
) {
  const result = schema.safeParse(input);
  if (result.success) throw new Error("expected the entry to be rejected");
  return result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

describe("issuer config schema", () => {
  it("applies the documented defaults", () => {
    expect(issuerSchema.parse(withUri)).toEqual({
      ...withUri,
      algorithms: ["RS256"],
      scopes_claim: "scope",
      subject_claim: "sub",
      role: "researcher",
      clock_tolerance: 5,
    });
  });

  it("accepts a jwks_file, a list audience and the optional fields", () => {
    const entry = {
      ...base,
      audience: ["a", "b"],
      jwks_file: "/etc/keyward/jwks.json",
      algorithms: ["RS256", "ES256"],
      scopes_claim: "permissions",
      tenant_claim: "org_id",
      subject_claim: "email",
      role: "admin",
      clock_tolerance: 0,
    };
    expect(issuerSchema.parse(entry)).toEqual(entry);
  });

  it("rejects an unknown field, naming it", () => {
    expect(problems({ ...withUri, jwks_url: "https://x" })).toEqual([
      ': Unrecognized key: "jwks_url"',
    ]);
  });

  it("rejects both jwks_uri and jwks_file", () => {
    expect(problems({ ...withUri, jwks_file: "/tmp/jwks.json" })).toEqual([
      "jwks_file: set either jwks_uri or jwks_file, not both",
    ]);
  });

  it("rejects neither jwks_uri nor jwks_file", () => {
    expect(problems(base)).toEqual(["jwks_uri: one of jwks_uri or jwks_file is required"]);
  });

  it("rejects alg none with a readable message", () => {
    expect(problems({ ...withUri, algorithms: ["none"] })).toEqual([
      'algorithms.0: "none" accepts unsigned tokens and is never allowed',
    ]);
  });

  it("rejects HS256 with a readable message", () => {
    expect(problems({ ...withUri, algorithms: ["RS256", "HS256"] })).toEqual([
      "algorithms.1: HS256 is a shared-secret (HMAC) algorithm and is not allowed; use an asymmetric one such as RS256",
    ]);
  });

  it("rejects an unknown algorithm, listing the allowed ones", () => {
    const [message] = problems({ ...withUri, algorithms: ["RS1"] });
    expect(message).toMatch(/^algorithms\.0: unsupported algorithm "RS1"; expected one of RS256, /);
  });

  it("rejects an empty algorithm list, a negative clock tolerance and a bad role", () => {
    expect(problems({ ...withUri, algorithms: [], clock_tolerance: -1, role: "root" })).toEqual([
      "algorithms: must list at least one algorithm",
      'role: Invalid option: expected one of "researcher"|"admin"',
      "clock_tolerance: must be >= 0 seconds",
    ]);
  });

  it("rejects a jwks_uri that is not http(s)", () => {
    expect(problems({ ...base, jwks_uri: "file:///etc/jwks.json" })).toEqual([
      "jwks_uri: must be an http(s) URL",
    ]);
  });

  it("requires issuer and audience", () => {
    expect(problems({ jwks_uri: withUri.jwks_uri })).toEqual([
      "issuer: Invalid input: expected string, received undefined",
      "audience: must be a string or a list of strings",
    ]);
  });

  it("rejects an empty audience list", () => {
    expect(problems({ ...withUri, audience: [] })).toEqual([
      "audience: must list at least one audience",
    ]);
  });

  it("rejects two entries for the same issuer", () => {
    expect(problems([withUri, withUri], issuersSchema)).toEqual([
      '1.issuer: duplicate issuer "https://tenant.eu.auth0.com/"',
    ]);
  });

  describe("console block", () => {
    const client = {
      client_id: "kw-console",
      authorization_endpoint: "https://tenant.eu.auth0.com/authorize",
      token_endpoint: "https://tenant.eu.auth0.com/oauth/token",
    };

    it("accepts a public client with https endpoints and an optional scope", () => {
      const entry = { ...withUri, console: { ...client, scope: "openid runs:read" } };
      expect(issuerSchema.parse(entry).console).toEqual(entry.console);
      const local = {
        client_id: "dev",
        authorization_endpoint: "http://127.0.0.1:8080/authorize",
        token_endpoint: "http://localhost:8080/token",
      };
      expect(issuerSchema.parse({ ...withUri, console: local }).console).toEqual(local);
    });

    it("rejects plain http away from loopback, relative URLs and fragments, naming the field", () => {
      expect(
        problems({
          ...withUri,
          console: { ...client, token_endpoint: "http://idp.example.com/token" },
        }),
      ).toEqual(["console.token_endpoint: must be an https URL (http only on a loopback host)"]);
      expect(
        problems({ ...withUri, console: { ...client, authorization_endpoint: "/authorize" } }),
      ).toEqual(["console.authorization_endpoint: must be an absolute URL"]);
      expect(
        problems({
          ...withUri,
          console: { ...client, authorization_endpoint: "https://u:p@idp.example.com/a#x" },
        }),
      ).toEqual(["console.authorization_endpoint: must have no fragment and no user or password"]);
    });

    it("refuses a client secret: the console is a public client", () => {
      expect(problems({ ...withUri, console: { ...client, client_secret: "s3cret" } })).toEqual([
        "console.client_secret: the console is a public client (PKCE): no client secret belongs here",
      ]);
    });

    it("rejects a client_id with spaces, a missing endpoint and a malformed scope", () => {
      expect(problems({ ...withUri, console: { ...client, client_id: "a b" } })).toEqual([
        "console.client_id: 1 to 200 printable ASCII characters without spaces",
      ]);
      expect(
        problems({ ...withUri, console: { client_id: "x", authorization_endpoint: "https://a/" } }),
      ).toEqual(["console.token_endpoint: Invalid input: expected string, received undefined"]);
      expect(problems({ ...withUri, console: { ...client, scope: 'a  "b"' } })).toEqual([
        "console.scope: space-separated scope tokens (RFC 6749), one space apart",
      ]);
    });
  });
});
