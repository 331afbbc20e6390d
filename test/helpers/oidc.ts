import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { JWTPayload } from "jose";
import { newSigningKey, nowSeconds, type SigningKey, signToken } from "./jwks.js";

/** Options for {@link startOidcIssuer}. */
export interface OidcIssuerOptions {
  /** The only client id the endpoints accept. */
  readonly clientId: string;
  /** `aud` of the access tokens it issues. */
  readonly audience: string;
  /** Issuers this one server plays, each a path prefix: e.g. ["admin", "research"]. */
  readonly tenants: readonly string[];
}

/** One code exchange at the token endpoint, as the issuer judged it. */
export interface Exchange {
  readonly tenant: string;
  /** Empty when the code was exchanged; otherwise the OAuth error it answered. */
  readonly error: string;
  readonly verifierLength: number;
}

/** A loopback OAuth 2.0 / OIDC issuer for the console tests. */
export interface OidcIssuer {
  /** The issuer URL of a tenant (ends with "/", as Auth0's do). */
  issuer(tenant: string): string;
  authorizationEndpoint(tenant: string): string;
  tokenEndpoint(tenant: string): string;
  readonly jwksUrl: string;
  /** Claims (sub, scope, org_id, exp, …) of the token the next sign-in at `tenant` gets. */
  signInAs(tenant: string, claims: JWTPayload): void;
  /** Every code exchange so far. */
  readonly exchanges: readonly Exchange[];
  /** Every authorization request's query, for assertions on what the console sent. */
  readonly authorizations: readonly URLSearchParams[];
  close(): Promise<void>;
}

interface Grant {
  readonly tenant: string;
  readonly challenge: string;
  readonly redirectUri: string;
  readonly claims: JWTPayload;
}

/**
 * Starts an identity provider on 127.0.0.1 written for the tests: an
 * authorization endpoint that approves at once (as if the person had
 * logged in) and redirects back with a code, a token endpoint that checks
 * the PKCE verifier against the challenge (RFC 7636, S256 only) and answers
 * an RS256 access token, and a JWKS endpoint keyward verifies it with. It
 * stands in for Auth0 or the admin portal, which cannot be reached here.
 */
export async function startOidcIssuer(options: OidcIssuerOptions): Promise<OidcIssuer> {
  const signing: SigningKey = await newSigningKey("console-test");
  const grants = new Map<string, Grant>();
  const nextClaims = new Map<string, JWTPayload>();
  const exchanges: Exchange[] = [];
  const authorizations: URLSearchParams[] = [];
  let base = "";

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", base);
    if (url.pathname === "/jwks.json") return json(res, 200, { keys: [signing.jwk] });
    const [, tenant = "", endpoint = ""] = url.pathname.split("/");
    if (!options.tenants.includes(tenant)) return json(res, 404, { error: "not_found" });

    if (endpoint === "authorize" && req.method === "GET") {
      const q = url.searchParams;
      authorizations.push(q);
      const problem =
        q.get("response_type") !== "code"
          ? "response_type must be code"
          : q.get("client_id") !== options.clientId
            ? "unknown client_id"
            : q.get("code_challenge_method") !== "S256"
              ? "code_challenge_method must be S256"
              : !/^[A-Za-z0-9_-]{43}$/.test(q.get("code_challenge") ?? "")
                ? "code_challenge must be a base64url SHA-256"
                : !q.get("state")
                  ? "state is required"
                  : !q.get("redirect_uri")
                    ? "redirect_uri is required"
                    : "";
      if (problem) {
        res.writeHead(400, { "content-type": "text/plain" });
        res.end(problem);
        return;
      }
      const code = randomBytes(16).toString("hex");
      grants.set(code, {
        tenant,
        challenge: q.get("code_challenge") as string,
        redirectUri: q.get("redirect_uri") as string,
        claims: nextClaims.get(tenant) ?? {},
      });
      const back = new URL(q.get("redirect_uri") as string);
      back.searchParams.set("code", code);
      back.searchParams.set("state", q.get("state") as string);
      res.writeHead(302, { location: back.toString() });
      res.end();
      return;
    }

    if (endpoint === "token" && req.method === "POST") {
      // A browser posts here from the console's origin: a CORS answer.
      const cors = { "access-control-allow-origin": req.headers.origin ?? "*" };
      const form = new URLSearchParams(await body(req));
      const grant = grants.get(form.get("code") ?? "");
      grants.delete(form.get("code") ?? "");
      const verifier = form.get("code_verifier") ?? "";
      const error =
        form.get("grant_type") !== "authorization_code"
          ? "unsupported_grant_type"
          : !grant || grant.tenant !== tenant
            ? "invalid_grant"
            : form.get("client_id") !== options.clientId
              ? "invalid_client"
              : form.get("redirect_uri") !== grant.redirectUri
                ? "invalid_grant"
                : createHash("sha256").update(verifier).digest("base64url") !== grant.challenge
                  ? "invalid_grant"
                  : "";
      exchanges.push({ tenant, error, verifierLength: verifier.length });
      if (error || !grant) return json(res, 400, { error }, cors);
      const now = nowSeconds();
      const claims = {
        iss: `${base}/${tenant}/`,
        aud: options.audience,
        iat: now,
        exp: now + 600,
        ...grant.claims,
      };
      const token = await signToken(signing, claims);
      return json(
        res,
        200,
        { access_token: token, token_type: "Bearer", expires_in: Number(claims.exp) - now },
        cors,
      );
    }
    return json(res, 404, { error: "not_found" });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => json(res, 500, { error: "server_error" }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer: (tenant) => `${base}/${tenant}/`,
    authorizationEndpoint: (tenant) => `${base}/${tenant}/authorize`,
    tokenEndpoint: (tenant) => `${base}/${tenant}/token`,
    jwksUrl: `${base}/jwks.json`,
    signInAs: (tenant, claims) => nextClaims.set(tenant, claims),
    exchanges,
    authorizations,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(value));
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
