import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { decide } from "../helpers/admin.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import {
  AUDIENCE,
  claims,
  ISSUER,
  newSigningKey,
  type SigningKey,
  signToken,
  startJwksServer,
} from "../helpers/jwks.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

describe("reload without restart", () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-reload-"));
  const policy = join(dir, "policy.yaml");
  const configFile = join(dir, "keyward.yaml");
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  let signing: SigningKey;
  let jwksUrl: string;

  beforeAll(async () => {
    copyFileSync("deploy/policy.yaml", policy);
    signing = await newSigningKey("reload");
    writeFileSync(configFile, "issuers: []\n");
    kw = await startTestKeyward({ policy });
    check = new EnvoyCheckClient(kw.ports.check);
  });
  afterAll(async () => {
    check.close();
    await kw.close();
  });

  it("applies a changed policy file, and refuses a bad one keeping the old in force", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["reports:read"] });
    expect(await decide(check, secret, "/api/v1/reports")).toBe("insufficient_scope");

    writeFileSync(
      policy,
      "default: deny\nrules:\n  - method: GET\n    path: /api/v1/reports\n    scopes: [reports:read]\n",
    );
    expect(await kw.keyward.reload()).toBe(true);
    expect(await decide(check, secret, "/api/v1/reports")).toBe("allow");

    writeFileSync(policy, "default: maybe\nrules: [\n");
    expect(await kw.keyward.reload()).toBe(false);
    expect(await decide(check, secret, "/api/v1/reports")).toBe("allow");
    const refused = kw.logs.records.find(
      (r) => r.msg === "reload refused; the previous configuration stays in force",
    );
    expect(String(refused?.error)).toContain("policy");
  });

  it("reloads by itself when the policy file changes", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["audit:read"] });
    writeFileSync(
      policy,
      "default: deny\nrules:\n  - method: GET\n    path: /api/v1/audit\n    scopes: [audit:read]\n",
    );
    const deadline = Date.now() + 10_000;
    while ((await decide(check, secret, "/api/v1/audit")) !== "allow") {
      if (Date.now() > deadline) throw new Error("policy change not picked up");
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it("adds JWT issuers and the policy together on reload", async () => {
    const { createKeyward } = await import("../../src/app/keyward.js");
    const { createLogger } = await import("../../src/lib/log.js");
    const env = {
      KEYWARD_DATABASE: join(dir, "issuers.db"),
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    };
    writeFileSync(configFile, `policy: ${policy}\nissuers: []\n`);
    const keyward = await createKeyward(loadConfig({ file: configFile, env }), {
      logger: createLogger({ level: "silent" }),
      reloadConfig: () => loadConfig({ file: configFile, env }),
    });
    // Started here: the JWKS helper closes its servers after each test.
    jwksUrl = (await startJwksServer([signing.jwk])).url;
    const ports = await keyward.start();
    const client = new EnvoyCheckClient(ports.check);
    try {
      const token = await signToken(signing, claims({ scope: "audit:read" }));
      expect(await decide(client, token, "/api/v1/audit")).toBe("invalid_token");
      writeFileSync(
        configFile,
        `policy: ${policy}\nissuers:\n  - issuer: ${ISSUER}\n    audience: ${AUDIENCE}\n    jwks_uri: ${jwksUrl}\n`,
      );
      expect(await keyward.reload()).toBe(true);
      expect(await decide(client, token, "/api/v1/audit")).toBe("allow");
      // A bad issuer entry is refused as a whole: the working issuer stays.
      writeFileSync(
        configFile,
        `policy: ${policy}\nissuers:\n  - issuer: ${ISSUER}\n    audience: ${AUDIENCE}\n`,
      );
      expect(await keyward.reload()).toBe(false);
      expect(await decide(client, token, "/api/v1/audit")).toBe("allow");
    } finally {
      client.close();
      await keyward.close();
    }
  });
});
