import type { Page } from "playwright-core";
import { expect } from "vitest";
import { AUDIENCE } from "../helpers/jwks.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";
import { type OidcIssuer, startOidcIssuer } from "../helpers/oidc.js";

export const CLIENT_ID = "keyward-console";

/** A keyward whose two issuers (admin portal, researchers) sign in to the console with PKCE. */
export interface ConsoleFixture {
  readonly kw: TestKeyward;
  readonly idp: OidcIssuer;
  readonly adminUrl: string;
  readonly consoleUrl: string;
  /** An API key holding keys:admin, minted on the database file as bootstrap does. */
  readonly rootToken: string;
  close(): Promise<void>;
}

export async function startConsoleFixture(): Promise<ConsoleFixture> {
  const idp = await startOidcIssuer({
    clientId: CLIENT_ID,
    audience: AUDIENCE,
    tenants: ["admin", "research"],
  });
  const issuer = (tenant: string, role: "admin" | "researcher") => ({
    issuer: idp.issuer(tenant),
    audience: AUDIENCE,
    jwks_uri: idp.jwksUrl,
    role,
    tenant_claim: "org_id",
    console: {
      client_id: CLIENT_ID,
      authorization_endpoint: idp.authorizationEndpoint(tenant),
      token_endpoint: idp.tokenEndpoint(tenant),
    },
  });
  const kw = await startTestKeyward({
    issuers: [issuer("admin", "admin"), issuer("research", "researcher")],
  });
  const root = kw.store.create({ kind: "live", name: "bootstrap", scopes: ["keys:admin"] });
  const adminUrl = `http://127.0.0.1:${kw.ports.admin}`;
  return {
    kw,
    idp,
    adminUrl,
    consoleUrl: `${adminUrl}/console/`,
    rootToken: root.secret,
    async close() {
      await kw.close();
      await idp.close();
    },
  };
}

/** The table row of the key named `name`. */
export function row(page: Page, name: string) {
  return page.getByRole("row").filter({ has: page.getByRole("rowheader", { name, exact: true }) });
}

/** Fails when the page holds anything in web storage or cookies. */
export async function expectNothingStored(page: Page): Promise<void> {
  // Evaluated in the page (a string: this file is type-checked without the DOM library).
  const stored = await page.evaluate(
    "({ local: Object.keys(localStorage), session: Object.keys(sessionStorage), cookie: document.cookie })",
  );
  expect(stored).toEqual({ local: [], session: [], cookie: "" });
  expect(await page.context().cookies()).toEqual([]);
}
