import { fromJson } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, keyOf, refusal, startAdminFixture } from "../helpers/admin.js";

const scopes = (list: string[]) => fromJson(ListValueSchema, list);

describe("UpdateKey stays within the caller's grant", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("answers another tenant's key exactly like a missing one, and leaves it as it was", async () => {
    const created = await f
      .client(await f.adminJwt("acme"))
      .createKey({ scopes: ["sources:read"] });
    const globex = f.client(await f.adminJwt("globex"));
    const error = await refusal(
      globex.updateKey({ id: keyOf(created).id, metadata: { plan: "free" } }),
    );
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe(`key ${keyOf(created).id} not found`);
    const after = keyOf(await f.client(f.rootToken).getKey({ id: keyOf(created).id }));
    expect(after.metadata).toBeUndefined();
  });

  it("does not let a researcher widen its key beyond its own scopes", async () => {
    const ada = f.client(await f.researcherJwt("auth0|ada", ["sources:read"]));
    const created = await ada.createKey({ scopes: ["sources:read"] });
    const error = await refusal(
      ada.updateKey({ id: keyOf(created).id, scopes: scopes(["sources:read", "runs:apply"]) }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/"runs:apply"/);
    expect(await decide(f.check, created.secret, "/api/v1/sources", "POST")).toBe(
      "insufficient_scope",
    );
    expect(keyOf(await ada.getKey({ id: keyOf(created).id })).scopes).toEqual(["sources:read"]);
    // Narrowing is fine.
    expect(
      keyOf(await ada.updateKey({ id: keyOf(created).id, scopes: scopes([]) })).scopes,
    ).toEqual([]);
  });

  it("does not let a tenant admin touch a key holding a scope its token lacks", async () => {
    const wide = await f
      .client(f.rootToken)
      .createKey({ kind: "live", tenant: "acme", scopes: ["sources:read", "runs:apply"] });
    const narrow = f.client(await f.adminJwt("acme", ["sources:read"]));
    const error = await refusal(narrow.updateKey({ id: keyOf(wide).id, name: "mine now" }));
    expect(error.code).toBe(Code.PermissionDenied);
  });

  it("does not let anyone put a keys:* scope on a worker key", async () => {
    const run = { experiment: "e1", variation: "1", run: "r1" };
    const worker = await f
      .client(f.rootToken)
      .createKey({ kind: "worker", tenant: "acme", binding: run });
    const error = await refusal(
      f.client(f.rootToken).updateKey({ id: keyOf(worker).id, scopes: scopes(["keys:admin"]) }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/worker keys never hold keys:\* scopes/);
  });
});
