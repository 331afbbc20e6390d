import { type Client, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type Key, KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { EnvoyCheckClient } from "./envoy-client.js";
import {
  AUDIENCE,
  claims,
  newSigningKey,
  nowSeconds,
  type SigningKey,
  signToken,
  startJwksServer,
} from "./jwks.js";
import { startTestKeyward, type TestKeyward } from "./keyward.js";

/** Issuer of admin-portal session JWTs (role admin, tenant in org_id). */
export const ADMIN_ISSUER = "https://admin.portal.example.com/";
/** Issuer of researchers' Auth0 access tokens (role researcher). */
export const RESEARCHER_ISSUER = "https://research.eu.auth0.com/";

/**
 * A real keyward with the admin API on an ephemeral port, two JWT issuers
 * served by a real JWKS server on loopback, a keys:admin API key, and
 * helpers to mint tokens and call the admin API and Check.
 */
export interface AdminFixture {
  readonly kw: TestKeyward;
  readonly adminUrl: string;
  /** An API key holding keys:admin (minted directly in the database, as bootstrap does). */
  readonly rootToken: string;
  /** Admin-portal session JWT for a tenant, with the given scopes. */
  adminJwt(tenant: string, scopes?: string[], extra?: Record<string, unknown>): Promise<string>;
  /** Researcher's Auth0 access token, with the given scopes. */
  researcherJwt(
    subject: string,
    scopes?: string[],
    extra?: Record<string, unknown>,
  ): Promise<string>;
  /** KeyService client speaking Connect JSON over HTTP/1.1 (what curl speaks). */
  client(token?: string): Client<typeof KeyService>;
  /** KeyService client speaking gRPC over HTTP/2. */
  grpcClient(token?: string): Client<typeof KeyService>;
  /** ext_authz Check client built from Envoy's canonical protos. */
  readonly check: EnvoyCheckClient;
  close(): Promise<void>;
}

/** Every data-plane scope of the seeds' table. */
export const DATA_SCOPES = [
  "sources:read",
  "sources:write",
  "items:read",
  "items:write",
  "runs:read",
  "runs:execute",
  "runs:apply",
];

export async function startAdminFixture(
  config: Record<string, unknown> = {},
): Promise<AdminFixture> {
  const signing: SigningKey = await newSigningKey("admin-test");
  const jwks = await startJwksServer([signing.jwk]);
  const kw = await startTestKeyward({
    issuers: [
      {
        issuer: ADMIN_ISSUER,
        audience: AUDIENCE,
        jwks_uri: jwks.url,
        role: "admin",
        tenant_claim: "org_id",
        scopes_claim: "permissions",
      },
      {
        issuer: RESEARCHER_ISSUER,
        audience: AUDIENCE,
        jwks_uri: jwks.url,
        role: "researcher",
        tenant_claim: "org_id",
      },
    ],
    ...config,
  });
  const root = kw.store.create({
    kind: "live",
    name: "bootstrap",
    scopes: ["keys:admin"],
    owner: "root",
  });
  const adminUrl = `http://127.0.0.1:${kw.ports.admin}`;
  const check = new EnvoyCheckClient(kw.ports.check);
  const withToken = (token: string | undefined) =>
    token ? { authorization: `Bearer ${token}` } : ({} as Record<string, string>);
  return {
    kw,
    adminUrl,
    rootToken: root.secret,
    adminJwt: (tenant, scopes = DATA_SCOPES, extra = {}) =>
      signToken(
        signing,
        claims({
          iss: ADMIN_ISSUER,
          sub: `admin|${tenant}`,
          org_id: tenant,
          permissions: scopes,
          scope: undefined,
          exp: nowSeconds() + 600,
          ...extra,
        }),
      ),
    researcherJwt: (subject, scopes = ["sources:read", "runs:read", "runs:execute"], extra = {}) =>
      signToken(
        signing,
        claims({
          iss: RESEARCHER_ISSUER,
          sub: subject,
          scope: scopes.join(" "),
          exp: nowSeconds() + 600,
          ...extra,
        }),
      ),
    client: (token) =>
      createClient(
        KeyService,
        createConnectTransport({
          baseUrl: adminUrl,
          httpVersion: "1.1",
          interceptors: [headerInterceptor(withToken(token))],
        }),
      ),
    grpcClient: (token) =>
      createClient(
        KeyService,
        createGrpcTransport({
          baseUrl: adminUrl,
          interceptors: [headerInterceptor(withToken(token))],
        }),
      ),
    check,
    async close() {
      check.close();
      await kw.close();
      await jwks.close();
    },
  };
}

function headerInterceptor(headers: Record<string, string>): Interceptor {
  return (next) => (req) => {
    for (const [name, value] of Object.entries(headers)) req.header.set(name, value);
    return next(req);
  };
}

/** A REST answer of the admin port: its status and its JSON body ({} when there is none). */
export interface RestAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * Calls a REST route of the admin port with fetch. `body` is sent as given
 * (a string) or as JSON (anything else), labelled `contentType`
 * (application/json by default; null sends no content-type).
 */
export async function rest(
  f: AdminFixture,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; contentType?: string | null } = {},
): Promise<RestAnswer> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const contentType = options.contentType === undefined ? "application/json" : options.contentType;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    if (contentType !== null) headers["content-type"] = contentType;
  }
  // fetch labels a string body text/plain unless told otherwise; a Blob without a type sends none.
  const sent = body !== undefined && contentType === null ? new Blob([body]) : body;
  const response = await fetch(`${f.adminUrl}${path}`, { method, headers, body: sent });
  const text = await response.text();
  return {
    status: response.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

/** Calls Check for a GET of `path` with `token` and returns "allow" or the deny code. */
export async function decide(
  check: EnvoyCheckClient,
  token: string,
  path = "/api/v1/sources",
  method = "GET",
): Promise<string> {
  const response = await check.check({
    method,
    path,
    headers: { authorization: `Bearer ${token}` },
  });
  if (response.status?.code === 0) return "allow";
  return (JSON.parse(response.denied_response?.body ?? "{}") as { error: string }).error;
}

/** The error a call was refused with; fails the test when the call succeeds. */
export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

/** The key in an answer; fails the test when it is missing. */
export function keyOf(response: { key?: Key | undefined }): Key {
  if (!response.key) throw new Error("response has no key");
  return response.key;
}
