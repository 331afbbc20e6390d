import { createHash } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import {
  MethodOptions_IdempotencyLevel,
  timestampFromMs,
  timestampMs,
} from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import type { KeyKind } from "../auth/identity.js";
import { KEY_KINDS } from "../auth/identity.js";
import {
  type CreateKeyRequest,
  CreateKeyRequestSchema,
  KeyService,
  type ListKeysRequest,
} from "../gen/keyward/admin/v1/admin_pb.js";
import type { AuditEntry, AuditLog } from "../keys/audit.js";
import type { Db } from "../keys/db.js";
import { type CreateKeyInput, KeyInputError, validateKeyInput } from "../keys/input.js";
import type { KeyRepository, ListKeysFilter, PageCursor } from "../keys/repository.js";
import type { KeyRecord } from "../keys/rows.js";
import { boundedCache } from "../lib/bounded-cache.js";
import { keyToProto } from "./convert.js";
import {
  assertAdministrator,
  assertCouldMint,
  canSee,
  mintableKinds,
  type Principal,
  principalKey,
  requirePrincipal,
  SCOPE_ADMIN,
  SCOPE_PROVISION,
} from "./principal.js";

/** Options for {@link keyServiceRoutes}. */
export interface KeyServiceOptions {
  /** The admin connection's store (writes happen inside the audit interceptor's transaction). */
  readonly store: KeyRepository;
  readonly db: Db;
  /** Lifetime given to user and agent keys created without expiresAt. */
  readonly defaultTtlMs: number;
  /**
   * Scopes keyward knows besides keys:admin and keys:provision: those the
   * policy in force names and the config's `scopes:`. Read on every call, so
   * a reload is followed. A key naming any other scope is refused.
   */
  readonly knownScopes: () => ReadonlySet<string>;
  /** The audit trail ListAuditEvents reads (the audit interceptor writes it). */
  readonly audit: AuditLog;
  /** This server's role, as GetServerInfo reports it. Default "single". */
  readonly role?: string;
  readonly now?: () => number;
}

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

const MAX_PAGE_SIZE = 1000;
const KEY_ID = /^[0-9a-f]{16}$/;
const DEFAULT_PAGE_SIZE = 100;
const DEFAULT_AUDIT_PAGE_SIZE = 50;
/** The calls that change nothing (declared NO_SIDE_EFFECTS in the proto): a key's reads. */
const READ_ACTIONS = KeyService.methods
  .filter((method) => method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS)
  .map((method) => method.name);
const MAX_AUDIT_PAGE_SIZE = 500;
const STATUSES = new Set(["active", "revoked", "expired"]);
/**
 * How long a created secret stays answerable to a retry with the same
 * idempotency key. It is kept in memory only (never written to disk), so a
 * retry after a restart or after this window is refused instead of answered.
 */
const IDEMPOTENT_REPLAY_MS = 10 * 60_000;

