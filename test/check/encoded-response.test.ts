import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { Decision, DenyCode } from "../../src/auth/decision.js";
import type { Identity } from "../../src/auth/identity.js";
import type { RequestView } from "../../src/auth/request-view.js";
import { createEncodedCheckResponder } from "../../src/check/encoded-response.js";
import { createCheckResponder } from "../../src/check/response.js";
import { CheckResponseSchema } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";

const view = (spoofedHeaders: string[] = []): RequestView => ({
  method: "GET",
  path: "/api/v1/sources",
  authorization: "Bearer x",
  spoofedHeaders,
  requiredScopes: undefined,
});

const identity = (overrides: Partial<Identity> = {}): Identity => ({
  kind: "live",
  subject: "ci-importer",
  keyId: "0123456789abcdef",
  tenant: "acme",
  scopes: ["sources:read", "items:write"],
  expiresAt: Date.parse("2030-01-01T00:00:00Z"),
  binding: undefined,
  ...overrides,
});

const codes: DenyCode[] = [
  "missing_credential",
  "invalid_token",
  "key_revoked",
  "key_expired",
  "token_expired",
  "insufficient_scope",
  "key_disabled",
  "ip_not_allowed",
  "rate_limited",
  "unavailable",
];

describe("encoded Check responses", () => {
  for (const stripAuthorization of [false, true]) {
    it(`are byte for byte what the response builder encodes (strip_authorization ${stripAuthorization})`, () => {
      const direct = createCheckResponder({ stripAuthorization });
      const encoded = createEncodedCheckResponder({ stripAuthorization });
      const cases: [Record<string, unknown>, RequestView][] = [
        [{ allow: true, identity: identity() }, view()],
        [{ allow: true, identity: identity() }, view(["x-auth-role", "x-auth-tenant"])],
        [
          {
            allow: true,
            identity: identity({ kind: "jwt", tenant: "", scopes: [], expiresAt: undefined }),
          },
          view(),
        ],
        [{ allow: true, identity: identity({ subject: randomUUID() }) }, view()],
        ...codes.map((code): [Record<string, unknown>, RequestView] => [
          { allow: false, code },
          view(),
        ]),
        [
          { allow: false, code: "insufficient_scope", requiredScopes: ["runs:apply", "runs:read"] },
          view(),
        ],
        [
          {
            allow: false,
            code: "rate_limited",
            limit: { requests: 10, perSeconds: 60, retryAfterSeconds: 6 },
          },
          view(),
        ],
        [
          {
            allow: false,
            code: "rate_limited",
            limit: { requests: 10, perSeconds: 60, retryAfterSeconds: 3 },
          },
          view(),
        ],
      ];
      for (const [decision, requestView] of cases) {
        // Twice: the first call builds the template, the second uses it.
        for (let round = 0; round < 2; round++) {
          const full = { ...decision, decisionId: randomUUID() } as Decision;
          const expected = Buffer.from(toBinary(CheckResponseSchema, direct(full, requestView)));
          expect(encoded(full, requestView).equals(expected), JSON.stringify(full)).toBe(true);
        }
      }
    });
  }

  it("encodes directly when a decision id is not a UUID", () => {
    const direct = createCheckResponder();
    const encoded = createEncodedCheckResponder();
    const decision: Decision = { allow: false, code: "invalid_token", decisionId: "short" };
    expect(
      encoded(decision, view()).equals(
        Buffer.from(toBinary(CheckResponseSchema, direct(decision, view()))),
      ),
    ).toBe(true);
  });
});
