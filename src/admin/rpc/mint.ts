import { createHash } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { KEY_KINDS, type KeyKind, type RateLimit } from "../../auth/identity.js";
import {
  type CreateKeyRequest,
  CreateKeyRequestSchema,
  type CreateKeyResponse,
  type RotateKeyResponse,
} from "../../gen/keyward/admin/v1/admin_pb.js";
import { type CreateKeyInput, validateKeyInput } from "../../keys/input.js";
import type { KeyMetadata } from "../../keys/metadata.js";
import type { MintedKey } from "../../keys/repository.js";
import { boundedCache } from "../../lib/bounded-cache.js";
import { keyToProto } from "../convert.js";
import {
  assertAdministrator,
  assertCouldMint,
  canSee,
  type Principal,
  SCOPE_ADMIN,
  SCOPE_PROVISION,
} from "../principal.js";
import { guardInput, type Handlers, notFound } from "./context.js";

/**
 * Set on calls that arrive through `POST /api-keys`, the Chronicle endpoint
 * (seed 000): they mint user keys (researchers) or agent keys (everyone
 * else), never live or worker keys, whoever calls.
 */
export const chronicleEndpointKey = createContextKey(false, {
  description: "keyward: call made through POST /api-keys",
});

/** Marks every call it sees as made through the Chronicle endpoint (see {@link chronicleEndpointKey}). */
export const chronicleEndpoint: Interceptor = (next) => (req) => {
  req.contextValues.set(chronicleEndpointKey, true);
  return next(req);
};

const CHRONICLE_KINDS: readonly string[] = ["user", "agent"];

/** keys.max_rotation_grace when the options name none: 7 days. */
const DEFAULT_MAX_ROTATION_GRACE_MS = 7 * 24 * 3_600_000;

/**
 * How long a created secret stays answerable to a retry with the same
 * idempotency key. It is kept in memory only (never written to disk), so a
 * retry after a restart or after this window is refused instead of answered.
 */
const IDEMPOTENT_REPLAY_MS = 10 * 60_000;

/** CreateKey and RotateKey: the two calls that hand out a secret. */
export function mintHandlers(h: Handlers) {
  const { store, db, audited } = h.options;
  const replays = boundedCache<string, string>(10_000, { ttl: IDEMPOTENT_REPLAY_MS });
  const findIdempotent = db.prepare<[string, string], { request_hash: Buffer; key_id: string }>(
    "SELECT request_hash, key_id FROM idempotency WHERE actor = ? AND idem_key = ?",
  );
  const saveIdempotent = db.prepare(
    "INSERT INTO idempotency (actor, idem_key, request_hash, key_id, created_at) VALUES (?, ?, ?, ?, ?)",
  );

  /**
   * Idempotent create: the same caller retrying the same request with the
   * same idempotency key gets the first answer, not a second key.
   */
  function createOnce(
    caller: Principal,
    request: CreateKeyRequest,
    input: CreateKeyInput,
  ): Pick<CreateKeyResponse, "key" | "secret"> {
    const requestHash = createHash("sha256")
      .update(toBinary(CreateKeyRequestSchema, { ...request, idempotencyKey: "" }))
      .digest();
    const replayKey = `${caller.actor}\u0000${request.idempotencyKey}`;
    const previous = findIdempotent.get(caller.actor, request.idempotencyKey);
    if (previous) {
      if (!previous.request_hash.equals(requestHash)) {
        throw new ConnectError(
          "idempotency key was already used for a different request",
          Code.AlreadyExists,
        );
      }
      const secret = replays.get(replayKey);
      const key = store.get(previous.key_id);
      if (!secret || !key || !canSee(caller, key)) {
        throw new ConnectError(
          `key ${previous.key_id} was already created with this idempotency key; its secret cannot be shown again`,
          Code.AlreadyExists,
        );
      }
      return { key: keyToProto(key), secret };
    }
    const minted = guardInput(() => store.create(input));
    saveIdempotent.run(caller.actor, request.idempotencyKey, requestHash, minted.key.id, h.now());
    replays.set(replayKey, minted.secret);
    return shown(minted);
  }

  return {
    createKey(request: CreateKeyRequest, context: HandlerContext) {
      return audited(context, undefined, (caller): Pick<CreateKeyResponse, "key" | "secret"> => {
        const input = createInput(h, caller, request, context.values.get(chronicleEndpointKey));
        if (request.idempotencyKey) return createOnce(caller, request, input);
        return shown(guardInput(() => store.create(input)));
      });
    },

    rotateKey(request: { id: string; graceSeconds?: number }, context: HandlerContext) {
      return audited(context, request.id, (caller): Pick<RotateKeyResponse, "key" | "secret"> => {
        const key = h.visibleKey(caller, request.id);
        if (key.status === "revoked") {
          throw new ConnectError(
            `key ${key.id} is revoked and cannot be rotated`,
            Code.FailedPrecondition,
          );
        }
        // A new secret is a new key in all but its id: it obeys the minting
        // rules, owner included (the secret acts as its owner upstream).
        assertKnownScopes(h, key.scopes);
        assertCouldMint(caller, key);
        const graceMs = (request.graceSeconds ?? 0) * 1000;
        const max = h.options.maxRotationGraceMs ?? DEFAULT_MAX_ROTATION_GRACE_MS;
        if (graceMs > max) {
          throw new ConnectError(
            `graceSeconds: at most ${Math.floor(max / 1000)} (keys.max_rotation_grace)`,
            Code.InvalidArgument,
          );
        }
        return shown(guardInput(() => store.rotate(key.id, graceMs) ?? notFound(key.id)));
      });
    },
  };
}