/** The KeyService routes (connect-es style: a function of the router). */
export function keyServiceRoutes(options: KeyServiceOptions) {
  const { store, db, audit } = options;
  const now = options.now ?? Date.now;

  const replays = boundedCache<string, string>(10_000, { ttl: IDEMPOTENT_REPLAY_MS });
  const findIdempotent = db.prepare<[string, string], { request_hash: Buffer; key_id: string }>(
    "SELECT request_hash, key_id FROM idempotency WHERE actor = ? AND idem_key = ?",
  );
  const saveIdempotent = db.prepare(
    "INSERT INTO idempotency (actor, idem_key, request_hash, key_id, created_at) VALUES (?, ?, ?, ?, ?)",
  );

  /** A key the caller may see, or not_found: never "exists but not yours". */
  function visibleKey(principal: Principal, id: string): KeyRecord {
    assertAdministrator(principal, "manage keys");
    // Only a well-formed id is echoed: a pasted secret must not come back in an error.
    const key = KEY_ID.test(id) ? store.get(id) : undefined;
    if (!key || !canSee(principal, key)) {
      throw new ConnectError(
        KEY_ID.test(id) ? `key ${id} not found` : "key not found",
        Code.NotFound,
      );
    }
    return key;
  }

  /** Refuses (invalid_argument) a scope keyward does not know: a typo would mint a useless key. */
  function assertKnownScopes(scopes: readonly string[]): void {
    const known = options.knownScopes();
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
      expiresAt = now() + options.defaultTtlMs;
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
    };
    guardInput(() => validateKeyInput(input, now()));
    assertKnownScopes(request.scopes);
    assertCouldMint(principal, { kind, tenant, owner, scopes: request.scopes });
    return input;
  }

  /** The store filter for a caller's ListKeys; undefined when it may see none of what it asks for. */
  function listFilter(principal: Principal, request: ListKeysRequest): ListKeysFilter | undefined {
    assertAdministrator(principal, "list keys");
    if (request.kind && !KEY_KINDS.includes(request.kind as KeyKind)) {
      throw new ConnectError(`kind must be one of ${KEY_KINDS.join(", ")}`, Code.InvalidArgument);
    }
    if (request.status && !STATUSES.has(request.status)) {
      throw new ConnectError("status must be active, revoked or expired", Code.InvalidArgument);
    }
    const filter: Mutable<ListKeysFilter> = {};
    if (request.tenant) filter.tenant = request.tenant;
    if (request.kind) filter.kind = request.kind as KeyKind;
    if (request.status) filter.status = request.status as ListKeysFilter["status"];
    if (request.owner) filter.owner = request.owner;
    if (request.run) filter.run = request.run;
    if (principal.superuser) return filter;
    // Narrow the caller's filter to what it may see; asking for more (another
    // tenant, owner or kind) matches nothing rather than being widened or
    // replaced. canSee() re-checks every row below.
    const { identity } = principal;
    const asks = (field: "tenant" | "owner", own: string) =>
      !filter[field] || filter[field] === own;
    const kindIn = (kinds: readonly KeyKind[]) => !filter.kind || kinds.includes(filter.kind);
    if (principal.tenantAdmin) {
      const kinds: KeyKind[] = ["live", "agent", "worker"];
      return asks("tenant", identity.tenant) && kindIn(kinds)
        ? { ...filter, tenant: identity.tenant, kinds }
        : undefined;
    }
    if (principal.researcher) {
      const kinds: KeyKind[] = ["user", "agent"];
      return asks("owner", identity.subject) && asks("tenant", identity.tenant) && kindIn(kinds)
        ? { ...filter, owner: identity.subject, tenant: identity.tenant, kinds }
        : undefined;
    }
    if (principal.provisioner) {
      return asks("tenant", identity.tenant) && kindIn(["worker"])
        ? { ...filter, tenant: identity.tenant, kind: "worker" }
        : undefined;
    }
    throw new ConnectError("the caller may not list keys", Code.PermissionDenied);
  }

  const principal = (context: HandlerContext) => requirePrincipal(context.values.get(principalKey));

  return (router: ConnectRouter) =>
    router.service(KeyService, {
      createKey(request, context) {
        const caller = principal(context);
        const input = createInput(caller, request, context.values.get(chronicleEndpointKey));
        if (!request.idempotencyKey) return mint(() => store.create(input));

        // Idempotent create: the same caller retrying the same request with
        // the same idempotency key gets the first answer, not a second key.
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
        saveIdempotent.run(caller.actor, request.idempotencyKey, requestHash, minted.key.id, now());
        replays.set(replayKey, minted.secret);
        return { key: keyToProto(minted.key), secret: minted.secret };
      },

      rotateKey(request, context) {
        const caller = principal(context);
        const key = visibleKey(caller, request.id);
        if (key.status === "revoked") {
          throw new ConnectError(
            `key ${key.id} is revoked and cannot be rotated`,
            Code.FailedPrecondition,
          );
        }
        // A new secret is a new key in all but its id: it obeys the minting
        // rules, owner included (the secret acts as its owner upstream).
        assertKnownScopes(key.scopes);
        assertCouldMint(caller, key);
        return mint(() => store.rotate(key.id) ?? notFound(key.id));
      },

      revokeKey(request, context) {
        const caller = principal(context);
        const key = visibleKey(caller, request.id);
        // Destroying a secret takes the authority to mint it (owner aside:
        // any admin of the tenant may stop a key, whoever it acts as).
        assertCouldMint(caller, { kind: key.kind, tenant: key.tenant, scopes: key.scopes });
        return { key: keyToProto(store.revoke(key.id) ?? notFound(key.id)) };
      },

      getKey(request, context) {
        return { key: keyToProto(visibleKey(principal(context), request.id)) };
      },

      listKeys(request, context) {
        const caller = principal(context);
        const filter = listFilter(caller, request);
        if (filter === undefined) return { keys: [], nextPageToken: "" };
        const size = Math.min(
          request.pageSize > 0 ? request.pageSize : DEFAULT_PAGE_SIZE,
          MAX_PAGE_SIZE,
        );
        const page = store.list(filter, size + 1, decodePageToken(request.pageToken));
        const more = page.length > size;
        const keys = page.slice(0, size);
        const last = keys[keys.length - 1];
        return {
          keys: keys.filter((key) => canSee(caller, key)).map(keyToProto),
          nextPageToken:
            more && last ? encodePageToken({ createdAt: last.createdAt, id: last.id }) : "",
        };
      },

      revokeRunKeys(request, context) {
        const caller = principal(context);
        const binding = request.binding;
        if (!binding?.experiment || !binding.variation || !binding.run) {
          throw new ConnectError(
            "binding needs experiment, variation and run",
            Code.InvalidArgument,
          );
        }
        assertAdministrator(caller, "end runs");
        const tenant = caller.superuser ? undefined : caller.identity.tenant;
        // Ending a run destroys every worker secret of it: the caller must be
        // able to mint worker keys here at all, and each of these. All or none.
        assertCouldMint(caller, { kind: "worker", tenant: caller.identity.tenant, scopes: [] });
        for (const key of store.runKeys(binding, tenant)) {
          assertCouldMint(caller, { kind: key.kind, tenant: key.tenant, scopes: key.scopes });
        }
        return { keys: store.revokeRun(binding, tenant).map(keyToProto) };
      },

      listAuditEvents(request, context) {
        const caller = principal(context);
        if (!request.keyId) throw new ConnectError("key_id is required", Code.InvalidArgument);
        // Whoever may read the key may read its trail; anyone else gets GetKey's not_found.
        const key = visibleKey(caller, request.keyId);
        const size = Math.min(
          request.pageSize > 0 ? request.pageSize : DEFAULT_AUDIT_PAGE_SIZE,
          MAX_AUDIT_PAGE_SIZE,
        );
        // Refused calls are recorded under whatever id the caller named, by
        // callers who may not see the key (another tenant probing an id):
        // only keys:admin reads those; others see the key's completed actions.
        const entries = audit.list(
          {
            keyId: key.id,
            ...(caller.superuser ? {} : { outcome: "ok" }),
            ...(request.includeReads ? {} : { excludeActions: READ_ACTIONS }),
            ...decodeAuditToken(request.pageToken),
          },
          size + 1,
        );
        const page = entries.slice(0, size);
        const last = page[page.length - 1];
        return {
          events: page.map(auditEventToProto),
          nextPageToken:
            entries.length > size && last
              ? Buffer.from(JSON.stringify([last.seq])).toString("base64url")
              : "",
        };
      },

      getServerInfo(_request, context) {
        const caller = principal(context);
        assertAdministrator(caller, "manage keys");
        const { identity } = caller;
        const known = [...new Set([...options.knownScopes(), SCOPE_ADMIN, SCOPE_PROVISION])].sort();
        return {
          role: options.role ?? "single",
          knownScopes: known,
          caller: {
            actor: caller.actor,
            subject: identity.subject,
            tenant: identity.tenant,
            credentialKind: identity.kind,
            scopes: [...identity.scopes],
            managesAll: caller.superuser,
            tenantAdmin: caller.tenantAdmin,
            researcher: caller.researcher,
            provisioner: caller.provisioner,
            mintableKinds: [...mintableKinds(caller)],
            grantableScopes: caller.superuser
              ? known
              : known.filter((scope) => identity.scopes.includes(scope)),
          },
        };
      },
    });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function mint(run: () => { key: KeyRecord; secret: string }) {
  const minted = guardInput(run);
  return { key: keyToProto(minted.key), secret: minted.secret };
}

