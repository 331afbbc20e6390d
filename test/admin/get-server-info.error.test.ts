import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, refusal, startAdminFixture } from "../helpers/admin.js";

describe("GetServerInfo refuses callers it cannot serve", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("refuses a missing or malformed token with Unauthenticated and the Check code", async () => {
    for (const [token, message] of [
      [undefined, /missing_credential/],
      ["not-a-token", /invalid_token/],
    ] as const) {
      const error = await refusal(f.client(token).getServerInfo({}));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(message);
    }
  });

  it("answers on a replica with a pointer to the primary", async () => {
    // The fixture is a single; a replica's admin port refuses every call the same way.
    const { startTestKeyward } = await import("../helpers/keyward.js");
    const replica = await startTestKeyward({
      role: "replica",
      replication: { primary: "http://127.0.0.1:1", token: "t".repeat(32) },
    });
    try {
      const response = await fetch(
        `http://127.0.0.1:${replica.ports.admin}/keyward.admin.v1.KeyService/GetServerInfo`,
        { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
      );
      const body = (await response.json()) as { code: string; message: string };
      expect(body.code).toBe("failed_precondition");
      expect(body.message).toMatch(/replica; send admin calls to the primary/);
    } finally {
      await replica.close();
    }
  });
});