/** Refuses (invalid_argument) a scope keyward does not know: a typo would mint a useless key. */
export function assertKnownScopes(h: Handlers, scopes: readonly string[]): void {
  const known = h.options.knownScopes();
  const unknown = scopes.find(
    (scope) => scope !== SCOPE_ADMIN && scope !== SCOPE_PROVISION && !known.has(scope),
  );
  if (unknown !== undefined) {
    throw new ConnectError(
      `scopes: ${JSON.stringify(unknown)} is not a scope keyward knows (known: the policy's scopes, the config's scopes: list, ${SCOPE_ADMIN}, ${SCOPE_PROVISION})`,
      Code.InvalidArgument,
    );
  }
}

/**
 * The key a create asks for, with the caller's defaults filled in, or a
 * refusal: first what no key may be (invalid_argument), then what this
 * caller may not mint (permission_denied).
 */
function createInput(
  h: Handlers,
  principal: Principal,
  request: CreateKeyRequest,
  chronicle: boolean,
): CreateKeyInput {
  assertAdministrator(principal, "mint keys");
  const { identity } = principal;
  const ownKind = principal.researcher && !principal.superuser ? "user" : undefined;
  const kind = (request.kind || ownKind || (chronicle ? "agent" : "live")) as KeyKind;
  if (chronicle && !CHRONICLE_KINDS.includes(kind)) {
    throw new ConnectError(
      `kind: POST /api-keys mints user or agent keys only, not ${JSON.stringify(kind)}`,
      Code.InvalidArgument,
    );
  }
  if (!KEY_KINDS.includes(kind)) {
    throw new ConnectError(`kind must be one of ${KEY_KINDS.join(", ")}`, Code.InvalidArgument);
  }
  // Everyone but keys:admin acts in its own tenant and as itself, unless
  // it asks otherwise, which the minting rules below refuse.
  const tenant = request.tenant || (principal.superuser ? "" : identity.tenant);
  const owner = request.owner || (principal.superuser ? "" : identity.subject);
  let expiresAt = request.expiresAt ? timestampMs(request.expiresAt) : undefined;
  if (expiresAt === undefined && (kind === "user" || kind === "agent"))
    expiresAt = h.now() + h.options.defaultTtlMs;
  const binding = request.binding;
  const input: CreateKeyInput = {
    kind,
    name: request.name,
    tenant,
    owner,
    scopes: request.scopes,
    expiresAt,
    binding: binding
      ? { experiment: binding.experiment, variation: binding.variation, run: binding.run }
      : undefined,
    metadata: request.metadata as KeyMetadata | undefined,
    allowedCidrs: request.allowedCidrs,
    rateLimit: limitOf(request.rateLimit),
  };
  guardInput(() => validateKeyInput(input, h.now()));
  assertKnownScopes(h, request.scopes);
  assertCouldMint(principal, { kind, tenant, owner, scopes: request.scopes });
  return input;
}

/** A RateLimit message as the key's limit: none when absent or with 0 requests. */
export function limitOf(
  limit: { requests: number; perSeconds: number; burst: number } | undefined,
): RateLimit | undefined {
  if (limit === undefined || limit.requests === 0) return undefined;
  return { requests: limit.requests, perSeconds: limit.perSeconds, burst: limit.burst };
}

/** A minted key as the answer shows it: the secret, once. */
function shown(minted: MintedKey) {
  return { key: keyToProto(minted.key), secret: minted.secret };
}
