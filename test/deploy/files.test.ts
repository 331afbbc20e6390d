import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { describe, expect, it } from "vitest";
import { FORWARD_AUTH_PATH } from "../../src/http/forward-auth-view.js";
import { loadPolicyFile } from "../../src/policy/policy.js";
import { validateCaddyfile } from "../helpers/caddy.js";
import { testNginxConfig } from "../helpers/nginx.js";
import { deployFiles, IDENTITY_HEADERS, PORTS, readYamlDocuments } from "./manifests.js";

// Every file in deploy/ must be checked by something; a new kind of file
// makes this fail until a check for it is added here.
const files = deployFiles();

describe("deploy/ files", () => {
  it("are all of a kind this suite checks", () => {
    const unchecked = files.filter(
      (file) =>
        !/\.ya?ml$/.test(file) &&
        !file.endsWith(".conf") &&
        !["Dockerfile", "Dockerfile.dockerignore", "Caddyfile"].includes(basename(file)),
    );
    expect(unchecked).toEqual([]);
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files.filter((file) => /\.ya?ml$/.test(file)))("%s parses as YAML", (file) => {
    const documents = readYamlDocuments(file);
    expect(documents.length).toBeGreaterThan(0);
    for (const document of documents) expect(document).toBeTypeOf("object");
  });

  it("deploy/policy.yaml loads as keyward's route policy", () => {
    expect(() => loadPolicyFile("deploy/policy.yaml")).not.toThrow();
  });

  it.each(files.filter((file) => file.endsWith(".conf")))("%s passes nginx -t", (file) => {
    expect(() => testNginxConfig(readFileSync(file, "utf8"))).not.toThrow();
  });

  it.each(files.filter((file) => basename(file) === "Caddyfile"))(
    "%s passes caddy validate",
    (file) => {
      expect(validateCaddyfile(readFileSync(file, "utf8"))).toContain("Valid configuration");
    },
  );
});

describe("deploy/nginx/nginx.conf", () => {
  const config = readFileSync("deploy/nginx/nginx.conf", "utf8");

  it("sends the auth subrequest to keyward's forward-auth endpoint on the HTTP port", () => {
    expect(config).toContain(`server 127.0.0.1:${PORTS.http};`);
    expect(config).toContain(`proxy_pass http://keyward${FORWARD_AUTH_PATH};`);
    expect(config).toContain("proxy_set_header X-Original-Method $request_method;");
    expect(config).toContain("proxy_set_header X-Original-URI $request_uri;");
  });

  it("captures and forwards every identity header keyward sends", () => {
    for (const name of IDENTITY_HEADERS) {
      const variable = `$upstream_http_${name.replaceAll("-", "_")}`;
      expect(config, name).toMatch(new RegExp(`auth_request_set \\$(\\w+) \\${variable};`));
      const captured = new RegExp(`auth_request_set \\$(\\w+) \\${variable};`).exec(config)?.[1];
      expect(config.toLowerCase(), name).toContain(`proxy_set_header ${name} $${captured};`);
    }
  });
});

describe("deploy/caddy/Caddyfile", () => {
  const config = readFileSync("deploy/caddy/Caddyfile", "utf8");

  it("asks keyward's forward-auth endpoint on the HTTP port and copies every identity header", () => {
    expect(config).toContain(`forward_auth 127.0.0.1:${PORTS.http} {`);
    expect(config).toMatch(new RegExp(`^\\s*uri ${FORWARD_AUTH_PATH}$`, "m"));
    const copied = /^\s*copy_headers (.+)$/m.exec(config)?.[1]?.toLowerCase().split(/\s+/);
    expect(copied?.sort()).toEqual([...IDENTITY_HEADERS].sort());
  });
});
