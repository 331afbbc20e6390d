import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { decide } from "../helpers/admin.js";
import { type ServeProcess, serve } from "../helpers/cli.js";
import { waitUntil } from "../helpers/cluster.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { freePort } from "../helpers/net.js";

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
function makeCertificates(
  dir: string,
): Record<"ca" | "caKey" | "server" | "serverKey" | "client" | "clientKey", string> {
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=keyward test CA",
    "-keyout",
    path("ca.key"),
    "-out",
    path("ca.crt"),
  );
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"],
    ["client", "extendedKeyUsage=clientAuth"],
  ] as const) {
    writeFileSync(path(`${name}.ext`), `${ext}\n`);
    openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=keyward ${name}`,
      "-keyout",
      path(`${name}.key`),
      "-out",
      path(`${name}.csr`),
    );
    openssl(
      "x509",
      "-req",
      "-in",
      path(`${name}.csr`),
      "-CA",
      path("ca.crt"),
      "-CAkey",
      path("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      path(`${name}.ext`),
      "-out",
      path(`${name}.crt`),
    );
  }
  return {
    ca: path("ca.crt"),
    caKey: path("ca.key"),
    server: path("server.crt"),
    serverKey: path("server.key"),
    client: path("client.crt"),
    clientKey: path("client.key"),
  };
}

describe("replication over TLS with client certificates (mTLS)", () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-tls-"));
  const token = randomBytes(24).toString("hex");
  const processes: ServeProcess[] = [];
  let certs: ReturnType<typeof makeCertificates>;
  let primaryUrl: string;
  let rootSecret: string;

  const start = async (name: string, config: Record<string, unknown>) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, stringify({ log_level: "info", policy: "deploy/policy.yaml", ...config }));
    const started = await serve(["--config", file], {
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    });
    processes.push(started);
    return started;
  };

  beforeAll(async () => {
    certs = makeCertificates(dir);
    const adminPort = await freePort();
    primaryUrl = `https://127.0.0.1:${adminPort}`;
    const database = join(dir, "primary.db");
    const db = openDatabase(database);
    rootSecret = new KeyRepository(db).create({ kind: "live", scopes: ["keys:admin"] }).secret;
    db.close();
    await start("primary", {
      role: "primary",
      database,
      listen: { host: "127.0.0.1", admin: adminPort },
      replication: {
        token,
        tls: { cert_file: certs.server, key_file: certs.serverKey, ca_file: certs.ca },
      },
    });
  });
  afterAll(async () => {
    await Promise.allSettled(processes.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("replicates to a replica that trusts the primary's CA and presents its client certificate", async () => {
    const replica = await start("replica", {
      role: "replica",
      database: join(dir, "replica.db"),
      listen: { host: "127.0.0.1", admin: 0 },
      replication: {
        primary: primaryUrl,
        token,
        tls: { ca_file: certs.ca, cert_file: certs.client, key_file: certs.clientKey },
      },
    });
    // The admin API shares the port, so it is behind the same mTLS.
    const admin = createClient(
      KeyService,
      createGrpcTransport({
        baseUrl: primaryUrl,
        nodeOptions: {
          ca: readFileSync(certs.ca),
          cert: readFileSync(certs.client),
          key: readFileSync(certs.clientKey),
        },
      }),
    );
    const made = await admin.createKey(
      { kind: "live", scopes: ["sources:read"] },
      { headers: { authorization: `Bearer ${rootSecret}` } },
    );
    const check = new EnvoyCheckClient(replica.ports.check);
    try {
      await waitUntil(
        "the replica to allow the key made on the primary",
        async () => (await decide(check, made.secret)) === "allow",
      );
    } finally {
      check.close();
    }
  });

  it("refuses a replica without a client certificate: it never receives a snapshot", async () => {
    const replica = await start("no-client-cert", {
      role: "replica",
      database: join(dir, "no-client-cert.db"),
      listen: { host: "127.0.0.1", admin: 0 },
      replication: { primary: primaryUrl, token, tls: { ca_file: certs.ca } },
    });
    await waitUntil("a failed connection attempt in the log", () =>
      /replication stream failed/.test(replica.stderr()),
    );
    const check = new EnvoyCheckClient(replica.ports.check);
    try {
      expect(await decide(check, rootSecret)).toBe("unavailable");
    } finally {
      check.close();
    }
    expect(replica.stderr()).not.toMatch(/snapshot applied/);
  });
});
