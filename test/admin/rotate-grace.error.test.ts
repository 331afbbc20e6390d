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

describe("RotateKey refuses a grace it may not give", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture({ keys: { max_rotation_grace: "1h" } });
  });
  afterAll(async () => {
    await f.close();
  });

  it("refuses a grace beyond keys.max_rotation_grace, naming it, and leaves the key as it was", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    const error = await refusal(root.rotateKey({ id, graceSeconds: 3601 }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("graceSeconds: at most 3600 (keys.max_rotation_grace)");
    expect(await decide(f.check, created.secret)).toBe("allow");
    expect(
      (await root.rotateKey({ id, graceSeconds: 3600 })).key?.previousSecretExpiresAt,
    ).toBeDefined();
  });

  it("answers 400 naming the field for a REST grace that is not a whole number of seconds", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    for (const body of [
      { graceSeconds: -1 },
      { graceSeconds: 1.5 },
      { graceSeconds: "1h" },
      { grace: 60 },
    ]) {
      const answer = await rest(f, "POST", `/v1/admin/keys/${id}/rotate`, {
        token: f.rootToken,
        body,
      });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(String(answer.body.message)).toMatch(/grace/);
    }
    expect(await decide(f.check, created.secret)).toBe("allow");
  });

  it("refuses to rotate a revoked key, grace or not", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    await root.revokeKey({ id: keyOf(created).id });
    const error = await refusal(root.rotateKey({ id: keyOf(created).id, graceSeconds: 60 }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(await decide(f.check, created.secret)).toBe("key_revoked");
  });
});
