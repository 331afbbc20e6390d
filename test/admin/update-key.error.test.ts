import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { ListValueSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AdminFixture,
  decide,
  keyOf,
  refusal,
  rest,
  startAdminFixture,
} from "../helpers/admin.js";

describe("metadata and UpdateKey refuse what no key may be", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("refuses metadata over 4 KiB, with control characters, too deep or not an object", async () => {
    const root = f.client(f.rootToken);
    const cases: [JsonObject, RegExp][] = [
      [{ blob: "x".repeat(4100) }, /metadata: is \d+ bytes as JSON; at most 4096/],
      [{ note: "line\nbreak" }, /metadata: a value contains a control character \(U\+000A\)/],
      [{ "bad\u0000name": 1 }, /metadata: member name .* contains a control character/],
      [{ a: { b: { c: { d: { e: 1 } } } } }, /metadata: nests deeper than 4 levels/],
    ];
    for (const [metadata, message] of cases) {
      const error = await refusal(
        root.createKey({ kind: "live", scopes: ["sources:read"], metadata }),
      );
      expect(error.code, JSON.stringify(metadata).slice(0, 40)).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(message);
    }
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const error = await refusal(
      root.updateKey({ id: keyOf(created).id, metadata: { blob: "y".repeat(5000) } }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    const notObject = await rest(f, "PATCH", `/v1/admin/keys/${keyOf(created).id}`, {
      token: f.rootToken,
      body: { metadata: ["a"] },
    });
    expect(notObject.status).toBe(400);
    expect(keyOf(await root.getKey({ id: keyOf(created).id })).metadata).toBeUndefined();
  });

  it("refuses unknown scopes, a past expiry, bad names, unknown fields and revoked keys", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    const unknown = await refusal(
      root.updateKey({ id, scopes: fromJson(ListValueSchema, ["sources:raed"]) }),
    );
    expect(unknown.code).toBe(Code.InvalidArgument);
    expect(unknown.rawMessage).toMatch(/"sources:raed" is not a scope keyward knows/);
    const past = await refusal(
      root.updateKey({ id, expiresAt: timestampFromMs(Date.now() - 1000) }),
    );
    expect(past.rawMessage).toMatch(/expiresAt: .* is already past/);
    expect((await refusal(root.updateKey({ id, name: "a\u0007b" }))).rawMessage).toMatch(/^name: /);
    const nonString = await refusal(root.updateKey({ id, scopes: fromJson(ListValueSchema, [1]) }));
    expect(nonString.rawMessage).toMatch(/scopes: expected a list of strings/);
    const unknownField = await rest(f, "PATCH", `/v1/admin/keys/${id}`, {
      token: f.rootToken,
      body: { owner: "someone-else" },
    });
    expect(unknownField.status).toBe(400);
    expect(await decide(f.check, created.secret)).toBe("allow");

    await root.revokeKey({ id });
    expect((await refusal(root.updateKey({ id, name: "zombie" }))).code).toBe(
      Code.FailedPrecondition,
    );
    expect((await refusal(root.updateKey({ id: "0123456789abcdef", name: "x" }))).code).toBe(
      Code.NotFound,
    );
  });
});
