import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import type { Decision } from "../auth/decision.js";
import type { Identity } from "../auth/identity.js";
import type { RequestView } from "../auth/request-view.js";
import { CheckResponseSchema } from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { boundedCache } from "../lib/bounded-cache.js";
import { type CheckResponderOptions, createCheckResponder } from "./response.js";

interface Template {
  readonly bytes: Buffer;
  /** Where the decision id goes (1 place in an allow, 2 in a deny). */
  readonly offsets: readonly number[];
}

const DECISION_ID_LENGTH = 36; // randomUUID()

/**
 * The Check response, encoded: the one response builder's output, cached as
 * bytes. Encoding a CheckResponse by reflection (five HeaderValueOptions and
 * a Struct of metadata) costs far more than deciding (bench/NOTES.md,
 * finding 1), yet two requests with the same identity and the same spoofed
 * headers get the same bytes except for the decision id. So each distinct
 * response is encoded once, with a random placeholder where the decision id
 * goes, and each request copies the template and writes its own id into it.
 * A template whose placeholder count is not the expected one (a claim that
 * happens to contain it) is never used: that response is encoded directly.
 */
export function createEncodedCheckResponder(
  options: CheckResponderOptions = {},
  maxEntries = 10_000,
): (decision: Decision, view: RequestView) => Buffer {
  const respond = createCheckResponder(options);
  // Random per process, so a client cannot plant it in a claim on purpose.
  const placeholder = randomUUID();
  const marker = Buffer.from(placeholder, "latin1");
  const templates = boundedCache<string, Template | false>(maxEntries);

  const encode = (decision: Decision, view: RequestView): Buffer => {
    const bytes = toBinary(CheckResponseSchema, respond(decision, view));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };

  const build = (decision: Decision, view: RequestView): Template | false => {
    const bytes = encode({ ...decision, decisionId: placeholder }, view);
    const offsets: number[] = [];
    for (let at = bytes.indexOf(marker); at !== -1; at = bytes.indexOf(marker, at + 1)) {
      offsets.push(at);
    }
    return offsets.length === (decision.allow ? 1 : 2) ? { bytes, offsets } : false;
  };

  // The common allow (no spoofed headers) finds its template by the identity
  // object itself: verified identities are cached, so the same object comes
  // back for the same credential, and no key string need be built.
  const byIdentity = new WeakMap<Identity, Template | false>();
  // A deny that names no scopes and no limit (a bad, unknown or revoked
  // credential) depends on its code alone.
  const byCode = new Map<string, Template | false>();

  return (decision, view) => {
    if (decision.decisionId.length !== DECISION_ID_LENGTH) return encode(decision, view);
    let template: Template | false | undefined;
    if (
      decision.allow &&
      decision.identity !== undefined &&
      decision.shadowDeny === undefined &&
      view.spoofedHeaders.length === 0
    ) {
      template = byIdentity.get(decision.identity);
      if (template === undefined) {
        template = build(decision, view);
        byIdentity.set(decision.identity, template);
      }
    } else if (
      !decision.allow &&
      decision.requiredScopes === undefined &&
      decision.limit === undefined
    ) {
      template = byCode.get(decision.code);
      if (template === undefined) {
        template = build(decision, view);
        byCode.set(decision.code, template);
      }
    } else {
      const key = decision.allow
        ? JSON.stringify([
            decision.identity?.kind,
            decision.identity?.subject,
            decision.identity?.keyId,
            decision.identity?.tenant,
            decision.identity?.scopes,
            decision.identity?.expiresAt ?? null,
            decision.identity?.previousSecret ?? false,
            decision.identity?.meta ?? null,
            view.spoofedHeaders,
            decision.shadowDeny?.code ?? null,
          ])
        : JSON.stringify([decision.code, decision.requiredScopes ?? null, decision.limit ?? null]);
      template = templates.get(key);
      if (template === undefined) {
        template = build(decision, view);
        templates.set(key, template);
      }
    }
    return template === false ? encode(decision, view) : fill(template, decision.decisionId);
  };
}

/** A copy of the template with the decision id written in. */
function fill(template: Template, decisionId: string): Buffer {
  const out = Buffer.allocUnsafe(template.bytes.length);
  template.bytes.copy(out);
  for (const offset of template.offsets)
    out.write(decisionId, offset, DECISION_ID_LENGTH, "latin1");
  return out;
}
