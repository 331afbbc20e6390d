import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CheckInput, EnvoyCheckClient } from "../helpers/envoy-client.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

// Scopes from the route (DESIGN "Route policy"): context_extensions, then the
// route's metadata, then the metadata context under the configured namespace,
// then the policy file; never a request header. Real keyward, real gRPC
// client built from Envoy's canonical protos (so the field numbers of
// metadata_context and route_metadata_context are Envoy's).
const POLICY = `rules:
  - method: GET
    path: /reports
    scopes: [reports:read]
`;

describe("required scopes from the route", () => {
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  let reader: string;
  let writer: string;

  /** The outcome of a GET /reports with the given token and route data: allow or the deny code. */
  const outcome = async (token: string, route: Omit<CheckInput, "path" | "headers"> = {}) => {
    const response = await check.check({
      path: "/reports",
      headers: { authorization: `Bearer ${token}` },
      ...route,
    });
    if (response.status?.code === 0) return "allow";
    return (JSON.parse(response.denied_response?.body ?? "{}") as { error: string }).error;
  };

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-route-scopes-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(policy, POLICY);
    kw = await startTestKeyward({
      policy,
      scopes: ["reports:read", "reports:write"],
      route_metadata: { namespace: "acme.authz" },
    });
    check = new EnvoyCheckClient(kw.ports.check);
    reader = kw.store.create({ kind: "live", scopes: ["reports:read"] }).secret;
    writer = kw.store.create({ kind: "live", scopes: ["reports:write"] }).secret;
  });
  afterAll(async () => {
    check.close();
    await kw.close();
  });

  it("uses the policy file when the route says nothing", async () => {
    expect(await outcome(reader)).toBe("allow");
    expect(await outcome(writer)).toBe("insufficient_scope");
  });

  it("reads required_scopes from the route's metadata, as a string or a list", async () => {
    const asString = { routeMetadata: { "acme.authz": { required_scopes: "reports:write" } } };
    const asList = { routeMetadata: { "acme.authz": { required_scopes: ["reports:write"] } } };
    for (const route of [asString, asList]) {
      expect(await outcome(writer, route)).toBe("allow");
      expect(await outcome(reader, route)).toBe("insufficient_scope");
    }
  });

  it("reads required_scopes from the metadata context", async () => {
    const route = { metadataContext: { "acme.authz": { required_scopes: "reports:write" } } };
    expect(await outcome(writer, route)).toBe("allow");
    expect(await outcome(reader, route)).toBe("insufficient_scope");
  });

  it("reads only the configured namespace", async () => {
    const route = {
      routeMetadata: { keyward: { required_scopes: "reports:write" } },
      metadataContext: { other: { required_scopes: "reports:write" } },
    };
    // Neither counts: the policy file decides.
    expect(await outcome(reader, route)).toBe("allow");
    expect(await outcome(writer, route)).toBe("insufficient_scope");
  });

  it("takes context_extensions over route metadata over the metadata context over the policy", async () => {
    const write = { "acme.authz": { required_scopes: "reports:write" } };
    const read = { "acme.authz": { required_scopes: "reports:read" } };
    // context_extensions first.
    const extensions = { contextExtensions: { required_scopes: "reports:write" } };
    expect(
      await outcome(writer, { ...extensions, routeMetadata: read, metadataContext: read }),
    ).toBe("allow");
    expect(
      await outcome(reader, { ...extensions, routeMetadata: read, metadataContext: read }),
    ).toBe("insufficient_scope");
    // Then the route's metadata, over the metadata context.
    expect(await outcome(writer, { routeMetadata: write, metadataContext: read })).toBe("allow");
    expect(await outcome(reader, { routeMetadata: write, metadataContext: read })).toBe(
      "insufficient_scope",
    );
    // An empty list from the route: any valid credential, over the policy's reports:read.
    const any = { routeMetadata: { "acme.authz": { required_scopes: [] } } };
    expect(await outcome(writer, any)).toBe("allow");
  });

  it("fails closed on a value it cannot read, naming it in the log", async () => {
    const route = { routeMetadata: { "acme.authz": { required_scopes: 42 } } };
    const response = await check.check({
      path: "/reports",
      headers: { authorization: `Bearer ${reader}` },
      ...route,
    });
    const body = JSON.parse(response.denied_response?.body ?? "{}") as { decision_id: string };
    expect(response.status?.code).toBe(7);
    const line = kw.logs.records.find((record) => record.decision_id === body.decision_id);
    expect(line?.reason).toBe(
      "route metadata acme.authz.required_scopes is not a string or a list of strings",
    );
    const mixed = { routeMetadata: { "acme.authz": { required_scopes: ["reports:read", 1] } } };
    expect(await outcome(reader, mixed)).toBe("insufficient_scope");
  });

  it("never takes a requirement from a request header, on Check or /authz", async () => {
    const headers = {
      authorization: `Bearer ${writer}`,
      required_scopes: "",
      "x-required-scopes": "",
      "x-keyward-required-scopes": "",
      "acme.authz": "required_scopes=",
    };
    const response = await check.check({ path: "/reports", headers });
    expect(response.status?.code).toBe(7);
    const authz = await fetch(`http://127.0.0.1:${kw.ports.http}/authz/reports`, { headers });
    expect(authz.status).toBe(403);
  });

  it("refuses a bad namespace at start-up with one line naming the field", async () => {
    await expect(startTestKeyward({ route_metadata: { namespace: "a b" } })).rejects.toThrow(
      /^[^\n]*route_metadata\.namespace[^\n]*$/,
    );
  });
});
