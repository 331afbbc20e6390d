import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { decide } from "../helpers/admin.js";
import { serve } from "../helpers/cli.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";

describe("crash safety of the admin API", () => {
  it("loses no key whose secret was returned and no acknowledged revocation when SIGKILLed mid-stream", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-crash-"));
    const database = join(dir, "keys.db");
    const env = {
      KEYWARD_DATABASE: database,
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    };
    const bootstrap = openDatabase(database);
    const root = new KeyRepository(bootstrap).create({ kind: "live", scopes: ["keys:admin"] });
    bootstrap.close();

    const first = await serve([], env);
    const client = createClient(
      KeyService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${first.ports.admin}`,
        httpVersion: "1.1",
      }),
    );
    const headers = { authorization: `Bearer ${root.secret}` };
    const acknowledged: string[] = [];
    const revoked: string[] = [];
    const inFlight = new Set<string>();
    let stopped = false;
    // Four writers create (and every third one revokes) as fast as they can
    // until the server dies under them.
    const writer = async () => {
      while (!stopped) {
        try {
          const { secret, key } = await client.createKey(
            { kind: "live", scopes: ["sources:read"] },
            { headers },
          );
          acknowledged.push(secret);
          if (acknowledged.length % 3 === 0) {
            // Until its answer arrives, a revocation may or may not have committed.
            inFlight.add(secret);
            await client.revokeKey({ id: key?.id ?? "" }, { headers });
            revoked.push(secret);
            inFlight.delete(secret);
          }
        } catch {
          return;
        }
      }
    };
    const writers = Promise.all([writer(), writer(), writer(), writer()]);
    // Kill it mid-stream, once enough writes were acknowledged (however busy the machine is).
    const deadline = Date.now() + 20_000;
    while (acknowledged.length < 30 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await first.stop("SIGKILL");
    stopped = true;
    await writers;
    expect(acknowledged.length).toBeGreaterThan(20);

    const db = openDatabase(database);
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    db.close();

    const second = await serve([], env);
    const check = new EnvoyCheckClient(second.ports.check);
    try {
      const revokedSet = new Set(revoked);
      for (const secret of acknowledged) {
        const outcome = await decide(check, secret);
        if (inFlight.has(secret)) expect(["allow", "key_revoked"]).toContain(outcome);
        else expect(outcome).toBe(revokedSet.has(secret) ? "key_revoked" : "allow");
      }
    } finally {
      check.close();
      await second.stop();
    }
  });
});
