import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, keyOf, refusal, startAdminFixture } from "../helpers/admin.js";

describe("a rotation grace gives nothing away", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("does not let another tenant rotate a key with a grace, and keeps the key's one secret", async () => {
    const created = await f
      .client(await f.adminJwt("acme"))
      .createKey({ scopes: ["sources:read"] });
    const globex = f.client(await f.adminJwt("globex"));
    const error = await refusal(globex.rotateKey({ id: keyOf(created).id, graceSeconds: 60 }));
    expect(error.code).toBe(Code.NotFound);
    expect(await decide(f.check, created.secret)).toBe("allow");
  });

  it("stores only hashes: neither secret is in the database file", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const rotated = await root.rotateKey({ id: keyOf(created).id, graceSeconds: 600 });
    const db = openDatabase(f.kw.database, { readonly: true });
    try {
      const row = db.prepare("SELECT * FROM keys WHERE id = ?").get(keyOf(created).id);
      const text = JSON.stringify(row, (_k, v) => (Buffer.isBuffer(v) ? v.toString("hex") : v));
      for (const secret of [created.secret, rotated.secret]) {
        expect(text).not.toContain(secret.slice(-48));
      }
    } finally {
      db.close();
    }
  });

  it("never lets the previous secret past a suspension, an expiry or another key's id", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    await root.rotateKey({ id, graceSeconds: 600 });
    await root.suspendKey({ id });
    expect(await decide(f.check, created.secret)).toBe("key_disabled");
    await root.resumeKey({ id });
    expect(await decide(f.check, created.secret)).toBe("allow");

    // The old secret's hash belongs to its own lookup only: under another
    // key's id it is a wrong secret.
    const other = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const otherId = keyOf(other).id;
    const grafted = created.secret.replace(id, otherId);
    expect(await decide(f.check, grafted)).toBe("invalid_token");

    const db = openDatabase(f.kw.database);
    try {
      db.prepare("UPDATE keys SET expires_at = ? WHERE id = ?").run(Date.now() - 1, id);
    } finally {
      db.close();
    }
    expect(await decide(f.check, created.secret)).toBe("key_expired");
  });
});
