import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_DIST, createConsoleHandler } from "../../src/admin/console.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw HTTP/1.1 request: the path is sent byte for byte (fetch would normalise `..`). */
function raw(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: options.method ?? "GET", headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const TOKEN_ORIGIN = "https://login.example.com";

describe("the key console's files on the admin port", () => {
  let kw: TestKeyward;
  let index: string;

  beforeAll(async () => {
    kw = await startTestKeyward({
      issuers: [
        {
          issuer: "https://login.example.com/",
          audience: ["https://api.example.com", "other"],
          jwks_file: "deploy/policy.yaml",
          console: {
            client_id: "console-client",
            authorization_endpoint: `${TOKEN_ORIGIN}/authorize`,
            token_endpoint: `${TOKEN_ORIGIN}/oauth/token`,
            scope: "openid sources:read",
          },
        },
        { issuer: "https://no-console.example.com/", audience: "a", jwks_file: "x.json" },
      ],
    });
    index = readFileSync(join(CONSOLE_DIST, "index.html"), "utf8");
  });
  afterAll(async () => {
    await kw.close();
  });

  it("serves the page at /console/ with a strict CSP and no-cache", async () => {
    const answer = await raw(kw.ports.admin, "/console/");
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(answer.headers["cache-control"]).toBe("no-cache");
    expect(answer.body.toString()).toBe(index);
    const csp = String(answer.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(answer.headers["x-content-type-options"]).toBe("nosniff");
    expect(answer.headers["referrer-policy"]).toBe("no-referrer");
  });

  it("allows network requests to this origin and the console issuers' token endpoints only", async () => {
    const csp = String((await raw(kw.ports.admin, "/console/")).headers["content-security-policy"]);
    expect(csp).toContain(`connect-src 'self' ${TOKEN_ORIGIN};`);
  });

  it("has no inline script: every script of the page is a file from this origin", () => {
    const scripts = [...index.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/src="\/console\/assets\/[^"]+\.js"/);
      expect(body?.trim()).toBe("");
    }
    expect(index).not.toMatch(/\son[a-z]+=/i);
    expect(index).not.toMatch(/https?:\/\//);
  });

  it("serves hashed assets as immutable with their content type, gzipped when asked", async () => {
    const assets = [...index.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map(
      (match) => match[1] as string,
    );
    expect(assets.some((path) => path.endsWith(".js"))).toBe(true);
    expect(assets.some((path) => path.endsWith(".css"))).toBe(true);
    for (const path of assets) {
      const plain = await raw(kw.ports.admin, path);
      expect(plain.status).toBe(200);
      expect(plain.headers["content-type"]).toBe(
        path.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8",
      );
      expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(plain.headers["content-encoding"]).toBeUndefined();
      const zipped = await raw(kw.ports.admin, path, { headers: { "accept-encoding": "gzip" } });
      expect(zipped.headers["content-encoding"]).toBe("gzip");
      expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
    }
  });

  it("redirects /console to /console/", async () => {
    const answer = await raw(kw.ports.admin, "/console?x=1");
    expect(answer.status).toBe(308);
    expect(answer.headers.location).toBe("/console/?x=1");
  });

  it("answers the IdP's redirect back (code and state in the query) with the page", async () => {
    const answer = await raw(kw.ports.admin, "/console/?code=abc&state=xyz");
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe(index);
  });

  it("publishes the console issuers' public client facts, and nothing of the others", async () => {
    const answer = await raw(kw.ports.admin, "/console/config.json");
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/json");
    expect(answer.headers["cache-control"]).toBe("no-store");
    expect(JSON.parse(answer.body.toString())).toEqual({
      issuers: [
        {
          issuer: "https://login.example.com/",
          client_id: "console-client",
          authorization_endpoint: `${TOKEN_ORIGIN}/authorize`,
          token_endpoint: `${TOKEN_ORIGIN}/oauth/token`,
          audience: "https://api.example.com",
          scope: "openid sources:read",
        },
      ],
    });
  });

  it("cannot be walked out of its folder, however the path is spelled", async () => {
    const attempts = [
      "/console/../package.json",
      "/console/%2e%2e/package.json",
      "/console/assets/..%2f..%2fpackage.json",
      "/console/assets/%2e%2e%2f%2e%2e%2fadmin%2fserver.js",
      "/console/..%5c..%5cpackage.json",
      "/console//etc/passwd",
      "/console/%00index.html",
      "/console/index.html%00.js",
      "/console/assets/",
      "/console/vite.config.ts",
    ];
    for (const path of attempts) {
      const answer = await raw(kw.ports.admin, path);
      expect([404, 200], path).toContain(answer.status);
      if (answer.status === 200) expect(answer.body.toString(), path).toBe(index);
      expect(answer.body.toString(), path).not.toContain('"name": "keyward"');
      expect(answer.body.toString(), path).not.toContain("root:");
    }
  });

  it("answers only GET and HEAD", async () => {
    const post = await raw(kw.ports.admin, "/console/", { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
    const head = await raw(kw.ports.admin, "/console/", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(Number(head.headers["content-length"])).toBe(Buffer.byteLength(index));
  });

  it("leaves the admin API where it was", async () => {
    const answer = await raw(kw.ports.admin, "/v1/admin/keys");
    expect(answer.status).toBe(401);
  });
});

describe("console.enabled", () => {
  it("is off on a replica by default: /console/ is not served", async () => {
    const replica = await startTestKeyward({
      role: "replica",
      replication: { primary: "http://127.0.0.1:1", token: "t".repeat(32) },
    });
    try {
      expect((await raw(replica.ports.admin, "/console/")).status).toBe(404);
      expect((await raw(replica.ports.admin, "/console/config.json")).status).toBe(404);
    } finally {
      await replica.close();
    }
  });

  it("turns the console off on a single when false", async () => {
    const kw = await startTestKeyward({ console: { enabled: false } });
    try {
      expect((await raw(kw.ports.admin, "/console/")).status).toBe(404);
    } finally {
      await kw.close();
    }
  });
});

describe("a console that was not built", () => {
  it("answers 503 naming the build command, and still serves config.json", async () => {
    const empty = mkdtempSync(join(tmpdir(), "keyward-console-"));
    const handler = createConsoleHandler({ root: empty, issuers: () => [] });
    expect(handler.built).toBe(false);
    const server = createServer((req, res) => {
      if (!handler(req, res)) res.writeHead(418).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const page = await raw(port, "/console/");
      expect(page.status).toBe(503);
      expect(page.body.toString()).toContain("npm run build");
      expect((await raw(port, "/console/config.json")).body.toString()).toBe('{"issuers":[]}');
      expect((await raw(port, "/elsewhere")).status).toBe(418);
    } finally {
      server.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
