import { create, toJson } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  Authorization,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
} from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { grpcMethod } from "../grpc/definition.js";
import { EXIT_DENIED, ExitStatus, UsageError } from "./errors.js";

interface CheckOptions {
  server: string;
  token?: string;
  method: string;
  path: string;
  scopes?: string;
  header: string[];
  json?: boolean;
}

/**
 * `keyward check`: sends one ext_authz Check exactly as Envoy would and prints
 * the decision. For trying keyward out and for "why was this denied?".
 */
export function registerCheckCommand(program: Command): void {
  program
    .command("check")
    .description("send one ext_authz Check to a running keyward and print the decision")
    .option("--server <host:port>", "keyward's Check port", "127.0.0.1:9191")
    // Only from the flag: an environment default would change the answer
    // behind the user's back (KEYWARD_TOKEN is the admin API's token).
    .option("--token <token>", "bearer token to present (none: no authorization header)")
    .option("--method <method>", "HTTP method of the request", "GET")
    .option("--path <path>", "HTTP path of the request", "/")
    .option(
      "--scopes <list>",
      "route's required scopes, as Envoy's context_extensions (space- or comma-separated)",
    )
    .option(
      "--header <name:value>",
      "extra request header (repeatable)",
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .option("--json", "print the whole CheckResponse as proto JSON")
    .action(async (options: CheckOptions) => {
      const headers: Record<string, string> = {};
      for (const entry of options.header) {
        const colon = entry.indexOf(":");
        if (colon < 1) throw new UsageError(`--header: "${entry}" is not name:value`);
        headers[entry.slice(0, colon).trim().toLowerCase()] = entry.slice(colon + 1).trim();
      }
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      const request = create(CheckRequestSchema, {
        attributes: {
          request: { http: { method: options.method.toUpperCase(), path: options.path, headers } },
          contextExtensions:
            options.scopes === undefined
              ? {}
              : { required_scopes: options.scopes.replaceAll(",", " ") },
        },
      });
      const response = await callCheck(options.server, request);
      // Exit status for scripts: 0 allowed, 3 denied (1: could not ask).
      const denied = response.httpResponse.case !== "okResponse";
      if (options.json) {
        process.stdout.write(`${JSON.stringify(toJson(CheckResponseSchema, response))}\n`);
        if (denied) throw new ExitStatus(EXIT_DENIED);
        return;
      }
      const http = response.httpResponse;
      if (http.case === "okResponse") {
        process.stdout.write("allow\n");
        for (const h of http.value.headers)
          process.stdout.write(`  ${h.header?.key}: ${h.header?.value}\n`);
        for (const name of http.value.headersToRemove) process.stdout.write(`  (remove ${name})\n`);
      } else if (http.case === "deniedResponse") {
        process.stdout.write(`deny ${http.value.status?.code} ${http.value.body}\n`);
        for (const h of http.value.headers)
          process.stdout.write(`  ${h.header?.key}: ${h.header?.value}\n`);
      }
      if (denied) throw new ExitStatus(EXIT_DENIED);
    });
}

async function callCheck(server: string, request: CheckRequest): Promise<CheckResponse> {
  const grpc = await import("@grpc/grpc-js");
  const check = grpcMethod<CheckRequest, CheckResponse>(Authorization.method.check);
  const client = new grpc.Client(server, grpc.credentials.createInsecure());
  return new Promise<CheckResponse>((resolve, reject) => {
    client.makeUnaryRequest(
      check.path,
      check.requestSerialize,
      check.responseDeserialize,
      request,
      { deadline: Date.now() + 5000 },
      (error, response) =>
        error || !response ? reject(error ?? new Error("empty response")) : resolve(response),
    );
  }).finally(() => client.close());
}
