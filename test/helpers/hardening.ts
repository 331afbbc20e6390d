import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import type * as protoLoader from "@grpc/proto-loader";
import { KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { ENVOY_AUTH_PROTO, type EnvoyCheckResponse } from "./envoy-client.js";

// Shared tooling of the hardening tests: a Check client that can send
// arbitrary bytes, a judge of well-formed responses, a hand encoder for
// CheckRequests whose string fields hold bytes protobufjs would never write,
// bounded concurrency, and a keyward child process with a bounded log.

const checkMethod = (
  ENVOY_AUTH_PROTO["envoy.service.auth.v3.Authorization"] as protoLoader.ServiceDefinition
).Check as protoLoader.MethodDefinition<object, EnvoyCheckResponse>;
const CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check";

/** A request as Envoy describes it, in either header encoding. */
export interface WireRequest {
  readonly method: string;
  readonly path: string;
  /** Envoy's default encoding: a map with lower-case keys. */
  readonly headers?: Readonly<Record<string, string>>;
  /** `encode_raw_headers`: entries with `raw_value` bytes (set instead of `headers`). */
  readonly rawHeaders?: readonly (readonly [string, Uint8Array])[];
  readonly contextExtensions?: Readonly<Record<string, string>>;
}

/** The proto-loader object for a {@link WireRequest} (Envoy's canonical protos). */
export function protoObject(request: WireRequest): object {
  const http: Record<string, unknown> = { method: request.method, path: request.path };
  if (request.rawHeaders) {
    http.header_map = {
      headers: request.rawHeaders.map(([key, value]) => ({ key, raw_value: Buffer.from(value) })),
    };
  } else {
    http.headers = { ...(request.headers ?? {}) };
  }
  return {
    attributes: { request: { http }, context_extensions: { ...(request.contextExtensions ?? {}) } },
  };
}

/** Serialises a {@link WireRequest} with Envoy's canonical protos. */
export function encodeWire(request: WireRequest): Buffer {
  return checkMethod.requestSerialize(protoObject(request));
}

/**
 * An ext_authz client that sends pre-encoded bytes, so a test can send what
 * no well-behaved encoder would (arbitrary bytes, invalid UTF-8 in string
 * fields, oversized messages). Responses are decoded with Envoy's protos.
 */
export class WireCheckClient {
  readonly #client: grpc.Client;

  constructor(port: number) {
    this.#client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  /** Sends a structured request (encoded with Envoy's protos) or raw bytes. */
  send(request: WireRequest | Uint8Array, deadlineMs = 10_000): Promise<EnvoyCheckResponse> {
    const bytes =
      request instanceof Uint8Array ? Buffer.from(request) : encodeWire(request as WireRequest);
    return new Promise((done, fail) => {
      this.#client.makeUnaryRequest<Buffer, EnvoyCheckResponse>(
        CHECK_PATH,
        (b) => b,
        (b) => checkMethod.responseDeserialize(b),
        bytes,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (error, response) => (error || !response ? fail(error) : done(response)),
      );
    });
  }

  close(): void {
    this.#client.close();
  }
}

/** The closed set of deny codes with their gRPC code and HTTP status (DESIGN "Decisions"). */
export const DENY_CODES: Readonly<Record<string, readonly [grpc: number, http: number]>> = {
  missing_credential: [16, 401],
  invalid_token: [16, 401],
  key_revoked: [16, 401],
  key_expired: [16, 401],
  token_expired: [16, 401],
  insufficient_scope: [7, 403],
  key_disabled: [16, 401],
  ip_not_allowed: [7, 403],
  rate_limited: [8, 429],
  unavailable: [14, 503],
};
// RFC 6750 section 3: scope = "scope" "=" DQUOTE scope-token *( SP scope-token ) DQUOTE,
// scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
const INSUFFICIENT_SCOPE_CHALLENGE =
  /^Bearer realm="keyward", error="insufficient_scope"(, scope="[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*")?$/;
const HTTP_STATUS: Readonly<Record<string, number>> = {
  Unauthorized: 401,
  Forbidden: 403,
  ServiceUnavailable: 503,
};

export type Verdict =
  | {
      readonly allow: true;
      readonly headers: Record<string, string>;
      readonly remove: readonly string[];
    }
  | { readonly allow: false; readonly code: string; readonly wwwAuthenticate: string };

/**
 * Checks that a CheckResponse is well formed and says what it decided.
 * Throws, naming the defect, when it is not: a status outside {0,7,14,16},
 * an allow without ok_response, a deny whose HTTP status, JSON body, error
 * code, WWW-Authenticate or content-type disagree with DESIGN.
 */
export function judge(response: EnvoyCheckResponse): Verdict {
  const fail = (why: string): never => {
    throw new Error(`malformed CheckResponse (${why}): ${JSON.stringify(response).slice(0, 600)}`);
  };
  const code = response.status?.code ?? 0;
  if (![0, 7, 14, 16].includes(code)) fail(`status.code ${code}`);
  if (code === 0) {
    const ok = response.ok_response;
    if (response.http_response !== "ok_response" || !ok) return fail("allow without ok_response");
    return {
      allow: true,
      headers: Object.fromEntries(ok.headers.map((h) => [h.header.key, h.header.value])),
      remove: ok.headers_to_remove,
    };
  }
  const denied = response.denied_response;
  if (response.http_response !== "denied_response" || !denied) {
    return fail("deny without denied_response");
  }
  let body: { error?: unknown; message?: unknown; decision_id?: unknown };
  try {
    body = JSON.parse(denied.body) as typeof body;
  } catch {
    return fail("deny body is not JSON");
  }
  const error = typeof body.error === "string" ? body.error : fail("no error in body");
  const expected = Object.hasOwn(DENY_CODES, error)
    ? (DENY_CODES[error] as readonly [number, number])
    : fail(`error ${error} outside the closed set`);
  if (expected[0] !== code) fail(`error ${error} with status.code ${code}`);
  if (HTTP_STATUS[denied.status.code] !== expected[1]) fail(`HTTP ${denied.status.code}`);
  if (typeof body.message !== "string" || body.message === "") fail("no message");
  if (typeof body.decision_id !== "string" || !/^[0-9a-f-]{36}$/.test(body.decision_id)) {
    fail("no decision_id");
  }
  const headers = Object.fromEntries(denied.headers.map((h) => [h.header.key, h.header.value]));
  const www = headers["www-authenticate"] ?? fail("no www-authenticate");
  const wwwExpected =
    error === "missing_credential"
      ? /^Bearer realm="keyward"$/
      : error === "insufficient_scope"
        ? INSUFFICIENT_SCOPE_CHALLENGE
        : new RegExp(`^Bearer realm="keyward", error="${error}"$`);
  if (!wwwExpected.test(www)) fail(`www-authenticate ${www}`);
  if (headers["content-type"] !== "application/json") fail("content-type");
  return { allow: false, code: error, wwwAuthenticate: www };
}

/** Just the outcome: "allow" or the deny code. */
export function outcome(response: EnvoyCheckResponse): string {
  const verdict = judge(response);
  return verdict.allow ? "allow" : verdict.code;
}

// --- a protobuf writer for byte-level CheckRequests -------------------------

type Bytes = Uint8Array | string;
const asBytes = (value: Bytes): Buffer =>
  typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);

