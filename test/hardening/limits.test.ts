import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import {
  encodeBytes,
  judge,
  type KeywardProcess,
  outcome,
  spawnKeyward,
  WireCheckClient,
} from "../helpers/hardening.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const anyRoute = { required_scopes: "" };

describe("limits on the Check port: huge, numerous and odd input", () => {
  let kw: TestKeyward;
  let client: WireCheckClient;
  let valid: string;
  let validId: string;

  beforeAll(async () => {
    kw = await startTestKeyward();
    client = new WireCheckClient(kw.ports.check);
    const minted = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    valid = minted.secret;
    validId = minted.key.id;
  });
  afterAll(async () => {
    client.close();
    await kw.close();
  });

  /** After every abuse, a plain valid request is still allowed. */
  async function stillServes(): Promise<void> {
    const response = await client.send(
      {
        method: "GET",
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${valid}` },
      },
      5_000,
    );
    expect(outcome(response)).toBe("allow");
  }

  /**
   * Sends, and returns the outcome. The call's deadline is a hang guard only
   * (a regex blow-up or a quadratic loop on these sizes takes minutes); the
   * tests bound work, never how fast a busy machine answers.
   */
  async function timed(request: Parameters<WireCheckClient["send"]>[0]) {
    const response = await client.send(request, 60_000);
    return { outcome: outcome(response), response };
  }

  it.each([
    ["9 KiB", 9 * KiB],
    ["1 MiB", MiB],
    ["3.5 MiB", 3.5 * MiB],
  ])("denies a %s bearer token with 401 invalid_token", async (_label, size) => {
    const token = `${valid}${"a".repeat(size)}`;
    const { outcome: got } = await timed({
      method: "GET",
      path: "/",
      headers: { authorization: `Bearer ${token}` },
      contextExtensions: anyRoute,
    });
    expect(got).toBe("invalid_token");
    await stillServes();
  });

  it("denies a 1 MiB path that no rule matches with 403 insufficient_scope", async () => {
    const { outcome: got } = await timed({
      method: "GET",
      path: "/x".repeat(MiB / 2),
      headers: { authorization: `Bearer ${valid}` },
    });
    expect(got).toBe("insufficient_scope");
    await stillServes();
  });

  it("matches a 1 MiB path against the {rest...} templates without a regex blow-up", async () => {
    const worker = kw.store.create({
      kind: "worker",
      binding: { experiment: "e", variation: "v", run: "r" },
    });
    const deep = `/experiments/e/variations/v/runs/r/${"a/".repeat(MiB / 2 - 20)}z`;
    const inside = await timed({
      method: "POST",
      path: deep,
      headers: { authorization: `Bearer ${worker.secret}` },
    });
    expect(inside.outcome).toBe("allow");
    const outside = await timed({
      method: "POST",
      path: deep.replace("/runs/r/", "/runs/other/"),
      headers: { authorization: `Bearer ${worker.secret}` },
    });
    expect(outside.outcome).toBe("insufficient_scope");
    await stillServes();
  });

  it("judges the credential among 5 000 unrelated headers", async () => {
    const headers: Record<string, string> = { authorization: `Bearer ${valid}` };
    for (let i = 0; i < 5_000; i++) headers[`x-h-${i}`] = `v${i}`;
    expect((await timed({ method: "GET", path: "/api/v1/sources", headers })).outcome).toBe(
      "allow",
    );
    delete headers.authorization;
    expect((await timed({ method: "GET", path: "/api/v1/sources", headers })).outcome).toBe(
      "missing_credential",
    );
  });

  it("removes every one of 5 000 spoofed x-auth-* headers on allow", async () => {
    const headers: Record<string, string> = { authorization: `Bearer ${valid}` };
    for (let i = 0; i < 5_000; i++) headers[`x-auth-${i}`] = "admin";
    headers["x-auth-key-id"] = "forged";
    const { response } = await timed({ method: "GET", path: "/api/v1/sources", headers });
    const verdict = judge(response);
    expect(verdict.allow).toBe(true);
    if (!verdict.allow) return;
    expect(verdict.headers["x-auth-key-id"]).toBe(validId);
    expect(new Set(verdict.remove).size).toBe(5_000);
  });

  it.each([
    ["a fullwidth scheme", `\uff22earer ${"x"}`],
    ["a zero-width space inside the key", "ZWSP"],
    ["a right-to-left override", "RLO"],
    ["a Cyrillic homoglyph in the kind", "HOMOGLYPH"],
    ["a combining mark after the key", "COMBINING"],
    ["a NUL after the key", "NUL"],
    ["an emoji token", "Bearer \u{1f511}\u{1f511}"],
  ])("denies %s with 401 invalid_token", async (_label, spec) => {
    const authorization =
      spec === "ZWSP"
        ? `Bearer ${valid.slice(0, 20)}\u200b${valid.slice(20)}`
        : spec === "RLO"
          ? `Bearer \u202e${valid}`
          : spec === "HOMOGLYPH"
            ? `Bearer ${valid.replace("sk_live_", "sk_l\u0456ve_")}`
            : spec === "COMBINING"
              ? `Bearer ${valid}\u0301`
              : spec === "NUL"
                ? `Bearer ${valid}\u0000`
                : spec.replace("x", valid);
    const response = await client.send({
      method: "GET",
      path: "/",
      headers: { authorization },
      contextExtensions: anyRoute,
    });
    expect(outcome(response)).toBe("invalid_token");
  });

  it("treats a whitespace-only authorization (NBSP, tabs) as no credential", async () => {
    const response = await client.send({
      method: "GET",
      path: "/",
      headers: { authorization: "\u00a0\t " },
      contextExtensions: anyRoute,
    });
    expect(outcome(response)).toBe("missing_credential");
  });

  describe("non-UTF-8 bytes in header_map raw_value (encode_raw_headers)", () => {
    const raw = (...parts: (string | number[])[]) =>
      Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p))));

    it("denies an authorization value with a stray 0xff after the key as invalid_token", async () => {
      const response = await client.send({
        method: "GET",
        path: "/",
        rawHeaders: [["authorization", raw(`Bearer ${valid}`, [0xff])]],
        contextExtensions: anyRoute,
      });
      expect(outcome(response)).toBe("invalid_token");
    });

    it("denies an authorization value that is pure binary as invalid_token", async () => {
      const response = await client.send({
        method: "GET",
        path: "/",
        rawHeaders: [["authorization", raw([0xff, 0xfe, 0x00, 0xc3, 0x28])]],
        contextExtensions: anyRoute,
      });
      expect(outcome(response)).toBe("invalid_token");
    });

    it("still allows a valid key next to a Latin-1 header, and says missing_credential without one", async () => {
      const latin1 = raw("Espa", [0xf1], "a");
      const allowed = await client.send({
        method: "GET",
        path: "/api/v1/sources",
        rawHeaders: [
          ["x-country", latin1],
          ["authorization", raw(`Bearer ${valid}`)],
        ],
      });
      expect(outcome(allowed)).toBe("allow");
      const denied = await client.send({
        method: "GET",
        path: "/api/v1/sources",
        rawHeaders: [["x-country", latin1]],
      });
      expect(outcome(denied)).toBe("missing_credential");
    });
  });

  // Envoy before 1.30 copied header bytes into the proto3 `string` map
  // unchecked (envoyproxy/envoy#22996, #32607); any client could send
  // `X-Country: Espa\xf1a`. The credential must still decide, not a decode fault.
  describe("non-UTF-8 bytes in the headers map (Envoy < 1.30)", () => {
    const latin1 = Buffer.from([0x45, 0x73, 0x70, 0x61, 0xf1, 0x61]); // "Espa\xf1a"

    it("allows a valid key when an unrelated header holds Latin-1 bytes", async () => {
      const response = await client.send(
        encodeBytes({
          method: "GET",
          path: "/api/v1/sources",
          headers: [
            ["authorization", `Bearer ${valid}`],
            ["x-country", latin1],
          ],
        }),
      );
      expect(outcome(response)).toBe("allow");
    });

    it("denies 401 missing_credential, not 503, when there is no credential", async () => {
      const response = await client.send(
        encodeBytes({ method: "GET", path: "/api/v1/sources", headers: [["x-country", latin1]] }),
      );
      expect(outcome(response)).toBe("missing_credential");
    });

    it("denies 401 invalid_token, not 503, when the authorization value holds the bytes", async () => {
      const response = await client.send(
        encodeBytes({
          method: "GET",
          path: "/api/v1/sources",
          headers: [["authorization", Buffer.concat([Buffer.from(`Bearer ${valid}`), latin1])]],
        }),
      );
      expect(outcome(response)).toBe("invalid_token");
    });
  });

  it("keeps WWW-Authenticate well formed (RFC 6750) when a route's required_scopes holds a quote", async () => {
    // required_scopes is Envoy route configuration; a typo there must not
    // produce a header that breaks the client's challenge parser.
    const response = await client.send({
      method: "GET",
      path: "/",
      headers: { authorization: `Bearer ${valid}` },
      contextExtensions: { required_scopes: 'sources:write "quoted\\' },
    });
    expect(outcome(response)).toBe("insufficient_scope");
  });

  it("rejects a CheckRequest over grpc-js's 4 MiB receive limit with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const error = await client
      .send({
        method: "GET",
        path: "/",
        headers: { authorization: `Bearer ${valid}`, "x-big": "a".repeat(4 * MiB + KiB) },
      })
      .then(
        () => undefined,
        (e: { code?: number }) => e,
      );
    expect(error?.code).toBe(8); // RESOURCE_EXHAUSTED
    await stillServes();
  });

  it("writes each deny as one JSON log line and never the presented token", async () => {
    const wrong = `${valid.slice(0, 26)}${"0".repeat(48)}`;
    const injected = '/api\n{"level":60,"msg":"forged"}\r\n';
    for (const token of [wrong, valid]) {
      await client.send({
        method: "POST",
        path: injected,
        headers: { authorization: `Bearer ${token}` },
      });
    }
    for (const line of kw.logs.lines) {
      expect(() => JSON.parse(line)).not.toThrow();
      expect(line).not.toContain(valid.slice(26));
      expect(line).not.toContain(wrong.slice(26));
    }
    expect(kw.logs.records.some((r) => r.msg === "forged")).toBe(false);
  });
});

describe("limits on the Check port: a header flood", () => {
  // Against a child process: if the server's event loop stalls, this test
  // process keeps its own clock and the call's deadline still fires.
  let dir: string;
  let server: KeywardProcess;
  let client: WireCheckClient;
  let valid: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-flood-"));
    const database = join(dir, "keys.db");
    const db = openDatabase(database);
    valid = new KeyRepository(db).create({ kind: "live", scopes: ["sources:read"] }).secret;
    db.close();
    server = await spawnKeyward({ database });
    client = new WireCheckClient(server.ports.check);
  });
  afterAll(async () => {
    client?.close();
    await server?.stop("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers a request with 100 000 distinct x-auth-* headers (3 MiB), removing every one, and keeps serving", async () => {
    // Envoy caps headers at 100 by default, but max_request_headers_count
    // can be raised, and anything that reaches the Check port can send this.
    // The spoofed-header bookkeeping must stay linear.
    const rawHeaders: [string, Uint8Array][] = [["authorization", Buffer.from(`Bearer ${valid}`)]];
    for (let i = 0; i < 100_000; i++) rawHeaders.push([`x-auth-${i}`, Buffer.from("1")]);
    // The deadline is a hang guard (quadratic bookkeeping on 100 000
    // headers takes minutes); the work is what is asserted.
    const response = await client.send(
      { method: "GET", path: "/api/v1/sources", rawHeaders },
      120_000,
    );
    const verdict = judge(response);
    expect(verdict.allow).toBe(true);
    if (verdict.allow) expect(new Set(verdict.remove).size).toBe(100_000);
    const after = await client.send(
      {
        method: "GET",
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${valid}` },
      },
      60_000,
    );
    expect(outcome(after)).toBe("allow");
    expect(server.alive()).toBe(true);
  }, 300_000);
});

