import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { type AdminFixture, startAdminFixture } from "../helpers/admin.js";

describe("the admin port speaks gRPC, gRPC-Web and Connect on one port", () => {
  let f: AdminFixture;
  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => f.close());

  it.each([
    ["gRPC over cleartext HTTP/2", () => createGrpcTransport({ baseUrl: f.adminUrl })],
    [
      "gRPC-Web over HTTP/1.1",
      () => createGrpcWebTransport({ baseUrl: f.adminUrl, httpVersion: "1.1" }),
    ],
    [
      "Connect JSON over HTTP/1.1",
      () => createConnectTransport({ baseUrl: f.adminUrl, httpVersion: "1.1" }),
    ],
    [
      "Connect binary over HTTP/2",
      () =>
        createConnectTransport({ baseUrl: f.adminUrl, httpVersion: "2", useBinaryFormat: true }),
    ],
  ])("creates and reads a key with %s", async (_label, transport) => {
    const client = createClient(KeyService, transport());
    const headers = { authorization: `Bearer ${f.rootToken}` };
    const created = await client.createKey({ kind: "live", scopes: ["sources:read"] }, { headers });
    expect(created.secret).toMatch(/^sk_live_[0-9a-f]{16}_[0-9a-f]{48}$/);
    const got = await client.getKey({ id: created.key?.id ?? "" }, { headers });
    expect(got.key?.keyLookup).toBe(created.key?.keyLookup);
  });
});