function varint(value: number): Buffer {
  const out: number[] = [];
  let n = value;
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function field(number: number, value: Bytes): Buffer {
  const bytes = asBytes(value);
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), bytes]);
}

/** A CheckRequest whose string fields may hold any bytes, valid UTF-8 or not. */
export interface ByteRequest {
  readonly method?: Bytes;
  readonly path?: Bytes;
  /** Entries of the `headers` map (a proto3 string map). */
  readonly headers?: readonly (readonly [Bytes, Bytes])[];
  /** `header_map` entries as (key, raw_value). */
  readonly rawHeaders?: readonly (readonly [Bytes, Bytes])[];
  readonly contextExtensions?: readonly (readonly [Bytes, Bytes])[];
}

/**
 * Encodes a CheckRequest by hand (field numbers of envoy.service.auth.v3),
 * writing string fields as the given bytes. Envoy before 1.30 put header
 * values with obs-text (e.g. Latin-1) into the `headers` map unchanged.
 */
export function encodeBytes(request: ByteRequest): Buffer {
  const http: Buffer[] = [];
  if (request.method !== undefined) http.push(field(2, request.method));
  for (const [key, value] of request.headers ?? []) {
    http.push(field(3, Buffer.concat([field(1, key), field(2, value)])));
  }
  if (request.path !== undefined) http.push(field(4, request.path));
  if (request.rawHeaders) {
    const entries = request.rawHeaders.map(([key, value]) =>
      field(1, Buffer.concat([field(1, key), field(3, value)])),
    );
    http.push(field(13, Buffer.concat(entries)));
  }
  const attributes: Buffer[] = [field(4, field(2, Buffer.concat(http)))];
  for (const [key, value] of request.contextExtensions ?? []) {
    attributes.push(field(10, Buffer.concat([field(1, key), field(2, value)])));
  }
  return field(1, Buffer.concat(attributes));
}