describe("limits on the admin port: bodies over 64 KiB", () => {
  let kw: TestKeyward;
  let root: string;

  beforeAll(async () => {
    kw = await startTestKeyward();
    root = kw.store.create({ kind: "live", scopes: ["keys:admin"] }).secret;
  });
  afterAll(async () => {
    await kw.close();
  });

  const bigBody = () => JSON.stringify({ kind: "live", name: "x", scopes: ["a".repeat(70 * KiB)] });

  /** POSTs `body` to the admin port; `chunked` leaves out content-length. */
  function post(path: string, body: string, chunked: boolean, contentType = "application/json") {
    return new Promise<{ status: number; body: string }>((done, fail) => {
      const headers: Record<string, string | number> = {
        authorization: `Bearer ${root}`,
        "content-type": contentType,
      };
      if (!chunked) headers["content-length"] = Buffer.byteLength(body);
      const req = httpRequest(
        { host: "127.0.0.1", port: kw.ports.admin, method: "POST", path, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
          );
        },
      );
      // The server may answer and close before reading everything.
      req.on("error", fail);
      if (chunked) {
        for (let i = 0; i < body.length; i += 8 * KiB) req.write(body.slice(i, i + 8 * KiB));
      } else {
        req.write(body);
      }
      req.end();
    });
  }

  it.each([
    ["REST with content-length", "/v1/admin/keys", false],
    ["REST chunked", "/v1/admin/keys", true],
    ["Connect JSON with content-length", "/keyward.admin.v1.KeyService/CreateKey", false],
    // Without a content-length the Connect protocol's own limit answers:
    // resource_exhausted, which Connect maps to HTTP 429 (documented).
    ["Connect JSON chunked", "/keyward.admin.v1.KeyService/CreateKey", true],
  ])("refuses an oversized body (%s)", async (_label, path, chunked) => {
    const body = path.startsWith("/v1")
      ? JSON.stringify({ name: "x", scopes: ["a".repeat(70 * KiB)] })
      : bigBody();
    const answer = await post(path, body, chunked);
    const connectChunked = chunked && !path.startsWith("/v1");
    expect(answer.status).toBe(connectChunked ? 429 : 413);
    expect(answer.body).toMatch(/too large|larger than|exhausted/i);
    // The port keeps serving: a small create still works.
    const small = await post("/v1/admin/keys", JSON.stringify({ name: "ok" }), false);
    expect(small.status).toBe(201);
  });
});