/** The store's input errors are the caller's mistakes: invalid_argument, with the store's message. */
function guardInput<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof KeyInputError) throw new ConnectError(error.message, Code.InvalidArgument);
    throw error;
  }
}

function notFound(id: string): never {
  throw new ConnectError(`key ${id} not found`, Code.NotFound);
}

function auditEventToProto(entry: AuditEntry) {
  return {
    seq: BigInt(entry.seq),
    time: timestampFromMs(entry.at),
    actor: entry.actor,
    action: entry.action,
    keyId: entry.keyId ?? "",
    outcome: entry.outcome,
    detail: entry.detail,
  };
}

/** An audit page token is the last seq shown; the next page starts below it. */
function decodeAuditToken(token: string): { before?: number } {
  if (!token) return {};
  try {
    const [seq] = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown[];
    if (typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0) return { before: seq };
  } catch {
    // fall through
  }
  throw new ConnectError("page_token is not one this server issued", Code.InvalidArgument);
}

function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id])).toString("base64url");
}

function decodePageToken(token: string): PageCursor | undefined {
  if (!token) return undefined;
  try {
    const [createdAt, id] = JSON.parse(
      Buffer.from(token, "base64url").toString("utf8"),
    ) as unknown[];
    if (typeof createdAt === "number" && typeof id === "string" && /^[0-9a-f]{16}$/.test(id)) {
      return { createdAt, id };
    }
  } catch {
    // fall through
  }
  throw new ConnectError("page_token is not one this server issued", Code.InvalidArgument);
}

/** KeyService with no behaviour, for a replica's admin port (its interceptor refuses every call). */
export function refusingKeyServiceRoutes() {
  return (router: ConnectRouter) => router.service(KeyService, {});
}