// --- concurrency, time, processes ------------------------------------------

/** Runs `fn` over `items` with at most `limit` calls in flight; results in order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

/** Mints a keys:admin key directly in the database file, as the bootstrap does. */
export function bootstrapAdmin(database: string): string {
  const db = openDatabase(database);
  try {
    return new KeyRepository(db).create({ kind: "live", name: "root", scopes: ["keys:admin"] })
      .secret;
  } finally {
    db.close();
  }
}

/** A KeyService client speaking Connect JSON over HTTP/1.1 with a bearer token. */
export function adminClient(port: number, token: string, timeoutMs = 30_000) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(
    KeyService,
    createConnectTransport({
      baseUrl: `http://127.0.0.1:${port}`,
      httpVersion: "1.1",
      interceptors: [auth],
      defaultTimeoutMs: timeoutMs,
    }),
  );
}

const BIN = resolve("bin/keyward.js");
const STDERR_TAIL = 64 * 1024;

/** A `keyward serve` child process. */
export interface KeywardProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly ports: { check: number; admin: number; http: number };
  /** The last 64 KiB of its log. */
  stderr(): string;
  /** True until the process has exited. */
  alive(): boolean;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnOptions {
  readonly database: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Run as this uid/gid (the tests run as root, which ignores file modes). */
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * Starts `keyward serve` on ephemeral loopback ports, like test/helpers/cli.ts
 * `serve()`, but keeps only the tail of its log and scans each line once:
 * `serve()` re-splits its whole accumulated stderr on every chunk, which is
 * quadratic under the tens of thousands of deny lines a soak produces.
 */
export function spawnKeyward(options: SpawnOptions): Promise<KeywardProcess> {
  const child = spawnServe(options);
  let tail = "";
  let partial = "";
  let exited = false;
  const exit = new Promise<number | null>((done) =>
    child.once("exit", (code, signal) => {
      exited = true;
      done(code ?? (signal ? -1 : null));
    }),
  );
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`keyward did not start in 20 s:\n${tail}`));
    }, 20_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`keyward exited with ${code} before starting:\n${tail}`));
    });
    let started = false;
    child.stderr?.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      tail = (tail + text).slice(-STDERR_TAIL);
      if (started) return;
      partial += text;
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.includes('"keyward started"')) continue;
        started = true;
        partial = "";
        clearTimeout(timer);
        const { ports } = JSON.parse(line) as { ports: KeywardProcess["ports"] };
        done({
          child,
          pid: child.pid as number,
          ports,
          stderr: () => tail,
          alive: () => !exited,
          stop(signal = "SIGTERM") {
            if (!exited) child.kill(signal);
            return exit;
          },
        });
        return;
      }
    });
  });
}

/** Runs `keyward serve` expecting it to fail at start-up; resolves with its exit code and log. */
export function spawnExpectingFailure(
  options: SpawnOptions,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawnServe(options);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-STDERR_TAIL);
  });
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      done({ code, stderr });
    });
  });
}

/** `keyward serve` on ephemeral loopback ports, stderr piped, as `options` says. */
function spawnServe(options: SpawnOptions): ChildProcess {
  return spawn(process.execPath, [BIN, "serve"], {
    env: {
      ...process.env,
      KEYWARD_CONFIG: "",
      KEYWARD_DATABASE: options.database,
      KEYWARD_LISTEN_HOST: "127.0.0.1",
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
      ...options.env,
    },
    stdio: ["ignore", "ignore", "pipe"],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  });
}
