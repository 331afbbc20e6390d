import type { JsonObject } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { type Decision, denyBody, denyHeaders, OUTCOMES } from "../auth/decision.js";
import { DEFAULT_IDENTITY_PREFIX, identityHeaders } from "../auth/identity-headers.js";
import type { RequestView } from "../auth/request-view.js";
import {
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from "../gen/envoy/config/core/v3/base_pb.js";
import {
  type CheckResponse,
  CheckResponseSchema,
} from "../gen/envoy/service/auth/v3/external_auth_pb.js";

/** Options for {@link createCheckResponder}. */
export interface CheckResponderOptions {
  /** Prefix of the identity headers; default "x-auth-". */
  readonly prefix?: string;
  /** Also remove the `authorization` header before the request goes upstream. */
  readonly stripAuthorization?: boolean;
}

/**
 * Identity metadata and the error code go to Envoy's dynamic metadata as a
 * Struct; a shadow allow adds `shadow_deny` (the would-be deny's code) and
 * carries the identity facts only when the credential proved one.
 */
export function metadataOf(decision: Decision): JsonObject {
  if (!decision.allow) return { decision_id: decision.decisionId, error: decision.code };
  const id = decision.identity;
  const shadow = decision.shadowDeny && { shadow_deny: decision.shadowDeny.code };
  if (id === undefined) return { decision_id: decision.decisionId, ...shadow };
  return {
    decision_id: decision.decisionId,
    kind: id.kind,
    subject: id.subject,
    key_id: id.keyId,
    tenant: id.tenant,
    scopes: [...id.scopes],
    expires_at: id.expiresAt === undefined ? null : new Date(id.expiresAt).toISOString(),
    ...(id.meta && { meta: id.meta as JsonObject }),
    ...(id.previousSecret && { secret: "previous" }),
    ...shadow,
  };
}

/**
 * The ext_authz response builder: the one place a Decision becomes a
 * CheckResponse. Identity headers overwrite whatever the client sent (both
 * `append_action` and the deprecated `append = false`, for older Envoys), and
 * every other client-sent header with the identity prefix is removed, so the
 * upstream can trust any `x-auth-*` header it sees.
 */
export function createCheckResponder(options: CheckResponderOptions = {}) {
  const prefix = options.prefix ?? DEFAULT_IDENTITY_PREFIX;

  return (decision: Decision, view: RequestView): CheckResponse => {
    if (!decision.allow) {
      const outcome = OUTCOMES[decision.code];
      return create(CheckResponseSchema, {
        status: { code: outcome.grpcCode, message: decision.code },
        httpResponse: {
          case: "deniedResponse",
          value: {
            status: { code: outcome.httpStatus },
            headers: [
              ...denyHeaders(decision).map(([name, value]) => header(name, value)),
              header("content-type", "application/json"),
            ],
            body: denyBody(decision),
          },
        },
        dynamicMetadata: metadataOf(decision),
      });
    }

    // An empty value is not sent (Envoy would drop or keep it depending on
    // version); a spoofed header of that name is removed below instead.
    const set: HeaderValueOption[] = [];
    const written = new Set<string>();
    for (const [name, value] of identityHeaders(decision.identity, prefix)) {
      if (value === "") continue;
      set.push(header(name, value));
      written.add(name);
    }

    const remove = view.spoofedHeaders.filter((name) => !written.has(name));
    if (options.stripAuthorization) remove.push("authorization");

    return create(CheckResponseSchema, {
      status: { code: 0 },
      httpResponse: { case: "okResponse", value: { headers: set, headersToRemove: remove } },
      dynamicMetadata: metadataOf(decision),
    });
  };
}

function header(key: string, value: string): HeaderValueOption {
  return create(HeaderValueOptionSchema, {
    header: { key, value },
    append: false,
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  });
}
